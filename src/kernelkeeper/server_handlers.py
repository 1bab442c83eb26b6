"""``GET <base_url>kernelkeeper/kernels``: every kernel and why it is (not) in the short list.

What kernelkeeper's JupyterLab picker searches: each kernel's project folder, environment
path, kind, Python version and health, and the environments that cannot start a kernel
with the reason (``listing.catalog``). Authenticated and authorized as ``/api/kernelspecs``
is (resource ``kernelspecs``, action ``read``).
"""

from __future__ import annotations

from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import ensure_async
from tornado import web

from . import listing


class CatalogHandler(APIHandler):
    auth_resource = "kernelspecs"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        manager = self.kernel_spec_manager
        catalog = getattr(manager, "catalog", None)
        if catalog is not None:
            from .provider import _in_daemon_thread

            # Reading kernel.json files and waiting on discovery: off the event loop, as /api/kernelspecs.
            items: list[listing.Item] = await _in_daemon_thread(catalog)
            list_all = bool(getattr(manager, "list_all", False))
        else:  # the stock manager (the provider is off): what it lists, every kernel listed
            specs: dict[str, Any] = await ensure_async(manager.get_all_specs())
            items = listing.catalog(specs, recent=(), dynamic={}, user_kernels="")
            items = [listing.Item(**{**i.__dict__, "listed": "stock"}) for i in items]
            list_all = True
        self.set_header("Content-Type", "application/json")
        self.finish(
            {
                "kernels": [i.to_json() for i in items],
                "list_all": list_all,
                "provider": catalog is not None,
            }
        )
