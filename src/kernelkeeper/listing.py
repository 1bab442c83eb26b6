"""Which kernels the kernel list shows, and what a front end needs to know about each.

Listing is not answering. With hundreds of environments, a launcher that shows a
tile per kernel is a wall nobody can use (issue 16), so the provider *lists* a
short set inside a Jupyter server:

- the kernels this user's servers started recently (`Recent`, kept per user in
  kernelkeeper's data folder),
- the kernels written for everyone (system, sys-prefix, ``JUPYTER_PATH``
  folders) and every kernel a person or a package wrote that is not
  kernelkeeper's (few, and chosen on purpose),
- "Python (this project)" and the server's own ``python3``,
- the kernels named by the notebooks under the server's root folder
  (`notebook_kernels`), so stock front ends start them without asking,

while it still *answers* every name: ``get_kernel_spec`` finds any environment's
kernel, so a notebook saved with any of them opens and starts. The full list,
with what a picker groups and explains kernels by (project folder, environment
path, kind, Python version, health), is `catalog`, served by the server
extension at ``<base_url>kernelkeeper/kernels``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import tempfile
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import safeio
from .environments import Environment
from .kernel import display_name
from .kernelspecs import MARKER

log = logging.getLogger(__name__)

RECENT_FILE = "recent-kernels.json"
RECENT_LIMIT = 12
# jupyter_client's rule for kernel names: a file holding anything else was not written by us.
_NAME = re.compile(r"^[a-z0-9._-]{1,255}$")


def recent_path(data_dir: Path) -> Path:
    return data_dir / RECENT_FILE


def read_recent(path: Path, limit: int = RECENT_LIMIT) -> tuple[str, ...]:
    """The names in a recent-kernels file, newest first; anything unreadable or odd is no name."""
    try:
        data = safeio.load_json(path, max_depth=4)
    except (OSError, ValueError):
        return ()
    names = data.get("kernels") if isinstance(data, dict) else None
    if not isinstance(names, list):
        return ()
    good = [n for n in names if isinstance(n, str) and _NAME.match(n)]
    return tuple(dict.fromkeys(good))[:limit]


class Recent:
    """The kernels this user's servers started, newest first, at most ``limit``.

    ``record`` is called on the server's event loop when a kernel starts: it updates
    the list in memory and hands the write to a daemon thread, so a slow home folder
    never delays a kernel start. Several servers of one user share the file: each write
    re-reads it and puts its name first (the last writer wins a race; a name lost that
    way comes back the next time its kernel starts).
    """

    def __init__(self, path: Path, limit: int = RECENT_LIMIT) -> None:
        self.path = path
        self.limit = max(0, limit)
        self._lock = threading.Lock()
        self._names: tuple[str, ...] | None = None
        self._pending: list[str] = []
        self._writer: threading.Thread | None = None

    def names(self) -> tuple[str, ...]:
        with self._lock:
            if self._names is None:
                self._names = read_recent(self.path, self.limit)
            return self._names

    def record(self, name: str) -> None:
        if not _NAME.match(name) or self.limit == 0:
            return
        current = self.names()
        with self._lock:
            self._names = tuple(dict.fromkeys((name, *current)))[: self.limit]
            self._pending.append(name)
            if self._writer is None or not self._writer.is_alive():
                self._writer = threading.Thread(target=self._write, name="kernelkeeper-recent", daemon=True)
                self._writer.start()

    def flush(self, timeout: float = 10.0) -> None:
        """Wait for the pending write (tests, and a server shutting down)."""
        writer = self._writer
        if writer is not None:
            writer.join(timeout)

    def _write(self) -> None:
        while True:
            with self._lock:
                pending, self._pending = self._pending, []
            if not pending:
                return
            # Re-read: another server of this user may have written since; what this one started goes first.
            on_disk = read_recent(self.path, self.limit)
            merged = tuple(dict.fromkeys((*reversed(pending), *on_disk)))[: self.limit]
            with self._lock:
                self._names = tuple(dict.fromkeys((*(self._names or ()), *merged)))[: self.limit]
            self._save(merged)

    def _save(self, names: tuple[str, ...]) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(prefix=".recent-", suffix=".tmp", dir=self.path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    json.dump({"kernels": list(names)}, f)
                os.replace(tmp, self.path)  # replaces a planted link itself, never writes through it
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as e:
            log.info("kernelkeeper: could not save the recent kernels %s: %s", self.path, safeio.why(e))


# --- which kernels are listed -------------------------------------------------------------


def marker_of(entry: Mapping[str, Any]) -> dict[str, Any] | None:
    spec = entry.get("spec")
    metadata = spec.get("metadata") if isinstance(spec, dict) else None
    marker = metadata.get(MARKER) if isinstance(metadata, dict) else None
    return marker if isinstance(marker, dict) else None


def _under(path: str, folder: str) -> bool:
    return bool(folder) and (path == folder or path.startswith(folder.rstrip(os.sep) + os.sep))


def why_listed(
    name: str,
    entry: Mapping[str, Any],
    *,
    recent: Iterable[str],
    dynamic: Iterable[str],
    user_kernels: str,
    named: Iterable[str] = (),
) -> str | None:
    """Why a kernel is in the short list ("recent", "notebook", "shared", "this-project", "own"), or None.

    ``dynamic``: the provider's zero-registration kernels; ``user_kernels``: the user's
    kernels folder (``jupyter_data_dir()/kernels``), where ``sync`` writes one per env;
    ``named``: kernels named by the notebooks the server can open (`notebook_kernels`).
    """
    if name in set(recent):
        return "recent"
    if name in set(named):
        return "notebook"
    marker = marker_of(entry)
    if marker is not None and marker.get("kind") == "this-project":
        return "this-project"
    if name in set(dynamic):
        return None
    resource_dir = str(entry.get("resource_dir") or "")
    if marker is None:
        return "own"  # written by a person or a package, or the server's own python3
    if not _under(os.path.normpath(resource_dir), os.path.normpath(user_kernels)):
        return "shared"
    return None


def short_list(
    specs: Mapping[str, Any],
    *,
    recent: Iterable[str],
    dynamic: Iterable[str],
    user_kernels: str,
    named: Iterable[str] = (),
) -> dict[str, Any]:
    """The kernels `why_listed` keeps, in the order they came.

    Only kernels in ``specs`` (what the server answers) are kept: a notebook naming a kernel
    that does not exist adds nothing.
    """
    recent, dynamic, named = tuple(recent), frozenset(dynamic), frozenset(named)
    return {
        name: entry
        for name, entry in specs.items()
        if why_listed(name, entry, recent=recent, dynamic=dynamic, user_kernels=user_kernels, named=named) is not None
    }


# --- the full list, for a picker ----------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One entry of the picker: a kernel that starts, or an environment that cannot, with the reason."""

    name: str | None  # None: no kernel (the environment cannot start one)
    display_name: str
    kind: str
    env_name: str
    project: str | None
    prefix: str | None
    python: str | None
    python_version: str | None
    listed: str | None  # why it is in the short list, or None
    startable: bool
    health: str  # "ok", or what is wrong

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "display_name": self.display_name,
            "kind": self.kind,
            "env_name": self.env_name,
            "project": self.project,
            "prefix": self.prefix,
            "python": self.python,
            "python_version": self.python_version,
            "listed": self.listed,
            "recent": self.listed == "recent",
            "startable": self.startable,
            "health": self.health,
        }


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def kernel_item(name: str, entry: Mapping[str, Any], env: Environment | None, listed: str | None) -> Item:
    spec = entry.get("spec") if isinstance(entry.get("spec"), dict) else {}
    assert isinstance(spec, dict)
    marker = marker_of(entry) or {}
    argv = spec.get("argv")
    argv0 = argv[0] if isinstance(argv, list) and argv and isinstance(argv[0], str) else None
    language = "python" if spec.get("language") == "python" else "other"
    kind = _str(marker.get("kind")) or (env.kind if env else None) or language
    project = str(env.project) if env is not None and env.project else _str(marker.get("project"))
    prefix = str(env.prefix) if env is not None else _str(marker.get("prefix"))
    python = str(env.python) if env is not None and env.python else _str(marker.get("python")) or argv0
    health = "ok"
    if env is not None and not env.healthy:
        health = "; ".join(env.problems)
    return Item(
        name=name,
        display_name=_str(spec.get("display_name")) or name,
        kind=kind,
        env_name=(env.name if env else None) or _str(marker.get("name")) or name,
        project=project,
        prefix=prefix,
        python=python,
        python_version=(env.version if env else None) or _str(marker.get("python_version")),
        listed=listed,
        startable=health == "ok",
        health=health,
    )


def unavailable_item(env: Environment, reason: str) -> Item:
    return Item(
        name=None,
        display_name=display_name(env),
        kind=env.kind,
        env_name=env.name,
        project=str(env.project) if env.project else None,
        prefix=str(env.prefix),
        python=str(env.python) if env.python else None,
        python_version=env.version,
        listed=None,
        startable=False,
        health=reason,
    )


def catalog(
    specs: Mapping[str, Any],
    *,
    recent: Iterable[str],
    dynamic: Mapping[str, Environment],
    user_kernels: str,
    environments: Iterable[Environment] = (),
    named: Iterable[str] = (),
) -> list[Item]:
    """Every kernel (with why it is listed), then every environment that has none and why.

    ``environments``: what discovery found; an environment whose prefix no kernel runs
    and that is broken, or has no ipykernel, comes back as an entry that cannot start.
    """
    recent, named = tuple(recent), frozenset(named)
    by_prefix = {str(e.prefix): e for e in environments}
    items: list[Item] = []
    covered: set[str] = set()
    for name, entry in specs.items():
        env = dynamic.get(name)
        marker = marker_of(entry) or {}
        if env is None and isinstance(marker.get("prefix"), str):
            env = by_prefix.get(marker["prefix"])
        if env is not None:
            covered.add(str(env.prefix))
        listed = why_listed(name, entry, recent=recent, dynamic=dynamic, user_kernels=user_kernels, named=named)
        items.append(kernel_item(name, entry, env, listed))
    for env in by_prefix.values():
        if str(env.prefix) in covered:
            continue
        if not env.healthy:
            items.append(unavailable_item(env, "; ".join(env.problems)))
        elif not env.has_ipykernel:
            items.append(
                unavailable_item(env, f"no ipykernel: `kernelkeeper add --install-ipykernel {env.prefix}` gives it one")
            )
    return items
