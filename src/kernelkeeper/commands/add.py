"""`kernelkeeper add`: one kernel for one environment, or the "Python (this project)" kernel."""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import Any

from ..errors import UsageError, UserError
from .common import config_path, discover_args, print_json, spinner
from .table import home_short


def _parse_env_pairs(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key or not key.replace("_", "a").isalnum():
            raise UsageError(f"--env {pair}: expected KEY=VALUE", hint="e.g. --env OMP_NUM_THREADS=4")
        out[key] = value
    return out


def cmd_add(args: argparse.Namespace, env: dict[str, str]) -> int:
    from ..apply import apply
    from ..config import load_config
    from ..environments import Found, merge
    from ..install import install_ipykernel
    from ..kernel import display_name, kernel_json, kernel_name, logo_files
    from ..kernelspecs import check_name, list_kernelspecs, locked, scope_dir
    from ..overlay import build as build_overlay
    from ..overlay import clashes, find_overlay, key_of
    from ..plan import Action, Plan, choices, record_choices, taken_names
    from ..targets import resolve_explained

    if args.this_project:
        return _add_this_project(args)
    ctx, found = discover_args(args, env)
    target, chosen = resolve_explained(args.target, found, ctx)
    would = "would " if args.dry_run else ""
    home = ctx.home
    said: list[str] = [chosen] if chosen else []  # what was done and why, one line each, before the result
    if chosen and not args.json:
        print(chosen)  # before any build: the person sees at once which environment it is
    if not target.healthy:
        raise UserError(f"{target.prefix} is broken: {'; '.join(target.problems)}", hint="recreate the environment")
    ran: list[str] = []
    overlay = None
    if not target.has_ipykernel:
        command, cwd = install_ipykernel(target, env)
        if args.install_ipykernel:
            if not args.dry_run:
                from ..run import run_checked

                run_checked(command, env=env, cwd=cwd)
                target = merge([Found(target.prefix, k, target.name, target.project) for k in target.kinds], ctx.home)
                if not target.has_ipykernel:
                    raise UserError(f"`{' '.join(command)}` ran but ipykernel is still missing in {target.prefix}")
            ran.append(" ".join(command) + (f"   (in {cwd})" if cwd else ""))
            said.append(
                f"{'would run' if args.dry_run else 'ran'} `{' '.join(command)}`"
                + (f" in {home_short(cwd, home)}" if cwd else "")
                + f": {'to install' if args.dry_run else 'installed'} ipykernel into {home_short(target.prefix, home)}"
                + " as its tool would (you gave --install-ipykernel)"
            )
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
            why = f"{target.name} has no ipykernel, and the overlay gives its kernel one without changing it"
            if overlay is None and args.dry_run:
                said.append(f"would build the {key_of(target)} ipykernel overlay: {why}")
            elif overlay is None:
                with spinner(f"building the {key_of(target)} ipykernel overlay") as say:
                    overlay = build_overlay(ctx, target, progress=say)
                ran.append(overlay.info.get("command", "built overlay"))
                said.append(
                    f"built the {overlay.key} ipykernel overlay (ipykernel {overlay.ipykernel_version}) in "
                    f"{home_short(overlay.path, home)}: {why}"
                )
            else:
                said.append(f"runs on the {overlay.key} ipykernel overlay: {why}")
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
    with locked(folder) if not args.dry_run else contextlib.nullcontext():
        present = list_kernelspecs(also=folder)
        existing = next(
            (k for k in present.in_dir(folder) if k.managed and k.marker.get("prefix") == str(target.prefix)),
            None,
        )
        # What the person chose before stays unless they choose again; recorded so `sync` keeps it too.
        kept_display, kept_env = choices(existing) if existing is not None else (None, {})
        display = args.display_name or kept_display
        extra = {**kept_env, **extra}
        # Only a display name the person gave is recorded as theirs; the format's is the default.
        fmt = load_config(config_path(env)).kernels.display_name_format
        spec = kernel_json(target, display=display or display_name(target, fmt), extra_env=extra, overlay=overlay)
        record_choices(spec, display, extra)
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
        action = Action(verb, name, folder, f"asked for {target.prefix}", target.prefix, spec, logo_files(target))
        result: dict[str, Any] = {
            **action.to_json(),
            "ran": ran,
            "chosen": chosen,
            "dry_run": bool(args.dry_run),
            "spec": spec,
        }
        if not args.dry_run:
            (applied,) = apply(Plan((action,)), lock=False)
            if applied.error:
                raise UserError(f"could not write {action.path}: {applied.error}")
    if args.json:
        print_json(result)
    else:
        for line in said[1 if chosen else 0 :]:
            print(line)
        done = {"add": "added", "update": "updated"}[verb] if not args.dry_run else verb
        because = "" if verb == "add" else ": it already had one in this scope, which keeps its name"
        print(
            f"{would}{done} kernel {name!r} for {home_short(target.prefix, home)} in {home_short(folder, home)}, "
            f"shown as {spec['display_name']!r}{because}"
        )
    return 0


THIS_PROJECT = "python-this-project"


def this_project_spec() -> dict[str, Any]:
    """One kernel that runs whichever environment the notebook's project has (see launch.py)."""
    from .. import __version__, launch
    from ..kernelspecs import MARKER

    return {
        "argv": [sys.executable, "-I", "-S", launch.__file__, "-f", "{connection_file}"],
        "display_name": "Python (this project)",
        "language": "python",
        "interrupt_mode": "signal",
        "metadata": {"debugger": True, MARKER: {"kind": "this-project", "tool_version": __version__}},
    }


def _add_this_project(args: argparse.Namespace) -> int:
    from ..apply import apply
    from ..kernelspecs import check_name, scope_dir
    from ..plan import Action, Plan

    if args.target:
        raise UsageError("--this-project takes no TARGET: the kernel finds the project at launch")
    name = check_name(args.name or THIS_PROJECT)
    folder = scope_dir(args.scope)
    spec = this_project_spec()
    if args.display_name:
        spec["display_name"] = args.display_name
    verb = "update" if (folder / name).exists() else "add"
    if (folder / name).exists():
        from ..safeio import load_json

        try:
            current = load_json(folder / name / "kernel.json")  # a FIFO planted there must not hang `add`
        except (OSError, ValueError):
            current = {}
        metadata = current.get("metadata") if isinstance(current, dict) else None
        marker = metadata.get("kernelkeeper") if isinstance(metadata, dict) else None
        if not isinstance(marker, dict) or marker.get("kind") != "this-project":
            raise UserError(f"{folder / name} is another kernel; it is not overwritten", hint="choose --name")
    action = Action(verb, name, folder, "one kernel for every project: the environment is found at launch", None, spec)
    if not args.dry_run:
        (applied,) = apply(Plan((action,)))
        if applied.error:
            raise UserError(f"could not write {action.path}: {applied.error}")
    if args.json:
        print_json({**action.to_json(), "dry_run": bool(args.dry_run), "spec": spec})
    else:
        done = verb if args.dry_run else {"add": "added", "update": "updated"}[verb]
        print(
            f"{'would ' if args.dry_run else ''}{done} kernel {name!r} in {folder}, shown as "
            f"{spec['display_name']!r}: it runs the environment of the project each notebook is in"
        )
    return 0
