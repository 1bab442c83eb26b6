"""`kernelkeeper cache list|remove`: the environments notebooks declared (see notebookenv.py)."""

from __future__ import annotations

import argparse
import re
import time

from ..errors import UserError
from .common import print_json

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float:
    """``30d``, ``12h``, ``2w``, ``90m``, ``45s`` (a bare number is days) in seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if not m:
        raise UserError(f"not a duration: {text!r}", hint="write e.g. 30d, 12h, 2w, 90m")
    return float(m.group(1)) * _UNITS[m.group(2) or "d"]


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def cmd_cache(args: argparse.Namespace, env: dict[str, str]) -> int:
    from ..notebookenv import envs_root, list_cached, remove_cached

    if args.cache_command == "list":
        found = list_cached(env)
        if args.json:
            print_json([c.to_json() for c in found])
            return 0
        if not found:
            print(f"no notebook environments in {envs_root(env)}")
        now = time.time()
        for c in found:
            used = f"used {(now - c.last_used) / 86400:.1f} days ago" if c.last_used else "never used"
            state = "" if c.built else " (not built)"
            print(f"{c.key}{state}  {_mb(c.size)}  {used}  {', '.join(c.dependencies) or '(no dependencies)'}")
            for nb in c.notebooks:
                print(f"  {nb}")
        return 0
    if not args.keys and args.unused_for is None:
        raise UserError("say what to remove", hint="name KEYs from `kernelkeeper cache list`, or --unused-for 30d")
    unused = parse_duration(args.unused_for) if args.unused_for is not None else None
    chosen = remove_cached(env, list(args.keys), unused, args.dry_run)
    if args.json:
        print_json([{**c.to_json(), "removed": not args.dry_run} for c in chosen])
        return 0
    verb = "would remove" if args.dry_run else "removed"
    for c in chosen:
        print(f"{verb} {c.key} ({_mb(c.size)}, {', '.join(c.dependencies) or 'no dependencies'}): {c.path}")
    if not chosen:
        print("nothing to remove")
    return 0
