"""`kernelkeeper overlay list|build|remove`: ipykernel outside the environments."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..context import Context
from ..errors import UserError
from .common import discover_args, print_json, spinner
from .table import Column, home_short, lines, terminal_width


def cmd_overlay(args: argparse.Namespace, env: dict[str, str]) -> int:
    from ..overlay import build, key_of, list_overlays, overlays_dir, remove

    ctx = Context.from_environ(env=env)
    if args.overlay_command == "list":
        overlays = list_overlays(ctx)
        if args.json:
            print_json([o.to_json() for o in overlays])
            return 0
        if not overlays:
            where = home_short(overlays_dir(ctx), ctx.home)
            print(f"no overlays yet in {where} (`kernelkeeper overlay build ENV` makes one)")
            return 0
        columns = [
            Column("overlay"),
            Column("ipykernel", shrink=False),
            Column("size", shrink=False),
            Column("path", path=True, min_width=20),
        ]
        rows = []
        for o in overlays:
            data = o.to_json()
            rows.append([o.key, str(data["ipykernel"]), f"{data['size_mb']} MB", home_short(o.path, ctx.home)])
        sys.stdout.write("".join(line + "\n" for line in lines(columns, rows, terminal_width())))
        return 0
    if args.overlay_command == "remove":
        from ..kernelspecs import list_kernelspecs

        # Named before anything goes: those kernels stay (their environments are still there) and wait for it.
        users: dict[str, list[str]] = {}
        for k in list_kernelspecs(native=False).kernels:
            if k.overlay is not None and k.status != "shadowed":
                users.setdefault(k.overlay, []).append(k.name)
        results = []
        for key in args.keys:
            if args.dry_run:
                if not (overlays_dir(ctx) / key).is_dir():
                    raise UserError(f"no overlay {key!r}", hint="`kernelkeeper overlay list` shows them")
                path, removed = overlays_dir(ctx) / key, False
            else:
                path, removed = remove(ctx, key), True
            results.append({"key": key, "path": str(path), "removed": removed, "kernels": users.get(key, [])})
        if args.json:
            print_json(results)
        else:
            for r in results:
                print(
                    f"{'removed' if r['removed'] else 'would remove'} the {r['key']} ipykernel overlay "
                    f"({home_short(r['path'], ctx.home)}): you asked for it by name"
                )
                if r["kernels"]:
                    print(
                        f"  kernels that run on it: {', '.join(r['kernels'])} — they are kept and cannot start "
                        f"until the overlay is back: `kernelkeeper sync` rebuilds it from the local cache when it "
                        f"can, `kernelkeeper overlay build ENV` (an environment of that Python) always"
                    )
        return 0
    # build
    from ..targets import resolve

    ctx, found = discover_args(args, env)
    target = resolve(args.target, found, ctx)
    key = key_of(target)
    if key is None:
        raise UserError(f"{target.prefix} runs Python {target.version or '?'}: ipykernel needs Python ≥ 3.8")
    from ..overlay import find_overlay

    existed = find_overlay(ctx, key) is not None and not args.rebuild
    if args.dry_run or existed:
        result: dict[str, Any] = {
            "key": key,
            "python": str(target.python),
            "path": str(overlays_dir(ctx) / key),
            "built": False,
        }
    else:
        with spinner(f"building the {key} ipykernel overlay") as say:
            overlay = build(ctx, target, progress=say, rebuild=args.rebuild)
        result = {**overlay.to_json(), "built": True}
    if args.json:
        print_json(result)
        return 0
    path = home_short(result["path"], ctx.home)
    if existed:
        print(f"the {key} ipykernel overlay is already built in {path} (--rebuild builds it again)")
    elif args.dry_run:
        print(f"would build the {key} ipykernel overlay in {path} with {home_short(str(target.python), ctx.home)}")
    else:
        print(
            f"built the {key} ipykernel overlay (ipykernel {result.get('ipykernel')}) in {path}: "
            f"Python {key.split('-')[-1]} environments without ipykernel can now have kernels"
        )
    return 0
