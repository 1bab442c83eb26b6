"""kernelkeeper: every Python environment on the machine as a Jupyter kernel."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    """jupyter_server's entry point: ``kernelkeeper.server_extension`` turns the provider on (see there)."""
    return [{"module": "kernelkeeper.server_extension"}]
