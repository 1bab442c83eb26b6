"""kernelkeeper as a jupyter_server extension: the provider, only where kernelkeeper can be imported.

``kernelkeeper jupyter enable`` writes the standard enable file
``<config dir>/jupyter_server_config.d/kernelkeeper.json`` =
``{"ServerApp": {"jpserver_extensions": {"kernelkeeper": true}}}`` instead of setting
``ServerApp.kernel_spec_manager_class`` in a config file. Why: every Jupyter that reads
that folder, in whatever environment, would try to import a class named there and
refuse to start when it cannot ("Bad config encountered during initialization"). An
extension it cannot import is only a logged warning (jupyter_server's
``ExtensionManager.add_extension``), and the server starts as before.

The switch happens in the link phase: ``ServerApp.initialize`` links extensions
(``init_server_extensions``) before ``init_configurables`` creates the kernel spec
manager, so setting the class here is as good as a config file. It is set through the
config (``update_config``), so ``--show-config`` shows it, and the provider, created
with the server as parent, still reads ``c.KernelKeeperSpecManager.*``.

Not done when the person chose a manager (any ``ServerApp.kernel_spec_manager_class``
in a config file or on the command line: setting the stock
``jupyter_client.kernelspec.KernelSpecManager`` is how one server opts out), or when the
server uses a gateway (remote kernels come from the gateway's own manager).
"""

from __future__ import annotations

import os
from typing import Any

PROVIDER = "kernelkeeper.provider.KernelKeeperSpecManager"
KEY = "kernel_spec_manager_class"


def _link_jupyter_server_extension(serverapp: Any) -> None:
    log = serverapp.log
    section = serverapp.config.get("ServerApp", {})
    chosen = section.get(KEY) if hasattr(section, "get") else None
    if chosen is not None:
        name = chosen if isinstance(chosen, str) else f"{chosen.__module__}.{chosen.__qualname__}"
        if name != PROVIDER:
            log.info("kernelkeeper | ServerApp.%s is set to %s: kernelkeeper's provider is not used", KEY, name)
        return
    gateway = getattr(serverapp, "gateway_config", None)
    if gateway is not None and getattr(gateway, "gateway_enabled", False):
        log.info("kernelkeeper | kernels come from a gateway: kernelkeeper's provider is not used")
        return
    # Import first: a broken install must leave the server's config as it was, not half set.
    from traitlets.config import Config

    from . import provider  # noqa: F401

    serverapp.update_config(Config({"ServerApp": {KEY: PROVIDER}}))


def _load_jupyter_server_extension(serverapp: Any) -> None:
    # The manager was chosen at link time; here the kernel list's handler is added.
    manager = type(getattr(serverapp, "kernel_spec_manager", None))
    serverapp.log.info("kernelkeeper | kernel spec manager: %s.%s", manager.__module__, manager.__qualname__)
    _record_started_kernels(serverapp)
    _watch_notebooks(serverapp)
    _add_handlers(serverapp)
    _add_kernelspecs_handler(serverapp, manager)


KERNEL_ACTIONS = "https://events.jupyter.org/jupyter_server/kernel_actions/v1"
CATALOG_PATH = "kernelkeeper/kernels"


def _record_started_kernels(serverapp: Any) -> None:
    """Each kernel the server starts goes first in the user's recent list (the short list's first part).

    jupyter_server emits a ``kernel_actions`` event for every start; listening to it records what
    the server really started, not every name a client looked up.
    """
    manager = getattr(serverapp, "kernel_spec_manager", None)
    record = getattr(manager, "record_started", None)
    logger = getattr(serverapp, "event_logger", None)
    if record is None or logger is None:
        return

    async def started(logger: Any, schema_id: str, data: dict[str, Any]) -> None:  # called with keywords
        name = data.get("kernel_name")
        if data.get("action") == "start" and data.get("status") == "success" and isinstance(name, str):
            record(name)

    logger.add_listener(schema_id=KERNEL_ACTIONS, listener=started)


CONTENTS_EVENTS = "https://events.jupyter.org/jupyter_server/contents_service/v1"


def _contents_root(serverapp: Any) -> Any:
    """The folder the server's notebooks are in, when its contents are files on this machine (else None)."""
    from pathlib import Path

    try:
        from jupyter_server.services.contents.fileio import FileManagerMixin
    except ImportError:
        return None
    contents = getattr(serverapp, "contents_manager", None)
    root = getattr(contents, "root_dir", None)
    if not isinstance(contents, FileManagerMixin) or not isinstance(root, str) or not os.path.isdir(root):
        return None
    return Path(root)


def _watch_notebooks(serverapp: Any) -> None:
    """The short list also holds the kernels the server's notebooks name (see notebook_kernels.py).

    A walk of the contents root in a daemon thread, then jupyter_server's ``contents_service``
    events (a notebook opened, saved, renamed, copied, deleted) re-read what they name.
    """
    manager: Any = getattr(serverapp, "kernel_spec_manager", None)
    if not hasattr(manager, "notebooks") or not getattr(manager, "list_notebook_kernels", False):
        return
    if getattr(manager, "list_all", False):
        return  # every kernel is listed already
    root = _contents_root(serverapp)
    if root is None:
        serverapp.log.info("kernelkeeper | the contents are not local files: notebooks' kernels are not listed")
        return
    from .notebook_kernels import NotebookKernels

    source = NotebookKernels(root, serverapp.log)
    manager.notebooks = source
    source.start()
    logger = getattr(serverapp, "event_logger", None)
    if logger is None:
        return

    async def changed(logger: Any, schema_id: str, data: dict[str, Any]) -> None:  # called with keywords
        action, path = data.get("action"), data.get("path")
        if not isinstance(path, str):
            return
        # A folder listed ("get") or a file saved that is not a notebook changes nothing; a folder
        # deleted, renamed or copied takes its notebooks with it.
        if action in ("get", "save") and not path.endswith(".ipynb"):
            return
        source.refresh(path)
        if isinstance(data.get("source_path"), str) and action == "rename":
            source.refresh(data["source_path"])

    try:
        logger.add_listener(schema_id=CONTENTS_EVENTS, listener=changed)
    except Exception as e:  # a jupyter_server without the contents events: the walk at start only
        serverapp.log.info("kernelkeeper | no contents events (%s): notebooks are read once, at start", e)


def _add_handlers(serverapp: Any) -> None:
    from jupyter_server.utils import url_path_join

    from .server_handlers import CatalogHandler

    pattern = url_path_join(serverapp.web_app.settings["base_url"], CATALOG_PATH)
    serverapp.web_app.add_handlers(".*$", [(pattern, CatalogHandler)])


def _add_kernelspecs_handler(serverapp: Any, manager: type) -> None:
    """The kernel list's body made once off the event loop, with ETag/304 and gzip (see rest.py)."""
    from .provider import KernelKeeperSpecManager

    if not issubclass(manager, KernelKeeperSpecManager):
        return
    try:
        from jupyter_server.utils import url_path_join

        from .rest import KernelSpecsHandler
    except ImportError as e:  # another jupyter_server layout: the stock handler serves, as before
        serverapp.log.info("kernelkeeper | stock /api/kernelspecs handler kept: %s", e)
        return
    # Handlers added by an extension are matched before the server's own (tornado's add_handlers inserts
    # them ahead of the default rules): the documented way extensions serve URLs.
    route = url_path_join(serverapp.base_url, "/api/kernelspecs")
    serverapp.web_app.add_handlers(".*$", [(route, KernelSpecsHandler)])
