"""`kernelkeeper doctor [--fix]`: what is wrong with this machine's kernels, and the safe fixes."""

from __future__ import annotations

import argparse
from typing import Any

from ..context import Context
from .common import config_path, discover_args, kernels_as_jupyter_sees_them, make_console, print_json, render_plan


def cmd_doctor(args: argparse.Namespace, env: dict[str, str]) -> int:
    from ..apply import apply
    from ..config import load_config
    from ..doctor import SECTIONS, diagnose

    filters = load_config(config_path(env)).sync
    ctx, found = discover_args(args, env)
    kernels, server = kernels_as_jupyter_sees_them(ctx, found)
    report = diagnose(ctx, found, kernels, server, filters)
    if args.fix:
        plan = _doctor_fix_plan(report, ctx, found, filters, yes=args.yes)
        results = [] if args.dry_run else apply(plan)
        if not args.json:
            render_plan(plan, dry_run=bool(args.dry_run), errors={id(r.action): r.error for r in results if r.error})
        if not args.dry_run:
            kernels, server = kernels_as_jupyter_sees_them(ctx, found)
            report = diagnose(ctx, found, kernels, server, filters)
        if args.json:
            data = report.to_json()
            data["fix"] = {**plan.to_json(), "dry_run": bool(args.dry_run)}
            print_json(data)
            return 0 if not report.problems else 1
    elif args.json:
        print_json(report.to_json())
        return 0 if not report.problems else 1
    console = make_console()
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
    from ..kernelspecs import list_kernelspecs, scope_dir
    from ..plan import Action, Plan, plan_adopt, plan_sync

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
