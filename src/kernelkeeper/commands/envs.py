"""`kernelkeeper envs`: every environment discovery finds."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .common import build_context, print_json
from .table import Column, home_short, lines, pick_columns, terminal_width


def cmd_envs(args: argparse.Namespace, env: dict[str, str]) -> int:
    from ..discovery import discover

    ctx = build_context(args, env)
    found = discover(ctx)
    environments = found.environments
    if args.kind:
        environments = tuple(e for e in environments if args.kind in e.kinds)
    for skipped in found.skipped:
        print(f"kernelkeeper: skipped {skipped.path}: {skipped.reason}", file=sys.stderr)
    from ..overlay import key_of, list_overlays

    built = {o.key for o in list_overlays(ctx)}

    def overlay_of(e: Any) -> str | None:
        key = key_of(e)
        return key if not e.has_ipykernel and key in built else None

    if args.json:
        print_json([{**e.to_json(), "overlay": overlay_of(e)} for e in environments])
        return 0
    columns = pick_columns(ENVS_COLUMNS, args.columns)
    rows = []
    for e in environments:
        cells = {
            "name": e.name,
            "kind": e.kind if len(e.kinds) == 1 else f"{e.kind} ({', '.join(e.kinds[1:])})",
            "python": (e.version or "?") + ("" if e.healthy else " broken"),
            "ipykernel": "yes" if e.has_ipykernel else ("overlay" if overlay_of(e) else "no"),
            "project": home_short(e.project, ctx.home) if e.project else "",
            "path": home_short(e.prefix, ctx.home),
        }
        rows.append([cells[c.name] for c in columns])
    out = lines(columns, rows, terminal_width()) if environments else []
    broken = [e for e in environments if not e.healthy]
    for e in broken:
        out.append(f"{e.name} ({home_short(e.prefix, ctx.home)}): {'; '.join(e.problems)}")
    what = f"{args.kind} environment" if args.kind else "environment"
    count = f"{len(environments)} {what}{'s' if len(environments) != 1 else ''}"
    out.append(count + (f", {len(broken)} broken" if broken else ""))
    sys.stdout.write("".join(line + "\n" for line in out))
    return 0


ENVS_COLUMNS = (
    Column("name", min_width=12),
    Column("kind", min_width=6),
    Column("python", shrink=False),
    Column("ipykernel", shrink=False),
    Column("project", path=True, min_width=16),
    Column("path", path=True, min_width=24),
)
