"""The command line. Commands build values; this module alone prints them.

Exit codes: 0 done, 1 a problem the message explains, 2 bad usage,
130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .context import CODE_FOLDERS, DEFAULT_DEPTH, DEFAULT_MAX_DIRS, Context
from .environments import KINDS
from .errors import UserError
from .kernelspecs import STATUSES


def config_path(env: dict[str, str]) -> Path:
    explicit = env.get("KERNELKEEPER_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    probe = Context.from_environ(env=env, cwd=Path("/"))
    return probe.user_config_dir("kernelkeeper") / "config.toml"


def build_context(args: argparse.Namespace, env: dict[str, str]) -> Context:
    from .config import load_config

    config = load_config(config_path(env)).discovery
    roots = [*config.roots, *(Path(r) for r in args.root)]
    for root in args.root:
        if not Path(root).expanduser().is_dir():
            raise UserError(f"--root {root}: no such folder", hint="pass a folder that exists")
    depth = args.depth if args.depth is not None else config.depth
    return Context.from_environ(
        env=env,
        roots=tuple(roots),
        depth=DEFAULT_DEPTH if depth is None else depth,
        max_dirs=config.max_dirs if config.max_dirs is not None else DEFAULT_MAX_DIRS,
        default_roots=config.default_roots and not args.no_default_roots,
        extra_paths=config.paths,
    )


# --- envs ----------------------------------------------------------------------


def cmd_envs(args: argparse.Namespace, env: dict[str, str]) -> int:
    from .discovery import discover

    ctx = build_context(args, env)
    found = discover(ctx)
    environments = found.environments
    if args.kind:
        environments = tuple(e for e in environments if args.kind in e.kinds)
    for skipped in found.skipped:
        print(f"kernelkeeper: skipped {skipped.path}: {skipped.reason}", file=sys.stderr)
    from .overlay import key_of, list_overlays

    built = {o.key for o in list_overlays(ctx)}

    def overlay_of(e: Any) -> str | None:
        key = key_of(e)
        return key if not e.has_ipykernel and key in built else None

    if args.json:
        _print_json([{**e.to_json(), "overlay": overlay_of(e)} for e in environments])
        return 0
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("name", "kind", "python", "ipykernel", "project", "path"):
        table.add_column(column, overflow="fold")
    for e in environments:
        kind = e.kind if len(e.kinds) == 1 else f"{e.kind} ({', '.join(e.kinds[1:])})"
        python = e.version or "?"
        if not e.healthy:
            python += " [red]broken[/red]"
        table.add_row(
            e.name,
            kind,
            python,
            "yes" if e.has_ipykernel else ("overlay" if overlay_of(e) else "no"),
            _home_short(e.project, ctx.home) if e.project else "",
            _home_short(e.prefix, ctx.home),
        )
    console = _console()
    if environments:
        console.print(table)
    broken = [e for e in environments if not e.healthy]
    for e in broken:
        console.print(f"[yellow]{e.name}[/yellow] ({e.prefix}): {'; '.join(e.problems)}", highlight=False)
    console.print(
        f"{len(environments)} environment{'s' if len(environments) != 1 else ''}"
        + (f", {len(broken)} broken" if broken else ""),
        style="dim",
        highlight=False,
    )
    return 0


def _home_short(path: Path, home: Path) -> str:
    try:
        return "~/" + str(path.relative_to(home))
    except ValueError:
        return str(path)


def _console() -> Any:
    from rich.console import Console

    # Piped output is for grep and awk: one row a line, never folded at 80 columns.
    width = None if sys.stdout.isatty() else 10_000
    return Console(highlight=False, soft_wrap=False, width=width)


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


# --- kernels: list, add, remove, prune, sync --------------------------------------


def cmd_list(args: argparse.Namespace, env: dict[str, str]) -> int:
    from .kernelspecs import list_kernelspecs

    kernels = list_kernelspecs()
    for folder, reason in kernels.problems:
        print(f"kernelkeeper: skipped {folder}: {reason}", file=sys.stderr)
    shown = [k for k in kernels.kernels if not args.status or k.status in args.status]
    if args.json:
        _print_json([k.to_json() for k in shown])
        return 0
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("name", "status", "display name", "interpreter", "path"):
        table.add_column(column, overflow="fold")
    home = Path(env.get("HOME", "/"))
    styles = {"ok": "green", "stale": "red", "invalid": "red", "no-ipykernel": "yellow", "shadowed": "dim"}
    for k in shown:
        mark = "*" if k.managed else ""
        table.add_row(
            k.name + mark,
            f"[{styles[k.status]}]{k.status}[/]" + (" (overlay)" if k.overlay else ""),
            k.display_name or "",
            _home_short(k.interpreter, home) if k.interpreter else (k.argv[0] if k.argv else ""),
            _home_short(k.resource_dir, home),
        )
    console = _console()
    console.print(table)
    for k in shown:
        if k.status in ("stale", "invalid", "no-ipykernel"):
            console.print(f"[yellow]{k.name}[/yellow]: {k.reason}")
    console.print("* made by kernelkeeper", style="dim")
    return 0


def _discover(args: argparse.Namespace, env: dict[str, str]) -> tuple[Context, Any]:
    from .discovery import discover

    ctx = build_context(args, env)
    found = discover(ctx)
    for skipped in found.skipped:
        print(f"kernelkeeper: skipped {skipped.path}: {skipped.reason}", file=sys.stderr)
    return ctx, found


def _parse_env_pairs(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key or not key.replace("_", "a").isalnum():
            raise UserError(f"--env {pair!r}: expected KEY=VALUE", hint="e.g. --env OMP_NUM_THREADS=4")
        out[key] = value
    return out


def cmd_add(args: argparse.Namespace, env: dict[str, str]) -> int:
    from .apply import apply
    from .environments import Found, merge
    from .install import install_ipykernel
    from .kernel import kernel_json, kernel_name, logo_files
    from .kernelspecs import check_name, list_kernelspecs, locked, scope_dir
    from .overlay import build as build_overlay
    from .overlay import clashes, find_overlay, key_of
    from .plan import Action, Plan, taken_names
    from .targets import resolve

    if args.this_project:
        return _add_this_project(args)
    ctx, found = _discover(args, env)
    target = resolve(args.target, found, ctx)
    if not target.healthy:
        raise UserError(f"{target.prefix} is broken: {'; '.join(target.problems)}", hint="recreate the environment")
    ran: list[str] = []
    overlay = None
    if not target.has_ipykernel:
        command, cwd = install_ipykernel(target, env)
        if args.install_ipykernel:
            if not args.dry_run:
                from .run import run_checked

                run_checked(command, env=env, cwd=cwd)
                target = merge([Found(target.prefix, k, target.name, target.project) for k in target.kinds], ctx.home)
                if not target.has_ipykernel:
                    raise UserError(f"`{' '.join(command)}` ran but ipykernel is still missing in {target.prefix}")
            ran.append(" ".join(command) + (f"   (in {cwd})" if cwd else ""))
        elif args.no_overlay or key_of(target) is None:
            why = "" if args.no_overlay else f" (and Python {target.version} is too old for an overlay)"
            raise UserError(
                f"ipykernel is not installed in {target.prefix}{why}",
                hint=f"install it: `{' '.join(command)}`"
                + (f" in {cwd}" if cwd else "")
                + ", or rerun with --install-ipykernel",
            )
        else:
            overlay = find_overlay(ctx, key_of(target) or "")
            if overlay is None and args.dry_run:
                ran.append(f"would build the {key_of(target)} ipykernel overlay")
            elif overlay is None:
                with _status(f"building the {key_of(target)} ipykernel overlay") as say:
                    overlay = build_overlay(ctx, target, progress=say)
                ran.append(overlay.info.get("command", "built overlay"))
            if overlay is not None:
                found_clashes = clashes(target, overlay)
                if found_clashes:
                    raise UserError(
                        f"{target.prefix} has packages that ipykernel's overlay cannot run with: "
                        + "; ".join(str(c) for c in found_clashes),
                        hint=f"upgrade them in the environment, or install ipykernel into it: `{' '.join(command)}`",
                    )
    folder = scope_dir(args.scope)
    extra = _parse_env_pairs(args.env)
    spec = kernel_json(target, display=args.display_name, extra_env=extra, overlay=overlay)
    with locked(folder) if not args.dry_run else contextlib.nullcontext():
        present = list_kernelspecs(also=folder)
        existing = next(
            (k for k in present.in_dir(folder) if k.managed and k.marker.get("prefix") == str(target.prefix)),
            None,
        )
        if args.name:
            name = check_name(args.name)
            clash = next((k for k in present.kernels if k.name == name and k.resource_dir.parent == folder), None)
            if clash is not None and not (clash.managed and clash.marker.get("prefix") == str(target.prefix)):
                owner = "kernelkeeper's kernel for " + str(clash.marker.get("prefix")) if clash.managed else "a kernel"
                raise UserError(
                    f"{clash.resource_dir} is already {owner}; it is not overwritten",
                    hint=f"choose another --name, or `kernelkeeper remove {name}` first",
                )
            verb = "update" if clash is not None else "add"
        elif existing is not None:
            name, verb = existing.name, "update"
        else:
            name, verb = kernel_name(target, taken_names(present, folder, target.prefix)), "add"
        action = Action(
            verb, name, folder, f"asked for {target.prefix}", target.prefix, spec, logo_files(target, overlay)
        )
        result: dict[str, Any] = {**action.to_json(), "ran": ran, "dry_run": bool(args.dry_run), "spec": spec}
        if not args.dry_run:
            (applied,) = apply(Plan((action,)), lock=False)
            if applied.error:
                raise UserError(f"could not write {action.path}: {applied.error}")
    if args.json:
        _print_json(result)
    else:
        for line in ran:
            print(f"{'would run' if args.dry_run else 'ran'}: {line}")
        print(f"{'would ' if args.dry_run else ''}{verb} kernel {name!r} ({spec['display_name']}) in {folder}")
    return 0


THIS_PROJECT = "python-this-project"


def this_project_spec() -> dict[str, Any]:
    """One kernel that runs whichever environment the notebook's project has (see launch.py)."""
    from . import __version__, launch
    from .kernelspecs import MARKER

    return {
        "argv": [sys.executable, "-I", "-S", launch.__file__, "-f", "{connection_file}"],
        "display_name": "Python (this project)",
        "language": "python",
        "interrupt_mode": "signal",
        "metadata": {"debugger": True, MARKER: {"kind": "this-project", "tool_version": __version__}},
    }


def _add_this_project(args: argparse.Namespace) -> int:
    from .apply import apply
    from .kernelspecs import check_name, scope_dir
    from .plan import Action, Plan

    if args.target:
        raise UserError("--this-project takes no TARGET: the kernel finds the project at launch")
    name = check_name(args.name or THIS_PROJECT)
    folder = scope_dir(args.scope)
    spec = this_project_spec()
    if args.display_name:
        spec["display_name"] = args.display_name
    verb = "update" if (folder / name).exists() else "add"
    if (folder / name).exists():
        import json as _json

        try:
            current = _json.loads((folder / name / "kernel.json").read_text())
        except (OSError, ValueError):
            current = {}
        if (current.get("metadata") or {}).get("kernelkeeper", {}).get("kind") != "this-project":
            raise UserError(f"{folder / name} is another kernel; it is not overwritten", hint="choose --name")
    action = Action(verb, name, folder, "one kernel for every project: the environment is found at launch", None, spec)
    if not args.dry_run:
        (applied,) = apply(Plan((action,)))
        if applied.error:
            raise UserError(f"could not write {action.path}: {applied.error}")
    if args.json:
        _print_json({**action.to_json(), "dry_run": bool(args.dry_run), "spec": spec})
    else:
        print(f"{'would ' if args.dry_run else ''}{verb} kernel {name!r} ({spec['display_name']}) in {folder}")
    return 0


@contextlib.contextmanager
def _status(message: str) -> Any:
    """A spinner on stderr while something takes seconds; yields a function that updates its text."""
    from rich.console import Console

    console = Console(stderr=True)
    with console.status(message) as status:

        def say(text: str) -> None:
            console.print(f"kernelkeeper: {text}", highlight=False)
            status.update(text[:100])

        yield say


def _select_by_name(names: list[str]) -> list[Any]:
    from .kernelspecs import check_name, list_kernelspecs

    present = list_kernelspecs(native=False)
    visible = {k.name: k for k in present.kernels if k.status != "shadowed"}
    chosen = []
    for raw in names:
        name = check_name(raw)
        if name not in visible:
            raise UserError(f"no kernelspec named {name!r}", hint="`kernelkeeper list` shows the kernel names")
        chosen.append(visible[name])
    return chosen


def _confirm(question: str, args: argparse.Namespace) -> bool:
    if args.yes:
        return True
    if not sys.stdin.isatty():
        raise UserError("refusing to remove kernels without confirmation", hint="rerun with --yes")
    answer = input(f"{question} [y/N] ").strip().lower()
    return answer in ("y", "yes")


def _removal(kernels: list[Any], reason: str) -> Any:
    from .plan import Action, Plan

    return Plan(
        tuple(Action("remove", k.name, k.resource_dir.parent, k.reason or reason, k.env_prefix) for k in kernels)
    )


def cmd_remove(args: argparse.Namespace, env: dict[str, str]) -> int:
    plan = _removal(_select_by_name(args.names), "asked for by name")
    return _apply_and_report(plan, args)


def cmd_prune(args: argparse.Namespace, env: dict[str, str]) -> int:
    from .kernelspecs import list_kernelspecs

    stale = [k for k in list_kernelspecs(native=False).kernels if k.status == "stale"]
    plan = _removal(stale, "interpreter is gone")
    if plan and not args.dry_run and not args.json:
        _render_plan(plan, dry_run=True)
        if not _confirm(f"remove {len(plan.actions)} stale kernelspec(s)?", args):
            print("nothing removed")
            return 1
    elif plan and not args.dry_run and not args.yes:
        raise UserError("refusing to remove kernels without confirmation", hint="rerun with --yes")
    return _apply_and_report(plan, args)


def cmd_sync(args: argparse.Namespace, env: dict[str, str]) -> int:
    from .apply import apply
    from .config import load_config
    from .kernelspecs import list_kernelspecs, locked, scope_dir
    from .overlay import list_overlays
    from .plan import plan_sync

    filters = load_config(config_path(env)).sync
    folder = scope_dir(args.scope)
    ctx, found = _discover(args, env)
    overlays = {} if args.no_overlay else {o.key: o for o in list_overlays(ctx)}
    if args.dry_run:
        plan = plan_sync(found.environments, list_kernelspecs(native=False, also=folder), folder, filters, overlays)
        return _report(plan, [], args)
    with locked(folder):
        # Planned under the lock: a concurrent run sees this run's kernels, not a stale list.
        plan = plan_sync(found.environments, list_kernelspecs(native=False, also=folder), folder, filters, overlays)
        results = apply(plan, lock=False)
    return _report(plan, results, args)


def _apply_and_report(plan: Any, args: argparse.Namespace) -> int:
    from .apply import apply

    results = [] if args.dry_run else apply(plan)
    return _report(plan, results, args)


def _report(plan: Any, results: list[Any], args: argparse.Namespace) -> int:
    errors = {id(r.action): r.error for r in results if r.error}
    if args.json:
        data = plan.to_json()
        data["dry_run"] = bool(args.dry_run)
        for entry, action in zip(data["actions"], plan.actions):
            entry["error"] = errors.get(id(action))
        _print_json(data)
    else:
        _render_plan(plan, dry_run=bool(args.dry_run), errors=errors)
    return 1 if errors else 0


def _render_plan(plan: Any, *, dry_run: bool, errors: dict[int, str | None] | None = None) -> None:
    console = _console()
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


# --- doctor, adopt, which -----------------------------------------------------------------


def _kernels_as_jupyter_sees_them(ctx: Context, found: Any) -> tuple[Any, Path | None]:
    """Jupyter's kernelspecs, plus the built-in python3 of the first `jupyter` on PATH when it has ipykernel."""
    from .doctor import jupyters_on_path, owner_of
    from .environments import Found, merge
    from .kernelspecs import KernelList, KernelSpecInfo, env_prefix_of, list_kernelspecs

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


def cmd_doctor(args: argparse.Namespace, env: dict[str, str]) -> int:
    from .config import load_config
    from .doctor import SECTIONS, diagnose

    filters = load_config(config_path(env)).sync
    ctx, found = _discover(args, env)
    kernels, server = _kernels_as_jupyter_sees_them(ctx, found)
    report = diagnose(ctx, found, kernels, server, filters)
    if args.fix:
        plan = _doctor_fix_plan(report, ctx, found, filters, yes=args.yes)
        results = [] if args.dry_run else _apply_locked(plan)
        if not args.json:
            _render_plan(plan, dry_run=bool(args.dry_run), errors={id(r.action): r.error for r in results if r.error})
        if not args.dry_run:
            kernels, server = _kernels_as_jupyter_sees_them(ctx, found)
            report = diagnose(ctx, found, kernels, server, filters)
        if args.json:
            data = report.to_json()
            data["fix"] = {**plan.to_json(), "dry_run": bool(args.dry_run)}
            _print_json(data)
            return 0 if not report.problems else 1
    elif args.json:
        _print_json(report.to_json())
        return 0 if not report.problems else 1
    console = _console()
    titles = {
        "jupyters": "Jupyters and Pythons",
        "folders": "Jupyter's folders",
        "kernels": "Kernels",
        "environments": "Environments",
    }
    marks = {"error": "[red]✗[/red]", "warning": "[yellow]![/yellow]", "info": "[dim]·[/dim]"}
    for section in SECTIONS:
        items = [f for f in report.findings if f.section == section and (args.verbose or f.severity != "info")]
        if section in ("jupyters", "folders"):
            items = [f for f in report.findings if f.section == section]
        console.print(f"\n[bold]{titles[section]}[/bold]")
        if not items:
            console.print("  [green]✓[/green] nothing to fix")
        for f in items:
            console.print(f"  {marks[f.severity]} {f.message}  [dim]({f.code})[/dim]")
            if f.fix:
                console.print(f"      fix: {f.fix}" + ("   [dim](--fix needs --yes)[/dim]" if f.needs_yes else ""))
    n = len(report.problems)
    console.print(
        f"\n{n} problem{'s' if n != 1 else ''} to fix"
        + (" — `kernelkeeper doctor --fix` applies the safe fixes" if n else "")
    )
    return 0 if not n else 1


def _doctor_fix_plan(report: Any, ctx: Context, found: Any, filters: Any, *, yes: bool) -> Any:
    """The safe fixes: sync's plan, adopting hand-made kernels; removals of foreign kernels only with --yes."""
    from .kernelspecs import list_kernelspecs, scope_dir
    from .plan import Action, Plan, plan_adopt, plan_sync

    folder = scope_dir("user")
    present = list_kernelspecs(native=False, also=folder)
    sync = plan_sync(found.environments, present, folder, filters)
    codes = {"kernel-without-activation", "display-name-version-mismatch"}
    to_adopt = {f.subject for f in report.findings if f.code in codes}
    removals = {f.subject for f in report.findings if f.code in ("stale-kernel", "duplicate-kernel") and f.needs_yes}
    visible = present.visible()
    adopt, _ = plan_adopt([visible[n] for n in sorted(to_adopt) if n in visible], found.environments)
    adopted = {a.kernel for a in adopt.actions}
    actions = [*sync.actions, *adopt.actions]
    if yes:
        for name in sorted(removals - adopted):
            k = visible.get(name)
            if k is not None:
                actions.append(Action("remove", k.name, k.resource_dir.parent, k.reason or "doctor", k.env_prefix))
        # Every shadowed or invalid kernelspec is a doctor finding (shadowed-kernel, invalid-kernel).
        for k in present.kernels:
            if k.status in ("shadowed", "invalid"):
                actions.append(Action("remove", k.name, k.resource_dir.parent, k.reason or k.status, k.env_prefix))
    return Plan(tuple(actions), sync.notes)


def _apply_locked(plan: Any) -> list[Any]:
    from .apply import apply

    return apply(plan)


def cmd_adopt(args: argparse.Namespace, env: dict[str, str]) -> int:
    from .kernelspecs import check_name, list_kernelspecs
    from .plan import plan_adopt

    if not args.names and not args.all:
        raise UserError("name the kernels to adopt, or pass --all", hint="`kernelkeeper list` shows them")
    _, found = _discover(args, env)
    present = list_kernelspecs(native=False)
    visible = present.visible()
    if args.all:
        chosen = [k for k in visible.values() if not k.managed]
    else:
        chosen = []
        for raw in args.names:
            name = check_name(raw)
            if name not in visible:
                raise UserError(f"no kernelspec named {name!r}", hint="`kernelkeeper list` shows the kernel names")
            chosen.append(visible[name])
    plan, refused = plan_adopt(chosen, found.environments)
    results = [] if args.dry_run else _apply_locked(plan)
    errors = {id(r.action): r.error for r in results if r.error}
    if args.json:
        data = plan.to_json()
        data["dry_run"] = bool(args.dry_run)
        data["refused"] = [{"kernel": n, "reason": r} for n, r in refused]
        for entry, action in zip(data["actions"], plan.actions):
            entry["error"] = errors.get(id(action))
        _print_json(data)
    else:
        console = _console()
        for a in plan.actions:
            verb = "would adopt" if args.dry_run else "adopted"
            console.print(
                f"{verb} {a.kernel}: {a.reason}" + (f" [red](failed: {errors[id(a)]})[/red]" if id(a) in errors else "")
            )
        for name, reason in refused:
            console.print(f"[yellow]not adopted[/yellow] {name}: {reason}")
    named_refusals = refused and not args.all
    return 1 if errors or named_refusals else 0


def cmd_which(args: argparse.Namespace, env: dict[str, str]) -> int:
    from .which import which

    ctx, found = _discover(args, env)
    kernels, _ = _kernels_as_jupyter_sees_them(ctx, found)
    dynamic = None
    name = None
    try:
        from .which import read_notebook_kernel

        name, _ = read_notebook_kernel(Path(args.notebook))
    except UserError:
        raise
    if name and name.lower() not in kernels.visible() and _provider_enabled():
        from jupyter_client.kernelspec import NoSuchKernel

        from .provider import KernelKeeperSpecManager

        try:
            dynamic = KernelKeeperSpecManager().get_kernel_spec(name).to_dict()
        except NoSuchKernel:
            dynamic = None
    result = which(Path(args.notebook), kernels, found, dynamic)
    if args.json:
        _print_json(result.to_json())
    else:
        console = _console()
        console.print(
            f"notebook asks for: {result.asks_for or '(nothing)'}"
            + (f"  ({result.asks_display_name})" if result.asks_display_name else "")
        )
        console.print(f"Jupyter picks:     {result.kernelspec or '(no kernelspec)'}")
        if result.interpreter:
            console.print(f"which runs:        {result.interpreter}")
        if result.env:
            console.print(f"environment:       {result.env}" + (f" ({result.env_kind})" if result.env_kind else ""))
        if result.reason:
            console.print(f"[yellow]{result.reason}[/yellow]")
        if result.fix:
            console.print(f"fix: {result.fix}")
    return 0 if result.starts else 1


def _provider_enabled() -> bool:
    try:
        from .jupyter_config import status

        return bool(status().server.enabled)
    except Exception:
        return False


# --- overlay: ipykernel outside the environments ----------------------------------------


def cmd_overlay(args: argparse.Namespace, env: dict[str, str]) -> int:
    from .overlay import build, key_of, list_overlays, overlays_dir, remove

    ctx = Context.from_environ(env=env)
    if args.overlay_command == "list":
        overlays = list_overlays(ctx)
        if args.json:
            _print_json([o.to_json() for o in overlays])
            return 0
        console = _console()
        if not overlays:
            console.print(f"no overlays yet in {overlays_dir(ctx)} (`kernelkeeper overlay build ENV` makes one)")
        for o in overlays:
            data = o.to_json()
            console.print(f"{o.key}  ipykernel {data['ipykernel']}  {data['size_mb']} MB  {o.path}")
        return 0
    if args.overlay_command == "remove":
        results = []
        for key in args.keys:
            if args.dry_run:
                if not (overlays_dir(ctx) / key).is_dir():
                    raise UserError(f"no overlay {key!r}", hint="`kernelkeeper overlay list` shows them")
                results.append({"key": key, "path": str(overlays_dir(ctx) / key), "removed": False})
            else:
                results.append({"key": key, "path": str(remove(ctx, key)), "removed": True})
        if args.json:
            _print_json(results)
        else:
            for r in results:
                print(f"{'removed' if r['removed'] else 'would remove'} {r['key']} ({r['path']})")
        return 0
    # build
    from .targets import resolve

    ctx, found = _discover(args, env)
    target = resolve(args.target, found, ctx)
    key = key_of(target)
    if key is None:
        raise UserError(f"{target.prefix} runs Python {target.version or '?'}: ipykernel needs Python ≥ 3.8")
    if args.dry_run:
        result = {"key": key, "python": str(target.python), "path": str(overlays_dir(ctx) / key), "built": False}
    else:
        with _status(f"building the {key} ipykernel overlay") as say:
            overlay = build(ctx, target, progress=say, rebuild=args.rebuild)
        result = {**overlay.to_json(), "built": True}
    if args.json:
        _print_json(result)
    else:
        print(f"{'overlay' if result['built'] else 'would build overlay'} {key}: {result['path']}")
    return 0


# --- jupyter: turn the provider on and off ---------------------------------------------


def cmd_jupyter(args: argparse.Namespace, env: dict[str, str]) -> int:
    from . import jupyter_config

    if args.jupyter_command == "status":
        status = jupyter_config.status()
        if args.json:
            _print_json(status.to_json())
        else:
            _render_jupyter_status(status)
        return 0
    scope = args.scope or "user"
    if args.jupyter_command == "enable":
        result = jupyter_config.enable(scope, dry_run=args.dry_run)
    else:
        result = jupyter_config.disable(scope, dry_run=args.dry_run)
    if args.json:
        _print_json(result.to_json())
        return 0
    console = _console()
    for change in result.changes:
        console.print(("would " if args.dry_run and change.modifies else "") + change.message)
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}")
    if not args.dry_run and result.changed:
        console.print("restart the Jupyter server for this to take effect", style="dim")
    return 0


def _render_jupyter_status(status: Any) -> None:
    console = _console()
    for app in status.apps:
        label = "jupyter_server (JupyterLab, Notebook 7, JupyterHub)" if app.app == "jupyter_server" else "Notebook 6"
        winner = app.effective
        if winner is None:
            console.print(f"{label}: stock KernelSpecManager (nothing sets {app.section}.kernel_spec_manager_class)")
        else:
            state = {"enabled": "[green]kernelkeeper provider[/green]", "other": "another manager", "unknown": "?"}
            console.print(
                f"{label}: {state.get(app.state.value, app.state.value)} — set in {winner.path}"
                + (f" ({winner.value})" if winner.value and app.state.value != "enabled" else "")
            )
            if winner.note:
                console.print(f"  {winner.note}", style="dim")
        for lost in app.overridden:
            console.print(f"  [yellow]overridden:[/yellow] {lost.path} enables kernelkeeper, but {winner.path} wins")
    for problem in status.problems:
        console.print(f"[yellow]problem:[/yellow] {problem}")


# --- parser and entry point -------------------------------------------------------


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
        type=int,
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
    _add_discovery_options(envs)
    envs.set_defaults(func=cmd_envs)

    lst = sub.add_parser(
        "list",
        help="list every kernelspec Jupyter sees, with its status",
        description="Every kernelspec in Jupyter's kernel folders, in search order: "
        "ok, stale (interpreter gone), no-ipykernel, shadowed (an earlier folder has the name), invalid.",
    )
    lst.add_argument("--json", action="store_true", help="print a JSON array")
    lst.add_argument("--status", action="append", choices=STATUSES, help="only kernels with this status")
    lst.set_defaults(func=cmd_list)

    add = sub.add_parser(
        "add",
        help="give an environment a kernel",
        description="Write a kernelspec that runs the environment's own Python with the environment active. "
        "TARGET is an environment path, a project folder, or a name from `kernelkeeper envs`; "
        "without it, the environment of the project you are in (or the active one).",
    )
    add.add_argument("target", nargs="?", metavar="TARGET")
    add.add_argument("--name", help="kernel name (a-z, 0-9, '.', '_', '-'); default: kind-name-pyX.Y")
    add.add_argument("--display-name", help="the name Jupyter shows; default: 'Python X.Y (name · kind)'")
    _add_scope(add)
    add.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="extra kernel variable")
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
    add.set_defaults(func=cmd_add)

    rm = sub.add_parser("remove", help="remove kernelspecs by name (any kernelspec: you named it)")
    rm.add_argument("names", nargs="+", metavar="NAME")
    _add_change_options(rm, yes=False)
    rm.set_defaults(func=cmd_remove)

    prune = sub.add_parser("prune", help="remove kernelspecs whose interpreter is gone (asks first)")
    _add_change_options(prune, yes=True)
    prune.set_defaults(func=cmd_prune)

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
    sync.set_defaults(func=cmd_sync)

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
    ovl.set_defaults(func=cmd_overlay)
    ovb = ovsub.add_parser("build", help="build the overlay for an environment's Python version")
    ovb.add_argument("target", nargs="?", metavar="TARGET", help="environment path, project folder or name")
    ovb.add_argument("--rebuild", action="store_true", help="build again even if it exists")
    _add_change_options(ovb, yes=False)
    _add_discovery_options(ovb)
    ovb.set_defaults(func=cmd_overlay)
    ovr = ovsub.add_parser("remove", help="remove overlays (kernels on them go stale until rebuilt)")
    ovr.add_argument("keys", nargs="+", metavar="KEY", help="e.g. cpython-3.11")
    _add_change_options(ovr, yes=False)
    ovr.set_defaults(func=cmd_overlay)

    doctor = sub.add_parser(
        "doctor",
        help="explain this machine's Jupyters, Pythons and kernels, and how to fix each problem",
        description="Reports which jupyter and python you run, Jupyter's folders, broken or misleading kernels, "
        "and environments without kernels — each with the command that fixes it. Exit 0 when nothing needs fixing.",
    )
    doctor.add_argument("--fix", action="store_true", help="apply the safe fixes (sync, adopt)")
    doctor.add_argument("-y", "--yes", action="store_true", help="with --fix: also remove hand-made kernels")
    doctor.add_argument("-v", "--verbose", action="store_true", help="also list the findings that need nothing")
    _add_change_options(doctor, yes=False)
    _add_discovery_options(doctor)
    doctor.set_defaults(func=cmd_doctor)

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
    adopt.set_defaults(func=cmd_adopt)

    wh = sub.add_parser(
        "which",
        help="which kernel a notebook asks for, and what it would run",
        description="The kernel named in the notebook's metadata, the kernelspec Jupyter would pick for it, and "
        "the interpreter and environment that runs — or why it would fail to start. Exit 1 if it would not start.",
    )
    wh.add_argument("notebook", metavar="NOTEBOOK.ipynb")
    wh.add_argument("--json", action="store_true", help="print the answer as JSON")
    _add_discovery_options(wh)
    wh.set_defaults(func=cmd_which)

    jupyter = sub.add_parser(
        "jupyter",
        help="turn the dynamic kernel provider on or off in Jupyter's config",
        description="Set (or remove) ServerApp.kernel_spec_manager_class = kernelkeeper's provider in a scope's "
        "jupyter_server_config.json, merged with what is there; `status` says which file wins.",
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
        a.set_defaults(func=cmd_jupyter)
    st = jsub.add_parser("status", help="which config file sets the kernel spec manager, and which one wins")
    st.add_argument("--json", action="store_true", help="print the status as JSON")
    st.set_defaults(func=cmd_jupyter)
    return parser


def _add_scope(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--scope",
        default="user",
        metavar="SCOPE",
        help="where kernels go: user (default), sys-prefix, system (every user), or prefix:PATH",
    )


def _add_change_options(p: argparse.ArgumentParser, *, yes: bool) -> None:
    p.add_argument("--dry-run", action="store_true", help="say what would change, change nothing")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    if yes:
        p.add_argument("-y", "--yes", action="store_true", help="don't ask before removing")


def main(argv: Sequence[str] | None = None, env: dict[str, str] | None = None) -> int:
    """Run the command line; return the exit code. ``env`` replaces os.environ (tests)."""
    parser = make_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args, dict(os.environ if env is None else env)))
    except UserError as e:
        print(f"kernelkeeper: error: {e}", file=sys.stderr)
        if e.hint:
            print(f"kernelkeeper: {e.hint}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("kernelkeeper: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `kernelkeeper envs | head`: the reader left; that is not an error.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


def run() -> None:
    sys.exit(main())
