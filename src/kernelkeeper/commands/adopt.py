"""`kernelkeeper adopt`: hand-made kernels become kernelkeeper's, names kept."""

from __future__ import annotations

import argparse

from ..errors import UsageError, UserError
from .common import discover_args, make_console, print_json


def cmd_adopt(args: argparse.Namespace, env: dict[str, str]) -> int:
    from ..apply import apply
    from ..kernelspecs import check_name, list_kernelspecs
    from ..plan import plan_adopt

    if not args.names and not args.all:
        raise UsageError("name the kernels to adopt, or pass --all", hint="`kernelkeeper list` shows them")
    _, found = discover_args(args, env)
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
    from ..packaged import packaged_kernels

    # A kernel.json a package installed belongs to that package: refused, as doctor and sync say.
    plan, refused = plan_adopt(chosen, found.environments, packaged_kernels(chosen))
    results = [] if args.dry_run else apply(plan)
    errors = {id(r.action): r.error for r in results if r.error}
    if args.json:
        data = plan.to_json()
        data["dry_run"] = bool(args.dry_run)
        data["refused"] = [{"kernel": n, "reason": r} for n, r in refused]
        for entry, action in zip(data["actions"], plan.actions):
            entry["error"] = errors.get(id(action))
        print_json(data)
    else:
        console = make_console()
        for a in plan.actions:
            verb = "would adopt" if args.dry_run else "adopted"
            console.print(
                f"{verb} {a.kernel}: {a.reason}" + (f" [red](failed: {errors[id(a)]})[/red]" if id(a) in errors else "")
            )
        for name, reason in refused:
            console.print(f"[yellow]not adopted[/yellow] {name}: {reason}")
    named_refusals = refused and not args.all
    return 1 if errors or named_refusals else 0
