"""Put kernelkeeper's provider where jupyter_client's tests look for KernelSpecManager.

Imported by the pytest plugin (the upstream test process) and by
``sitecustomize`` (the Python processes those tests start, e.g.
``python -m jupyter_client.kernelspecapp remove``). ``KK_UPSTREAM_MODE``
says what to do: ``stock`` leaves jupyter_client alone; ``provider`` and
``provider-env`` swap in a subclass of `KernelKeeperSpecManager` that only
records the dynamic kernels it lists.
"""

from __future__ import annotations

import os
import sys
from typing import Any

MODE_VAR = "KK_UPSTREAM_MODE"
CHILD_LOG_VAR = "KK_UPSTREAM_CHILD_LOG"
MODES = ("stock", "provider", "provider-env")

# Dynamic kernel names the provider listed since the last reset (one test).
seen_dynamic: set[str] = set()


def mode() -> str:
    value = os.environ.get(MODE_VAR, "stock")
    if value not in MODES:
        raise ValueError(f"{MODE_VAR}={value!r}: expected one of {MODES}")
    return value


def install() -> type:
    """Swap the class in (unless the mode is stock); return the class the tests will get."""
    from jupyter_client import kernelspec

    original = kernelspec.KernelSpecManager
    if mode() == "stock" or getattr(original, "_kk_upstream_shim", False):
        return original

    from kernelkeeper.provider import KernelKeeperSpecManager

    class UpstreamShimSpecManager(KernelKeeperSpecManager):
        """The provider with its shipping defaults; it only notes the dynamic kernels it adds."""

        _kk_upstream_shim = True

        def _dynamic_kernels(self, stock: dict[str, str]) -> dict[str, Any]:
            out: dict[str, Any] = super()._dynamic_kernels(stock)
            seen_dynamic.update(out)
            return out

    # The module attribute (the tests call kernelspec.KernelSpecManager()) and every
    # jupyter_client module that already imported the name (its default factories).
    for name, module in list(sys.modules.items()):
        if (name == "jupyter_client" or name.startswith("jupyter_client.")) and (
            getattr(module, "KernelSpecManager", None) is original
        ):
            module.KernelSpecManager = UpstreamShimSpecManager  # type: ignore[attr-defined]
    return UpstreamShimSpecManager


def describe(cls: type) -> str:
    """``module.Class (bases: …)``: the report says which class the tests really got."""
    bases = ", ".join(f"{b.__module__}.{b.__qualname__}" for b in cls.__mro__[1:3])
    return f"{cls.__module__}.{cls.__qualname__} (bases: {bases})"
