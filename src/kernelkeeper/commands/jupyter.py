"""`kernelkeeper jupyter enable|disable|status`: the provider in Jupyter's config."""

from __future__ import annotations

import argparse
from typing import Any

from .common import make_console, print_json


def cmd_jupyter(args: argparse.Namespace, env: dict[str, str]) -> int:
    from .. import jupyter_config

    if args.jupyter_command == "status":
        status = jupyter_config.status()
        if args.json:
            print_json(status.to_json())
        else:
            _render_jupyter_status(status)
        return 0
    scope = args.scope or "user"
    if args.jupyter_command == "enable":
        result = jupyter_config.enable(scope, dry_run=args.dry_run)
    else:
        result = jupyter_config.disable(scope, dry_run=args.dry_run)
    if args.json:
        print_json(result.to_json())
        return 0
    console = make_console()
    for change in result.changes:
        console.print(("would " if args.dry_run and change.modifies else "") + change.message)
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}")
    if not args.dry_run and result.changed:
        console.print("restart the Jupyter server for this to take effect", style="dim")
    return 0


def _render_jupyter_status(status: Any) -> None:
    console = make_console()
    for app in status.apps:
        label = "jupyter_server (JupyterLab, Notebook 7, JupyterHub)" if app.app == "jupyter_server" else "Notebook 6"
        winner = app.effective
        if winner is None:
            console.print(f"{label}: stock KernelSpecManager (nothing sets {app.section}.kernel_spec_manager_class)")
        else:
            state = {"enabled": "[green]kernelkeeper provider[/green]", "other": "another manager", "unknown": "?"}
            console.print(
                f"{label}: {state.get(app.state.value, app.state.value)} — set in {winner.path}"
                + (f" ({winner.value})" if winner.value and app.state.value != "enabled" else "")
            )
            if winner.note:
                console.print(f"  {winner.note}", style="dim")
        for lost in app.overridden:
            console.print(f"  [yellow]overridden:[/yellow] {lost.path} enables kernelkeeper, but {winner.path} wins")
    for problem in status.problems:
        console.print(f"[yellow]problem:[/yellow] {problem}")
