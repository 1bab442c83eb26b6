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
                tail = "   [dim](--fix needs --yes)[/dim]" if f.needs_yes else ""
                tail = "   [dim](advice: --fix leaves it to you)[/dim]" if f.advice else tail
                console.print(f"      {'advice' if f.advice else 'fix'}: {f.fix}{tail}")
    n = len(report.problems)
    console.print(
        f"\n{n} problem{'s' if n != 1 else ''} to fix"
        + (" — `kernelkeeper doctor --fix` applies the safe fixes" if n else "")
    )
    return 0 if not n else 1


def _doctor_fix_plan(report: Any, ctx: Context, found: Any, filters: Any, *, yes: bool) -> Any:
    """The safe fixes: sync's plan and adopting hand-made kernels that lack activation.

    The only kernels ``--fix`` removes are ones that cannot start — kernelkeeper's whose
    environment is gone (through sync), and with ``--yes`` hand-made ones whose interpreter
    is gone or whose kernel.json is invalid. Duplicates and shadowed kernels are advice: a
    notebook may need them, so they go only when the person names them (`kernelkeeper remove`).
    Files a package installed are never touched.
    """
    from ..kernelspecs import list_kernelspecs, scope_dir
    from ..overlay import list_overlays
    from ..packaged import packaged_kernels
    from ..plan import Action, Plan, plan_adopt, plan_sync
    from .kernels import restore_overlays

    folder = scope_dir("user")
    present = list_kernelspecs(native=False, also=folder)
    restored = restore_overlays(ctx, found, present)
    if restored:
        present = list_kernelspecs(native=False, also=folder)
    packaged = packaged_kernels(present.kernels)
    overlays = {o.key: o for o in list_overlays(ctx)}
    sync = plan_sync(found.environments, present, folder, filters, overlays, packaged)
    codes = {"kernel-without-activation", "display-name-version-mismatch"}
    to_adopt = {f.subject for f in report.findings if f.code in codes}
    visible = present.visible()
    adopt, _ = plan_adopt([visible[n] for n in sorted(to_adopt) if n in visible], found.environments, packaged)
    actions = [*sync.actions, *adopt.actions]
    touched = {(a.folder, a.kernel) for a in actions}
    if yes:
        for k in present.kernels:
            if k.builtin or k.managed or str(k.resource_dir) in packaged:
                continue
            if (k.resource_dir.parent, k.name) in touched:
                continue
            if k.status == "stale":
                why = f"it cannot start: {k.reason} (a hand-made kernel, removed because you gave --yes)"
            elif k.status == "invalid":
                why = f"it cannot start: {k.reason} (removed because you gave --yes)"
            else:
                continue
            actions.append(Action("remove", k.name, k.resource_dir.parent, why, k.env_prefix))
            touched.add((k.resource_dir.parent, k.name))
    return Plan(tuple(actions), (*restored, *sync.notes))
