"""`kernelkeeper envs`: every environment discovery finds."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .common import build_context, home_short, make_console, print_json


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
            home_short(e.project, ctx.home) if e.project else "",
            home_short(e.prefix, ctx.home),
        )
    console = make_console()
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
