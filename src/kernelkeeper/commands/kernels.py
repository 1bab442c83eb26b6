"""`kernelkeeper list`, `remove`, `prune` and `sync`: the kernel list."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import UserError
from .common import (
    apply_and_report,
    config_path,
    confirm,
    discover_args,
    print_json,
    removal,
    render_plan,
    report,
    select_by_name,
)
from .table import Column, home_short, lines, pick_columns, terminal_width


def cmd_list(args: argparse.Namespace, env: dict[str, str]) -> int:
    from ..kernelspecs import list_kernelspecs

    kernels = list_kernelspecs()
    for folder, reason in kernels.problems:
        print(f"kernelkeeper: skipped {folder}: {reason}", file=sys.stderr)
    shown = [k for k in kernels.kernels if not args.status or k.status in args.status]
    if args.json:
        print_json([k.to_json() for k in shown])
        return 0
    columns = pick_columns(LIST_COLUMNS, args.columns)
    if not shown:
        # An empty table header and a legend say nothing; a sentence does.
        what = " or ".join(args.status) + " " if args.status else ""
        print(f"no {what}kernels" + ("" if args.status else " (`kernelkeeper sync` gives every environment one)"))
        return 0
    home = Path(env.get("HOME", "/"))
    rows = []
    for k in shown:
        interpreter = home_short(k.interpreter, home) if k.interpreter else (k.argv[0] if k.argv else "")
        cells = {
            "name": k.name + ("*" if k.managed else ""),
            "status": k.status + (" (overlay)" if k.overlay else ""),
            "display name": k.display_name or "",
            "interpreter": interpreter,
            "path": home_short(k.resource_dir, home),
        }
        rows.append([cells[c.name] for c in columns])
    width = terminal_width()
    out = lines(columns, rows, width)
    for k in shown:
        if k.status in ("stale", "unreachable", "invalid", "no-overlay", "no-ipykernel"):
            out.append(f"{k.name}: {k.reason}")
    if any(k.managed for k in shown) and width is not None:
        out.append("* made by kernelkeeper")
    sys.stdout.write("".join(line + "\n" for line in out))
    return 0


LIST_COLUMNS = (
    Column("name", min_width=12),
    Column("status", shrink=False),
    Column("display name", min_width=12),
    Column("interpreter", path=True, min_width=20),
    Column("path", path=True, min_width=20),
)


def cmd_remove(args: argparse.Namespace, env: dict[str, str]) -> int:
    plan = removal(select_by_name(args.names), "asked for by name")
    return apply_and_report(plan, args)


def cmd_prune(args: argparse.Namespace, env: dict[str, str]) -> int:
    from ..kernelspecs import list_kernelspecs

    stale = [k for k in list_kernelspecs(native=False).kernels if k.status == "stale"]
    plan = removal(stale, "interpreter is gone")
    if plan and not args.dry_run and not args.json:
        render_plan(plan, dry_run=True)
        if not confirm(f"remove {len(plan.actions)} stale kernelspec(s)?", args):
            # Declining is an answer, not a failure: exit 0, as the README's exit-code rule says.
            print("nothing removed: you declined")
            return 0
    elif plan and not args.dry_run and not args.yes:
        raise UserError("refusing to remove kernels without confirmation", hint="rerun with --yes")
    return apply_and_report(plan, args)


def cmd_sync(args: argparse.Namespace, env: dict[str, str]) -> int:
    from ..apply import apply
    from ..config import load_config
    from ..kernelspecs import list_kernelspecs, locked, scope_dir
    from ..overlay import list_overlays
    from ..packaged import packaged_kernels
    from ..plan import Plan, plan_sync

    config = load_config(config_path(env))
    filters = config.sync
    folder = scope_dir(args.scope)
    ctx, found = discover_args(args, env)

    def plan() -> Plan:
        present = list_kernelspecs(native=False, also=folder)
        overlays = {} if args.no_overlay else {o.key: o for o in list_overlays(ctx)}
        return plan_sync(
            found.environments,
            present,
            folder,
            filters,
            overlays,
            packaged_kernels(present.kernels),
            display_format=config.kernels.display_name_format,
        )

    if args.dry_run:
        return report(plan(), [], args)
    # Kernels whose overlay was removed get it back when the local cache can build it (never a download).
    restored = [] if args.no_overlay else restore_overlays(ctx, found, list_kernelspecs(native=False, also=folder))
    with locked(folder):
        # Planned under the lock: a concurrent run sees this run's kernels, not a stale list.
        planned = plan()
        results = apply(planned, lock=False)
    return report(Plan(planned.actions, (*restored, *planned.notes)), results, args)


def restore_overlays(ctx: Any, found: Any, present: Any) -> list[str]:
    """Rebuild, offline, the overlays that kernels still run on; one line each about what was rebuilt.

    Offline means from the local wheel cache only (``UV_OFFLINE``/``PIP_NO_INDEX``): sync never
    downloads. What cannot be rebuilt so stays missing, and sync's note says which command builds it.
    """
    import dataclasses

    from ..errors import UserError
    from ..overlay import build, find_overlay, key_of

    wanted: dict[str, Any] = {}
    envs = {str(e.prefix): e for e in found.environments}
    for k in present.kernels:
        if k.status != "no-overlay" or not k.managed:
            continue
        env = envs.get(str(k.marker.get("prefix")))
        if env is None or not env.healthy or env.python is None or key_of(env) != k.overlay:
            continue
        wanted.setdefault(k.overlay, env)
    done: list[str] = []
    offline = dataclasses.replace(ctx, env={**ctx.env, "UV_OFFLINE": "1", "PIP_NO_INDEX": "1"})
    for key, env in sorted(wanted.items()):
        if find_overlay(ctx, key) is not None:
            continue
        try:
            overlay = build(offline, env)
        except UserError:
            continue
        done.append(f"rebuilt the {key} ipykernel overlay from the local cache (offline): {overlay.path}")
    return done
