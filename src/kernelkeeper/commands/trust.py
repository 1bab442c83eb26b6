"""`kernelkeeper trust DIR | --list | --remove DIR`: the folders "Python (this project)" may run from."""

from __future__ import annotations

import argparse

from ..context import Context
from ..errors import UsageError
from .common import print_json


def cmd_trust(args: argparse.Namespace, env: dict[str, str]) -> int:
    from ..trust import add, load, remove, trust_file

    ctx = Context.from_environ(env=env)
    if args.list:
        if args.folder or args.remove:
            raise UsageError("--list takes no folder", hint="`kernelkeeper trust --list`")
        entries = load(ctx)
        if args.json:
            print_json([{**e.to_json(), "state": e.state()} for e in entries])
            return 0
        if not entries:
            print(f"no trusted folders ({trust_file(ctx)})")
        for e in entries:
            state = e.state()
            print(f"{e.path}  {state if state != 'ok' else 'trusted'}  owner {e.owner or e.owner_uid}  since {e.added}")
        return 0
    if args.remove and args.folder:
        raise UsageError("give the folder once: `kernelkeeper trust --remove DIR`")
    if not args.remove and not args.folder:
        raise UsageError("which folder?", hint="`kernelkeeper trust DIR` (the kernel's notice names it), or `--list`")
    change = (
        remove(ctx, args.remove, dry_run=args.dry_run) if args.remove else add(ctx, args.folder, dry_run=args.dry_run)
    )
    if args.json:
        print_json(change.to_json())
        return 0
    would = "would " if args.dry_run else ""
    if change.action == "already":
        print(f"{change.entry.path}: {change.note}")
    elif change.action == "add":
        print(f'{would}trust {change.entry.path}: "Python (this project)" runs its environments (restart the kernel)')
    else:
        print(f"{would}no longer trust {change.entry.path}")
    if change.note and change.action != "already":
        print(f"kernelkeeper: note: {change.note}")
    return 0
