"""What the commands share: the context from options and config, discovery, rendering, confirming."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from ..context import DEFAULT_DEPTH, DEFAULT_MAX_DIRS, Context
from ..errors import UsageError, UserError


def config_path(env: dict[str, str]) -> Path:
    explicit = env.get("KERNELKEEPER_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    probe = Context.from_environ(env=env, cwd=Path("/"))
    return probe.user_config_dir("kernelkeeper") / "config.toml"


def build_context(args: argparse.Namespace, env: dict[str, str]) -> Context:
    from ..config import load_config

    config = load_config(config_path(env)).discovery
    roots = [*config.roots, *(Path(r) for r in args.root)]
    for root in args.root:
        if not Path(root).expanduser().is_dir():
            raise UsageError(f"--root {root}: no such folder", hint="pass a folder that exists")
    depth = args.depth if args.depth is not None else config.depth
    return Context.from_environ(
        env=env,
        roots=tuple(roots),
        depth=DEFAULT_DEPTH if depth is None else depth,
        max_dirs=config.max_dirs if config.max_dirs is not None else DEFAULT_MAX_DIRS,
        default_roots=config.default_roots and not args.no_default_roots,
        extra_paths=config.paths,
    )


def discover_args(args: argparse.Namespace, env: dict[str, str]) -> tuple[Context, Any]:
    from ..discovery import discover

    ctx = build_context(args, env)
    found = discover(ctx)
    for skipped in found.skipped:
        print(f"kernelkeeper: skipped {skipped.path}: {skipped.reason}", file=sys.stderr)
    return ctx, found


def make_console() -> Any:
    from rich.console import Console

    # An action line is one line: never folded by rich (at 80 columns when it cannot tell the width);
    # a terminal narrower than the line wraps it whole, as it does `echo`. Piped: no colour codes.
    return Console(highlight=False, soft_wrap=True)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


@contextlib.contextmanager
def spinner(message: str) -> Any:
    """A spinner on stderr while something takes seconds; yields a function that updates its text."""
    from rich.console import Console

    from .table import cut_end

    # One display: the spinner's text changes in place and disappears when done; the caller prints
    # one line of result. Only a step that failed and was retried is kept, as one unwrapped line.
    console = Console(stderr=True, highlight=False)
    width = max(20, console.width - 4)
    with console.status(cut_end(message, width)) as status:

        def say(text: str) -> None:
            if "failed" in text:
                sys.stderr.write(f"kernelkeeper: {text}\n")
            status.update(cut_end(text, width))

        yield say


def confirm(question: str, args: argparse.Namespace) -> bool:
    if args.yes:
        return True
    if not sys.stdin.isatty():
        raise UserError("refusing to remove kernels without confirmation", hint="rerun with --yes")
    answer = input(f"{question} [y/N] ").strip().lower()
    return answer in ("y", "yes")


def select_by_name(names: list[str]) -> list[Any]:
    from ..kernelspecs import check_name, list_kernelspecs

    present = list_kernelspecs(native=False)
    visible = {k.name: k for k in present.kernels if k.status != "shadowed"}
    chosen = []
    for raw in names:
        name = check_name(raw)
        if name not in visible:
            raise UserError(f"no kernelspec named {name!r}", hint="`kernelkeeper list` shows the kernel names")
        chosen.append(visible[name])
    return chosen


def removal(kernels: list[Any], reason: str) -> Any:
    from ..plan import Action, Plan

    return Plan(
        tuple(Action("remove", k.name, k.resource_dir.parent, k.reason or reason, k.env_prefix) for k in kernels)
    )


def apply_and_report(plan: Any, args: argparse.Namespace) -> int:
    from ..apply import apply

    results = [] if args.dry_run else apply(plan)
    return report(plan, results, args)


def report(plan: Any, results: list[Any], args: argparse.Namespace) -> int:
    errors = {id(r.action): r.error for r in results if r.error}
    if args.json:
        data = plan.to_json()
        data["dry_run"] = bool(args.dry_run)
        for entry, action in zip(data["actions"], plan.actions):
            entry["error"] = errors.get(id(action))
        print_json(data)
    else:
        render_plan(plan, dry_run=bool(args.dry_run), errors=errors)
    return 1 if errors else 0


def render_plan(plan: Any, *, dry_run: bool, errors: dict[int, str | None] | None = None) -> None:
    console = make_console()
    errors = errors or {}
    if not plan.actions:
        console.print("nothing to do: the kernel list is up to date")
    past = {"add": "added", "update": "updated", "remove": "removed"}
    for a in plan.actions:
        verb = f"would {a.action}" if dry_run else past[a.action]
        error = errors.get(id(a))
        line = f"{verb} {a.kernel}: {a.reason}" + (f" [red](failed: {error})[/red]" if error else "")
        console.print(line)
    for note in plan.notes:
        console.print(f"[dim]note: {note}[/dim]")


def kernels_as_jupyter_sees_them(ctx: Context, found: Any) -> tuple[Any, Path | None]:
    """Jupyter's kernelspecs, plus the built-in python3 of the first `jupyter` on PATH when it has ipykernel."""
    from ..doctor import jupyters_on_path, owner_of
    from ..environments import Found, merge
    from ..kernelspecs import KernelList, KernelSpecInfo, env_prefix_of, list_kernelspecs

    kernels = list_kernelspecs(native=False)
    jupyters = jupyters_on_path(ctx)
    server = jupyters[0][1] if jupyters else None
    if server is not None and "python3" not in kernels.visible():
        owner = owner_of(server, found.environments)
        prefix = env_prefix_of(server)
        if owner is None and prefix is not None:
            owner = merge([Found(Path(os.path.realpath(prefix)), "venv")], ctx.home)
        if owner is not None and owner.has_ipykernel and owner.site_packages is not None:
            native = KernelSpecInfo(
                "python3",
                owner.site_packages / "ipykernel" / "resources",
                display_name="Python 3 (ipykernel)",
                argv=(str(server), "-m", "ipykernel_launcher", "-f", "{connection_file}"),
                language="python",
                interpreter=server,
                env_prefix=owner.prefix,
                reason="built in: the ipykernel of the Python running Jupyter",
                builtin=True,
            )
            kernels = KernelList((*kernels.kernels, native), kernels.problems)
    return kernels, server
