"""`kernelkeeper which NOTEBOOK`: the kernel a notebook asks for and what it runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import discover_args, kernels_as_jupyter_sees_them, make_console, print_json


def cmd_which(args: argparse.Namespace, env: dict[str, str]) -> int:
    from ..which import read_notebook_kernel, which

    ctx, found = discover_args(args, env)
    kernels, _ = kernels_as_jupyter_sees_them(ctx, found)
    dynamic = None
    name, _ = read_notebook_kernel(Path(args.notebook))
    if name and name.lower() not in kernels.visible() and _provider_enabled():
        from jupyter_client.kernelspec import NoSuchKernel

        from ..provider import KernelKeeperSpecManager

        try:
            dynamic = KernelKeeperSpecManager().get_kernel_spec(name).to_dict()
        except NoSuchKernel:
            dynamic = None
    result = which(Path(args.notebook), kernels, found, dynamic)
    if args.json:
        print_json(result.to_json())
    else:
        console = make_console()
        console.print(
            f"notebook asks for: {result.asks_for or '(nothing)'}"
            + (f"  ({result.asks_display_name})" if result.asks_display_name else "")
        )
        console.print(f"Jupyter picks:     {result.kernelspec or '(no kernelspec)'}")
        if result.interpreter:
            console.print(f"which runs:        {result.interpreter}")
        if result.env:
            console.print(f"environment:       {result.env}" + (f" ({result.env_kind})" if result.env_kind else ""))
        if result.reason:
            console.print(f"[yellow]{result.reason}[/yellow]")
        if result.fix:
            console.print(f"fix: {result.fix}")
    return 0 if result.starts else 1


def _provider_enabled() -> bool:
    try:
        from ..jupyter_config import status

        return bool(status().server.enabled)
    except Exception:
        return False
