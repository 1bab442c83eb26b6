"""``GET /api/kernelspecs`` for kernelkeeper's provider: one body made off the event loop, reused, 304 when unchanged.

jupyter_server's own handler (``MainKernelSpecHandler.get``) builds a dict per kernel
and ``json.dumps`` the whole list on the event loop for every request: ~15 ms at 800
kernels, so fifty JupyterLab tabs asking at once hold ``/api/status`` for most of a
second. This handler asks the provider for the finished body (made in one worker
thread for all concurrent requests, reused while the kernel list is the same object),
answers ``304 Not Modified`` to a client that sends the ETag it has, and sends the
gzipped bytes to one that accepts gzip. Any other manager, or a provider that cannot
make the body, gets the stock handler's answer.

Added by the server extension (``server_extension._load_jupyter_server_extension``);
without the extension the stock handler serves, unchanged.
"""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from jupyter_server.services.kernelspecs.handlers import MainKernelSpecHandler
from tornado import web

from .provider import KernelKeeperSpecManager


def _accepts_gzip(header: str) -> bool:
    """Whether an Accept-Encoding header accepts gzip (``gzip;q=0`` refuses it)."""
    for item in header.split(","):
        name, _, params = item.strip().partition(";")
        if name.strip().lower() in ("gzip", "x-gzip"):
            q = params.strip().lower()
            return not (q.startswith("q=") and q[2:].strip().strip("0.") == "")
    return False


class KernelSpecsHandler(MainKernelSpecHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        ksm = self.kernel_spec_manager
        body = None
        if isinstance(ksm, KernelKeeperSpecManager):
            body = await ksm.rest_body(self.base_url, self.kernel_manager.default_kernel_name)
        if body is None:
            stock = super().get()  # the stock answer (its auth checks run again: cheap)
            if stock is not None:
                await stock
            return
        self.set_header("Content-Type", "application/json")
        # Set here, tornado's finish() neither hashes the body again nor compares ETags itself.
        self.set_header("Etag", body.etag)
        self.set_header("Vary", "Accept-Encoding")
        if self.check_etag_header():
            self.set_status(304)
            self.finish()
            return
        if _accepts_gzip(self.request.headers.get("Accept-Encoding", "")):
            self.set_header("Content-Encoding", "gzip")
            self.finish(body.gzipped)
        else:
            self.finish(body.data)
