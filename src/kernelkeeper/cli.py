# PYTHON_ARGCOMPLETE_OK
"""The command line: the parser, and the one place errors become messages and exit codes.

Each command lives in ``commands/`` (one module per verb) and renders its own result.

Exit codes (errors.py): 0 done, 1 a problem the message explains, 2 bad usage
(argparse's errors and ``UsageError``), 130 interrupted; declining at a prompt is 0.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from . import __version__
from .context import CODE_FOLDERS, DEFAULT_DEPTH
from .environments import KINDS
from .errors import EXIT_INTERRUPTED, EXIT_OK, UsageError, UserError
from .kernelspecs import STATUSES

# --- parser and entry point -------------------------------------------------------


def _command(module: str, name: str) -> Callable[[argparse.Namespace, dict[str, str]], int]:
    """A command's function, imported when it runs: `kernelkeeper envs` need not import `doctor`."""

    def run(args: argparse.Namespace, env: dict[str, str]) -> int:
        import importlib

        func = getattr(importlib.import_module(f"kernelkeeper.commands.{module}"), name)
        return int(func(args, env))

    return run


def _add_discovery_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--root",
        action="append",
        default=[],
        metavar="DIR",
        help="also look for projects below DIR (repeatable)",
    )
    p.add_argument(
        "--depth",
        type=_depth_value,
        default=None,
        metavar="N",
        help=f"how many folder levels below each root to look for projects (default {DEFAULT_DEPTH})",
    )
    p.add_argument(
        "--no-default-roots",
        action="store_true",
        help=f"don't scan HOME and ~/{{{','.join(CODE_FOLDERS)}}}",
    )


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kernelkeeper",
        description="Every Python environment on this machine as a Jupyter kernel.",
    )
    parser.add_argument("--version", action="version", version=f"kernelkeeper {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    envs = sub.add_parser(
        "envs",
        help="list the Python environments on this machine",
        description="List every Python environment found by reading files (no interpreter is run).",
    )
    envs.add_argument("--json", action="store_true", help="print a JSON array instead of a table")
    envs.add_argument("--kind", choices=KINDS, help="only environments of this kind")
    _add_columns(envs, "name,kind,python,ipykernel,project,path")
    _add_discovery_options(envs)
    envs.set_defaults(func=_command("envs", "cmd_envs"))

    lst = sub.add_parser(
        "list",
        help="list every kernelspec Jupyter sees, with its status",
        description="Every kernelspec in Jupyter's kernel folders, in search order: "
        "ok, stale (interpreter gone), no-ipykernel, shadowed (an earlier folder has the name), invalid.",
    )
    lst.add_argument("--json", action="store_true", help="print a JSON array")
    lst.add_argument("--status", action="append", choices=STATUSES, help="only kernels with this status")
    _add_columns(lst, "name,status,display-name,interpreter,path")
    lst.set_defaults(func=_command("kernels", "cmd_list"))

    add = sub.add_parser(
        "add",
        help="give an environment a kernel",
        description="Write a kernelspec that runs the environment's own Python with the environment active. "
        "TARGET is an environment path, a project folder, or a name from `kernelkeeper envs`; "
        "without it, the environment of the project you are in (or the active one).",
    )
    add.add_argument("target", nargs="?", metavar="TARGET")
    add.add_argument("--name", type=_name_value, help="kernel name (a-z, 0-9, '.', '_', '-'); default: kind-name-pyX.Y")
    add.add_argument(
        "--display-name",
        help="the name Jupyter shows; default: 'name (kind · X.Y)' ([kernels] in config.toml)",
    )
    _add_scope(add)
    add.add_argument(
        "--env", action="append", default=[], type=_env_value, metavar="KEY=VALUE", help="extra kernel variable"
    )
    add.add_argument(
        "--install-ipykernel",
        action="store_true",
        help="install ipykernel into the environment the way its tool would (instead of the overlay)",
    )
    add.add_argument(
        "--no-overlay", action="store_true", help="refuse an environment without ipykernel instead of using an overlay"
    )
    add.add_argument(
        "--this-project",
        action="store_true",
        help="write the one 'Python (this project)' kernel, which runs the environment of the notebook's project",
    )
    _add_change_options(add, yes=False)
    _add_discovery_options(add)
    add.set_defaults(func=_command("add", "cmd_add"))

    rm = sub.add_parser("remove", help="remove kernelspecs by name (any kernelspec: you named it)")
    rm.add_argument("names", nargs="+", metavar="NAME")
    _add_change_options(rm, yes=False)
    rm.set_defaults(func=_command("kernels", "cmd_remove"))

    prune = sub.add_parser("prune", help="remove kernelspecs whose interpreter is gone (asks first)")
    _add_change_options(prune, yes=True)
    prune.set_defaults(func=_command("kernels", "cmd_prune"))

    sync = sub.add_parser(
        "sync",
        help="make the kernel list match the environments",
        description="Add a kernel for every healthy environment with ipykernel, update kernelkeeper's kernels "
        "whose environment changed, remove kernelkeeper's kernels whose environment is gone. "
        "Kernelspecs kernelkeeper did not make are never touched.",
    )
    _add_scope(sync)
    sync.add_argument(
        "--no-overlay", action="store_true", help="only environments with their own ipykernel get a kernel"
    )
    _add_change_options(sync, yes=False)
    _add_discovery_options(sync)
    sync.set_defaults(func=_command("kernels", "cmd_sync"))

    ov = sub.add_parser(
        "overlay",
        help="manage the ipykernel overlays that give kernels to environments without ipykernel",
        description="One ipykernel install per Python version, outside every environment; kernels for "
        "environments without ipykernel run their own Python with it appended to sys.path.",
    )
    ovsub = ov.add_subparsers(dest="overlay_command", metavar="ACTION")
    ovsub.required = True
    ovl = ovsub.add_parser("list", help="the overlays built so far")
    ovl.add_argument("--json", action="store_true", help="print a JSON array")
    ovl.set_defaults(func=_command("overlay", "cmd_overlay"))
    ovb = ovsub.add_parser("build", help="build the overlay for an environment's Python version")
    ovb.add_argument("target", nargs="?", metavar="TARGET", help="environment path, project folder or name")
    ovb.add_argument("--rebuild", action="store_true", help="build again even if it exists")
    _add_change_options(ovb, yes=False)
    _add_discovery_options(ovb)
    ovb.set_defaults(func=_command("overlay", "cmd_overlay"))
    ovr = ovsub.add_parser("remove", help="remove overlays (kernels on them are kept and wait for a rebuild)")
    ovr.add_argument("keys", nargs="+", metavar="KEY", help="e.g. cpython-3.11")
    _add_change_options(ovr, yes=False)
    ovr.set_defaults(func=_command("overlay", "cmd_overlay"))

    ca = sub.add_parser(
        "cache",
        help="the environments notebooks declare for themselves (PEP 723): list, remove unused",
        description="'Python (this project)' builds the dependencies a notebook declares in a `# /// script` block "
        "into a cache shared by every notebook declaring the same. `list` shows them with their size and the "
        "notebooks that last used them; `remove` takes KEYs or --unused-for.",
    )
    casub = ca.add_subparsers(dest="cache_command", metavar="ACTION")
    casub.required = True
    cal = casub.add_parser("list", help="the cached notebook environments")
    cal.add_argument("--json", action="store_true", help="print a JSON array")
    cal.set_defaults(func=_command("cache", "cmd_cache"))
    car = casub.add_parser("remove", help="remove cached notebook environments (the next start builds again)")
    car.add_argument("keys", nargs="*", metavar="KEY", help="environments named by `cache list`")
    car.add_argument("--unused-for", metavar="AGE", help="every environment no kernel started for AGE (30d, 12h, 2w)")
    _add_change_options(car, yes=False)
    car.set_defaults(func=_command("cache", "cmd_cache"))

    doctor = sub.add_parser(
        "doctor",
        help="explain this machine's Jupyters, Pythons and kernels, and how to fix each problem",
        description="Reports which jupyter and python you run, Jupyter's folders, broken or misleading kernels, "
        "and environments without kernels — each with the command that fixes it. Exit 0 when nothing needs fixing.",
    )
    doctor.add_argument("--fix", action="store_true", help="apply the safe fixes (sync, adopt)")
    doctor.add_argument(
        "-y",
        "--yes",
        action="store_true",
        help="with --fix: also remove hand-made kernels that cannot start (interpreter gone, invalid)",
    )
    doctor.add_argument("-v", "--verbose", action="store_true", help="also list the findings that need nothing")
    _add_change_options(doctor, yes=False)
    _add_discovery_options(doctor)
    doctor.set_defaults(func=_command("doctor", "cmd_doctor"))

    adopt = sub.add_parser(
        "adopt",
        help="turn hand-made kernels (ipykernel install) into kernelkeeper kernels, names kept",
        description="Rewrites a kernelspec made by `python -m ipykernel install` in place: same name, so saved "
        "notebooks still open it; its environment's interpreter with the environment active; kernelkeeper's marker.",
    )
    adopt.add_argument("names", nargs="*", metavar="NAME")
    adopt.add_argument("--all", action="store_true", help="every kernel that can be adopted")
    _add_change_options(adopt, yes=False)
    _add_discovery_options(adopt)
    adopt.set_defaults(func=_command("adopt", "cmd_adopt"))

    wh = sub.add_parser(
        "which",
        help="which kernel a notebook asks for, and what it would run",
        description="The kernel named in the notebook's metadata, the kernelspec Jupyter would pick for it, and "
        "the interpreter and environment that runs — or why it would fail to start. Exit 1 if it would not start.",
    )
    wh.add_argument("notebook", metavar="NOTEBOOK.ipynb")
    wh.add_argument("--json", action="store_true", help="print the answer as JSON")
    _add_discovery_options(wh)
    wh.set_defaults(func=_command("which", "cmd_which"))

    tr = sub.add_parser(
        "trust",
        help="let 'Python (this project)' run environments in a folder others could change",
        description="'Python (this project)' runs an environment only when the folders that decide what runs are "
        "owned by you or root and writable by no one else. `trust DIR` allows DIR and every folder below it.",
    )
    tr.add_argument("folder", nargs="?", metavar="DIR", help="the folder to trust (and everything below it)")
    tr.add_argument("--list", action="store_true", help="the trusted folders")
    tr.add_argument("--remove", metavar="DIR", help="stop trusting DIR")
    _add_change_options(tr, yes=False)
    tr.set_defaults(func=_command("trust", "cmd_trust"))

    jupyter = sub.add_parser(
        "jupyter",
        help="turn the dynamic kernel provider on or off in Jupyter's config",
        description="Enable (or disable) the kernelkeeper jupyter_server extension in a scope's config folder "
        "(jupyter_server_config.d/kernelkeeper.json); it turns the provider on in every Jupyter that can import "
        "kernelkeeper, and the others run as before. `enable` also removes the old kernel_spec_manager_class "
        "setting that stopped those others; `status` says which file wins and what each Jupyter does.",
    )
    jsub = jupyter.add_subparsers(dest="jupyter_command", metavar="ACTION")
    jsub.required = True
    for action, text in (("enable", "turn the provider on"), ("disable", "turn the provider off")):
        a = jsub.add_parser(action, help=text)
        where = a.add_mutually_exclusive_group()
        where.add_argument("--user", dest="scope", action="store_const", const="user", help="you (default)")
        where.add_argument(
            "--sys-prefix", dest="scope", action="store_const", const="sys-prefix", help="this Python's Jupyter"
        )
        where.add_argument(
            "--system", dest="scope", action="store_const", const="system", help="every user (JupyterHub admins)"
        )
        _add_change_options(a, yes=False)
        a.set_defaults(func=_command("jupyter", "cmd_jupyter"))
    st = jsub.add_parser("status", help="which config file sets the kernel spec manager, and which one wins")
    st.add_argument("--json", action="store_true", help="print the status as JSON")
    st.set_defaults(func=_command("jupyter", "cmd_jupyter"))
    return parser


# Option values are checked while parsing, before any discovery: a bad value is bad usage (exit 2).


def _scope_value(text: str) -> str:
    if text in ("user", "sys-prefix", "system") or (text.startswith("prefix:") and len(text) > len("prefix:")):
        return text
    raise UsageError(f"--scope {text}: unknown scope", hint="use user, sys-prefix, system or prefix:PATH")


def _name_value(text: str) -> str:
    from .kernelspecs import check_name

    return check_name(text)


def _env_value(text: str) -> str:
    key, sep, _ = text.partition("=")
    if not sep or not key or not key.replace("_", "a").isalnum():
        raise UsageError(f"--env {text}: expected KEY=VALUE", hint="e.g. --env OMP_NUM_THREADS=4")
    return text


def _depth_value(text: str) -> int:
    try:
        depth = int(text)
    except ValueError:
        depth = -1
    if depth < 0:
        raise UsageError(f"--depth {text}: expected a whole number ≥ 0", hint="e.g. --depth 3")
    return depth


def _add_columns(p: argparse.ArgumentParser, every: str) -> None:
    p.add_argument(
        "--columns",
        metavar="LIST",
        help=f"the columns to show, in order, comma-separated (default: {every}); e.g. drop the paths",
    )


def _add_scope(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--scope",
        type=_scope_value,
        default="user",
        metavar="SCOPE",
        help="where kernels go: user (default), sys-prefix, system (every user), or prefix:PATH",
    )


def _add_change_options(p: argparse.ArgumentParser, *, yes: bool) -> None:
    p.add_argument("--dry-run", action="store_true", help="say what would change, change nothing")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    if yes:
        p.add_argument("-y", "--yes", action="store_true", help="don't ask before removing")


def command_list(parser: argparse.ArgumentParser) -> str:
    """What `kernelkeeper` alone prints: one line per command, as git, uv and pipx do."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {c.dest: c.help or "" for c in sub._choices_actions}
    width = max(len(name) for name in sub.choices)
    lines = [
        "kernelkeeper: every Python environment on this machine as a Jupyter kernel.",
        "",
        "usage: kernelkeeper COMMAND [options]",
        "",
        "commands:",
        *(f"  {name:<{width}}  {helps.get(name, '')}" for name in sub.choices),
        "",
        "`kernelkeeper COMMAND --help` explains one command; start with `kernelkeeper envs`.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None, env: dict[str, str] | None = None) -> int:
    """Run the command line; return the exit code. ``env`` replaces os.environ (tests)."""
    parser = make_parser()
    if argv is None and "_ARGCOMPLETE" in os.environ:
        from .completion import complete

        complete(parser)  # answers the shell and exits
    if not (sys.argv[1:] if argv is None else argv):
        sys.stdout.write(command_list(parser))
        return EXIT_OK
    try:
        args = parser.parse_args(argv)
        return int(args.func(args, dict(os.environ if env is None else env)))
    except UserError as e:
        print(f"kernelkeeper: error: {e}", file=sys.stderr)
        if e.hint:
            print(f"kernelkeeper: {e.hint}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("kernelkeeper: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `kernelkeeper envs | head`: the reader left; that is not an error.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK


def run() -> None:
    sys.exit(main())
