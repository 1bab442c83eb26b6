"""`kernelkeeper jupyter enable|disable|status`: the provider in Jupyter's config."""

from __future__ import annotations

import argparse
from typing import Any

from .common import make_console, print_json


def cmd_jupyter(args: argparse.Namespace, env: dict[str, str]) -> int:
    from .. import jupyter_config

    installs = _installs(env)
    if args.jupyter_command == "status":
        status = jupyter_config.status(installs)
        if args.json:
            print_json(status.to_json())
        else:
            _render_jupyter_status(status)
        return 0
    scope = args.scope or "user"
    if args.jupyter_command == "enable":
        result = jupyter_config.enable(scope, dry_run=args.dry_run, installs=installs)
    else:
        result = jupyter_config.disable(scope, dry_run=args.dry_run, installs=installs)
    if args.json:
        print_json(result.to_json())
        return 0
    console = make_console()
    for change in result.changes:
        console.print(_change_line(change, dry_run=args.dry_run, enable=args.jupyter_command == "enable"))
    _render_jupyters(console, result.jupyters, would=args.dry_run and result.changed)
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}")
    if not args.dry_run and result.changed:
        console.print("restart the Jupyter server for this to take effect", style="dim")
    return 0


def _change_line(change: Any, *, dry_run: bool, enable: bool) -> str:
    """One action line: what changed in which file, and why, in the tense of what happened."""
    message = str(change.message)
    if dry_run and change.modifies:
        # "removed X" -> "would remove X"; "set X" -> "would set X" (never "would removed").
        message = "would " + ("remove" + message[len("removed") :] if message.startswith("removed") else message)
    value = getattr(change.change, "value", "")
    if value in ("set", "replaced"):
        message += ": turns the provider on in every Jupyter that can import kernelkeeper"
    elif value == "removed" and not change.legacy:
        message += ": turns the provider off" if not enable else ""
    return message


def _installs(env: dict[str, str]) -> Any:
    """The Jupyters on this machine, from files (PATH and discovery), for saying what each will do."""
    from .. import jupyter_config
    from .common import discover_args

    ctx, found = discover_args(argparse.Namespace(root=[], depth=None, no_default_roots=False), env)
    return jupyter_config.find_jupyters(ctx, found.environments)


def _render_jupyters(console: Any, views: Any, *, would: bool = False) -> None:
    if not views:
        return
    console.print("Jupyters on this machine" + (" (after this change):" if would else ":"))
    marks = {"will-not-start": "[red]✗[/red]", "uses-provider": "[green]✓[/green]"}
    for view in views:
        console.print(f"  {marks.get(view.outcome.value, '·')} {view.message}")


def _render_jupyter_status(status: Any) -> None:
    console = make_console()
    ext = status.extension
    if ext.effective is None:
        console.print("kernelkeeper extension: not enabled (`kernelkeeper jupyter enable` enables it)")
    else:
        state = "[green]enabled[/green]" if ext.enabled else "disabled"
        console.print(f"kernelkeeper extension: {state} — {ext.effective.path}")
    for app in status.apps:
        label = "jupyter_server (JupyterLab, Notebook 7, JupyterHub)" if app.app == "jupyter_server" else "Notebook 6"
        winner = app.effective
        if winner is None:
            what = (
                "kernelkeeper provider, by the extension"
                if app.app == "jupyter_server" and status.provider_active
                else "stock KernelSpecManager"
            )
            console.print(f"{label}: {what} (nothing sets {app.section}.kernel_spec_manager_class)")
        else:
            states = {"enabled": "[green]kernelkeeper provider[/green]", "other": "another manager", "unknown": "?"}
            console.print(
                f"{label}: {states.get(app.state.value, app.state.value)} — set in {winner.path}"
                + (f" ({winner.value})" if winner.value and app.state.value != "enabled" else "")
            )
            if winner.note:
                console.print(f"  {winner.note}", style="dim")
        for lost in app.overridden:
            console.print(f"  [yellow]overridden:[/yellow] {lost.path} enables kernelkeeper, but {winner.path} wins")
    for legacy in status.legacy:
        console.print(
            f"[yellow]legacy setting:[/yellow] {legacy.path} sets {legacy.section}.kernel_spec_manager_class to "
            "kernelkeeper's provider: a Jupyter reading it that cannot import kernelkeeper will not start "
            "(`kernelkeeper jupyter enable` replaces it)"
        )
    _render_jupyters(console, status.jupyters)
    for problem in status.problems:
        console.print(f"[yellow]problem:[/yellow] {problem}")
