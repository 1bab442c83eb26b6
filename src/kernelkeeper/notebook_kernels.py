"""The kernels named by the notebooks a Jupyter server can open, so stock front ends start them.

Stock JupyterLab and Notebook 7 start a notebook's kernel without asking only when its
name is in the ``/api/kernelspecs`` list the page loaded (``@jupyterlab/apputils``
``sessioncontext.tsx``: ``Private.getDefaultKernel`` looks for an exact match among
``specs.kernelspecs``; anything else opens "Select Kernel"). The provider's short list
leaves most kernels out, so it also lists the kernels the server's own notebooks name:
the notebooks under the contents root (``ServerApp.root_dir``), found by one bounded
walk in a daemon thread when the server starts and kept current from jupyter_server's
``contents_service`` events (a notebook opened, saved, renamed, copied or deleted
through the server is re-read).

Bounded on a huge root: hidden folders, ``node_modules``, ``__pycache__``,
``site-packages`` and environments (a folder holding ``pyvenv.cfg`` or ``conda-meta``)
are not entered; links are not followed; the walk stops after `MAX_DEPTH` levels,
`MAX_ENTRIES` folder entries, `MAX_NOTEBOOKS` notebooks or `MAX_SECONDS`, whichever
comes first, and says so in the server's log. A notebook is read through safeio
(regular files only) and only its last `TAIL` bytes, where nbformat's writer puts the
top-level ``metadata`` (``json.dumps(nb, sort_keys=True, indent=1)``: ``cells``,
``metadata``, ``nbformat``, ``nbformat_minor``); a notebook written otherwise, or one
whose metadata is larger than the tail (widget state), is read whole up to `FULL_LIMIT`.
"""

from __future__ import annotations

import collections
import itertools
import json
import logging
import os
import queue
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import safeio

log = logging.getLogger(__name__)

MAX_DEPTH = 8  # folder levels below the root
MAX_ENTRIES = 200_000  # folder entries looked at
MAX_NOTEBOOKS = 10_000  # notebooks read
MAX_SECONDS = 30.0
TAIL = 64 * 1024
FULL_LIMIT = 8 * 1024 * 1024
# The walk shares the server's GIL: a short sleep now and then lets the event loop take it at once
# instead of after the 5 ms switch interval, several times per request (bench/bench_notebook_walk.py).
YIELD_EVERY = 32
YIELD_SECONDS = 0.001
NOTEBOOK_DEPTH = 64  # JSON nesting a notebook read whole may have
SKIP_FOLDERS = frozenset({"node_modules", "__pycache__", "site-packages", "dist-packages"})
ENVIRONMENT_MARKERS = frozenset({"pyvenv.cfg", "conda-meta"})
# jupyter_client's rule for kernel names: anything else is no kernel this server has.
_NAME = re.compile(r"^[a-zA-Z0-9._-]{1,255}$")
_TOP_METADATA = '\n "metadata": '  # one space: a top-level key in nbformat's indent=1 output


def _kernel_name(metadata: Any) -> str | None:
    spec = metadata.get("kernelspec") if isinstance(metadata, dict) else None
    name = spec.get("name") if isinstance(spec, dict) else None
    return name if isinstance(name, str) and _NAME.match(name) else None


def notebook_kernel(path: str | os.PathLike[str], full_limit: int = FULL_LIMIT) -> str | None:
    """The kernel name a notebook's ``metadata.kernelspec.name`` holds, or None (none, unreadable, odd).

    The tail first (where nbformat writes the metadata); a notebook written otherwise is read
    whole when it is at most ``full_limit`` bytes. Raises nothing: a FIFO, a device, a broken or
    hostile file is a notebook without a kernel.
    """
    try:
        size, tail = safeio.read_tail(path, TAIL)
    except OSError:
        return None
    text = tail.decode("utf-8", errors="replace")  # the tail may start inside a character
    at = text.rfind(_TOP_METADATA)
    if at >= 0:
        try:
            metadata, _ = json.JSONDecoder().raw_decode(text, at + len(_TOP_METADATA))
        except (ValueError, RecursionError):
            metadata = None
        if isinstance(metadata, dict):
            return _kernel_name(metadata)
    if size > full_limit:
        return None
    try:
        if size <= len(tail):
            data = safeio.loads_json(tail, os.fspath(path), max_depth=NOTEBOOK_DEPTH)
        else:
            data = safeio.load_json(path, full_limit, max_depth=NOTEBOOK_DEPTH)
    except (OSError, ValueError):
        return None
    return _kernel_name(data.get("metadata")) if isinstance(data, dict) else None


@dataclass(frozen=True)
class Walk:
    """What one walk found: notebook path -> kernel name, and how far it went."""

    kernels: dict[str, str]
    folders: int
    entries: int
    notebooks: int
    seconds: float
    stopped: str | None  # why it stopped early ("depth" is not a stop: deeper folders are skipped), or None


def walk(
    root: Path,
    *,
    max_depth: int = MAX_DEPTH,
    max_entries: int = MAX_ENTRIES,
    max_notebooks: int = MAX_NOTEBOOKS,
    max_seconds: float = MAX_SECONDS,
    clock: Callable[[], float] = time.monotonic,
) -> Walk:
    """The notebooks under ``root`` and the kernels they name, breadth first (the shallow ones first)."""
    started = clock()
    kernels: dict[str, str] = {}
    folders = entries = notebooks = 0
    stopped: str | None = None
    pending: collections.deque[tuple[str, int]] = collections.deque([(os.fspath(root), 0)])
    while pending and stopped is None:
        folder, depth = pending.popleft()
        if clock() - started > max_seconds:
            stopped = f"{max_seconds:g} s"
            break
        try:
            with os.scandir(folder) as it:
                # At most what the entry budget has left (+1 to notice the end): a folder of millions
                # of files is not listed whole first.
                listing = list(itertools.islice(it, max(0, max_entries - entries) + 1))
        except OSError:
            continue
        folders += 1
        if depth > 0 and any(e.name in ENVIRONMENT_MARKERS for e in listing):
            continue  # an environment: its notebooks are packages' files, not the person's
        for entry in listing:
            entries += 1
            if entries > max_entries:
                stopped = f"{max_entries:,} entries"
                break
            name = entry.name
            if name.startswith("."):
                continue  # hidden: jupyter_server does not open them by default either
            try:
                if entry.is_dir(follow_symlinks=False):
                    if depth < max_depth and name not in SKIP_FOLDERS:
                        pending.append((entry.path, depth + 1))
                elif name.endswith(".ipynb") and entry.is_file(follow_symlinks=False):
                    notebooks += 1
                    if notebooks > max_notebooks:
                        stopped = f"{max_notebooks:,} notebooks"
                        break
                    kernel = notebook_kernel(entry.path)
                    if kernel is not None:
                        kernels[entry.path] = kernel
                    if notebooks % YIELD_EVERY == 0:
                        time.sleep(YIELD_SECONDS)
            except OSError:
                continue
    return Walk(kernels, folders, entries, min(notebooks, max_notebooks), clock() - started, stopped)


class NotebookKernels:
    """The kernel names the notebooks under ``root`` hold, kept current in one daemon thread.

    ``start`` walks the root once; ``refresh(api_path)`` (from jupyter_server's contents
    events, on the event loop) queues a re-read of that notebook or folder and returns at
    once. ``names`` is what the short list adds.
    """

    def __init__(self, root: Path, logger: logging.Logger | logging.LoggerAdapter[Any] = log, **caps: Any) -> None:
        self.root = Path(os.path.abspath(root))
        self.log = logger
        self.caps = caps
        self._lock = threading.Lock()
        self._kernels: dict[str, str] = {}
        self._names: frozenset[str] = frozenset()
        self._walked = threading.Event()
        self._queued: set[str] = set()
        # A path to re-read, an Event to set when the jobs before it are done, or None: stop.
        self._jobs: queue.SimpleQueue[str | threading.Event | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="kernelkeeper-notebooks", daemon=True)
            self._thread.start()

    def names(self, wait: float = 0.0) -> frozenset[str]:
        """The kernels named by the notebooks seen so far; waits up to ``wait`` s for the first walk."""
        if wait > 0:
            self._walked.wait(wait)
        return self._names

    def wait(self, timeout: float) -> bool:
        """Until the first walk and every refresh queued so far are done (tests, measurements)."""
        done = threading.Event()
        self._jobs.put(done)
        return done.wait(timeout)

    def refresh(self, api_path: str) -> None:
        """Re-read what is at a contents API path (a notebook, or a folder: its notebooks) soon.

        A path already waiting is not queued twice: a burst of saves (autosave, a client that
        renames a folder back and forth) costs one re-read each, not one per event.
        """
        with self._lock:
            if api_path in self._queued:
                return
            self._queued.add(api_path)
        self._jobs.put(api_path)

    def close(self) -> None:
        self._jobs.put(None)

    # --- the worker ---------------------------------------------------------------------

    def _run(self) -> None:
        try:
            found = walk(self.root, **self.caps)
        except Exception:  # never lose the thread: the list then only lacks the notebooks' kernels
            self.log.warning("kernelkeeper | could not walk %s for notebooks", self.root, exc_info=True)
        else:
            with self._lock:
                self._kernels.update(found.kernels)
                self._publish()
            how = f"stopped at {found.stopped}" if found.stopped else "all of it"
            self.log.info(
                "kernelkeeper | %d notebooks under %s name %d kernels (%s; %d folders, %.2f s)",
                found.notebooks, self.root, len(self._names), how, found.folders, found.seconds,
            )  # fmt: skip
        self._walked.set()
        while True:
            job = self._jobs.get()
            if job is None:
                return
            if isinstance(job, threading.Event):
                job.set()
                continue
            with self._lock:
                self._queued.discard(job)  # an event from now on queues it again
            try:
                self._refresh(job)
            except Exception:
                self.log.warning("kernelkeeper | could not re-read %s", job, exc_info=True)

    def _path(self, api_path: str) -> str | None:
        """The file an API path names, or None when it leaves the root."""
        parts = [p for p in api_path.replace("\\", "/").split("/") if p not in ("", ".")]
        if ".." in parts or any("\0" in p for p in parts):
            return None
        return os.path.join(self.root, *parts)

    def _refresh(self, api_path: str) -> None:
        path = self._path(api_path)
        if path is None:
            return
        found: dict[str, str] = {}
        try:
            is_dir = os.path.isdir(path) and not os.path.islink(path)
        except (OSError, ValueError):
            is_dir = False
        if is_dir:
            # As deep as the first walk would have gone below the root.
            rel = os.path.relpath(path, self.root)
            depth = int(self.caps.get("max_depth", MAX_DEPTH)) - (0 if rel == "." else len(rel.split(os.sep)))
            folder = walk(Path(path), **{**self.caps, "max_depth": max(0, depth)})
            found = folder.kernels
            how = f", stopped at {folder.stopped}" if folder.stopped else ""
            self.log.info(
                "kernelkeeper | re-read %s: %d notebooks name %d kernels (%.2f s%s)",
                path, folder.notebooks, len(set(found.values())), folder.seconds, how,
            )  # fmt: skip
        elif path.endswith(".ipynb"):
            kernel = notebook_kernel(path)
            if kernel is not None:
                found[path] = kernel
        prefix = path.rstrip(os.sep) + os.sep
        with self._lock:
            for known in [k for k in self._kernels if k == path or k.startswith(prefix)]:
                del self._kernels[known]
            if len(self._kernels) + len(found) <= 2 * int(self.caps.get("max_notebooks", MAX_NOTEBOOKS)):
                self._kernels.update(found)
            self._publish()

    def _publish(self) -> None:
        names = frozenset(self._kernels.values())
        if names != self._names:
            self._names = names
