"""Zero-registration kernels: a KernelSpecManager that shows every environment.

Enable it with::

    c.ServerApp.kernel_spec_manager_class = "kernelkeeper.provider.KernelKeeperSpecManager"

(or ``kernelkeeper jupyter enable``). It lists every kernelspec the stock
manager lists, plus a kernel for each healthy discovered environment with
ipykernel that has no kernelspec yet — the same kernel ``kernelkeeper add``
would write, under the same name, so a notebook saved with one opens with the
other. It only reads: nothing is written while answering a query.

Speed: discovery is cached. A request within ``cache_seconds`` of the last
check is served from the cache; after that, a worker thread asks inotify whether
anything discovery read has moved (network filesystems: it stats them) and
rescans only if something did (inside a server, in a child process: ``scan.py``). The request waits for that at most
``refresh_timeout`` seconds and otherwise gets the cached list, so a slow shared
filesystem never stalls ``/api/kernelspecs``. The last scan is kept on disk per
user (``state.py``), so a restarted server answers its first list from it.
Inside a server with the extension, ``rest.py`` serves the list's body made
once per change. docs/provider.md says how all this behaves under load.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import functools
import gc
import gzip
import hashlib
import importlib.util
import json
import logging
import os
import re
import sys
import threading
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from jupyter_client.kernelspec import KernelSpec, KernelSpecManager, NoSuchKernel
from traitlets import Bool, Float, Integer, List, TraitError, Unicode

from . import __version__, bodycache, listing, logos, safeio, scan, state
from . import discovery as _discovery
from .context import DEFAULT_DEPTH, DEFAULT_MAX_DIRS, Context
from .discovery import Discovery, Snapshot, discover, snapshot
from .environments import Environment
from .kernel import DISPLAY_FORMAT, display_name, kernel_json, kernel_name
from .kernelspecs import KERNEL_JSON_DEPTH, MARKER, SH_WRAPPER, _interpreter
from .overlay import Overlay, list_overlays, overlays_dir
from .plan import Filters, overlay_for, runs_ipykernel

# Names other tools gave the same environments, so their saved notebooks open here.
_NB_CONDA = re.compile(r"^conda-(?:env-(?P<name>.+)|(?P<root>root|base))-py$")
_NB_VENV = re.compile(r"^venv-(?P<name>.+)-py$")


T = TypeVar("T")


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


async def _in_daemon_thread(work: Callable[[], T]) -> T:
    """``work()`` in a thread of its own, awaited without holding the event loop.

    A daemon thread, not the loop's executor: a thread stuck on a dead network
    filesystem must not keep the server from exiting on SIGTERM (executor threads
    are joined at exit).
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if future.done():  # the request went away
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def run() -> None:
        try:
            result, error = work(), None
        except BaseException as e:  # handed to the awaiting request
            result, error = None, e
        with contextlib.suppress(RuntimeError):  # the loop closed while we worked
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=run, name="kernelkeeper-specs", daemon=True).start()
    return await future


def _marker(data: dict[str, Any]) -> dict[str, Any] | None:
    """kernelkeeper's marker in a kernel.json's metadata (which anyone may have made a string or a list)."""
    metadata = data.get("metadata")
    marker = metadata.get(MARKER) if isinstance(metadata, dict) else None
    return marker if isinstance(marker, dict) else None


def _argv0(data: dict[str, Any]) -> str:
    """The interpreter a kernel.json runs: argv[0], or the one kernelkeeper's exec wrapper carries in env."""
    argv = data.get("argv")
    if not (isinstance(argv, list) and argv and isinstance(argv[0], str)):
        return ""
    if tuple(argv[: len(SH_WRAPPER)]) == SH_WRAPPER:
        env = data.get("env")
        env = {str(k): str(v) for k, v in env.items()} if isinstance(env, dict) else {}
        exe = _interpreter(tuple(str(a) for a in argv), None, env)
        return str(exe) if exe is not None else argv[0]
    return argv[0]


def _stale(spec: dict[str, Any]) -> bool:
    """A kernel whose interpreter (an absolute path) no longer exists: it cannot start."""
    exe = _argv0(spec)
    return os.path.isabs(exe) and not os.path.exists(exe)


def _interpreters(specs: dict[str, Any]) -> tuple[str, ...]:
    """The interpreter (absolute) of every listed kernel: what must still exist for a saved list to hold."""
    found = (_argv0(entry.get("spec") or {}) for entry in specs.values() if isinstance(entry, dict))
    return tuple(dict.fromkeys(exe for exe in found if os.path.isabs(exe)))


@functools.cache
def _have_jupyter_server() -> bool:
    return importlib.util.find_spec("jupyter_server") is not None


def _entry(name: str, resource_dir: str, spec: dict[str, Any], base_url: str | None) -> dict[str, Any]:
    """One get_all_specs() entry: resource_dir and spec; inside a server also its REST model's keys.

    jupyter_server (like notebook 6) turns each entry of get_all_specs() into its REST
    model in ``/api/kernelspecs`` — one thread task per kernel, each statting the
    resource folder — unless the entry is a model already (``name``, ``spec``,
    ``resources``: the path Jupyter's gateway client takes). Entries made here with the
    server's own ``kernelspec_model``, and cached, are that model, so a request does
    none of that work again. They keep ``resource_dir`` for every other caller.
    """
    entry: dict[str, Any] = {}
    if base_url is not None:
        from jupyter_server.services.kernelspecs.handlers import kernelspec_model

        handler = types.SimpleNamespace(base_url=base_url)
        entry = dict(kernelspec_model(handler, name, spec, resource_dir))  # type: ignore[no-untyped-call]
    entry.update(resource_dir=resource_dir, spec=spec)
    return entry


@dataclasses.dataclass(frozen=True)
class RestBody:
    """``GET /api/kernelspecs``'s answer, serialised once and reused while the kernel list is the same."""

    data: bytes
    gzipped: bytes
    etag: str
    specs: dict[str, Any]  # the get_all_specs() result it was made from (compared by identity)
    default: str | None
    # Each kernel's JSON with the entry it was made from, for the next body (a cache, not part of the value).
    parts: dict[str, tuple[Any, bytes]] = dataclasses.field(default_factory=dict, compare=False, repr=False)


_MODEL_KEYS = ("name", "spec", "resources")


def _rest_body(specs: dict[str, Any], default: str | None, previous: RestBody | None) -> RestBody:
    """The body jupyter_server's MainKernelSpecHandler would send for ``specs``, without its per-request work.

    Each kernel's JSON is its model's keys only (the stock handler's output for a
    manager that returns plain entries), reused from ``previous`` for entries that
    are the same object; gzip and the digest release the GIL on data this size.
    """
    old = previous.parts if previous is not None else {}
    parts: dict[str, tuple[Any, bytes]] = {}
    chunks = []
    for name, entry in specs.items():
        cached = old.get(name)
        if cached is not None and cached[0] is entry:
            part = cached[1]
        else:
            model = {k: entry[k] for k in _MODEL_KEYS}
            part = json.dumps(name).encode() + b": " + json.dumps(model).encode()
        parts[name] = (entry, part)
        chunks.append(part)
    data = b'{"default": ' + json.dumps(default).encode() + b', "kernelspecs": {' + b", ".join(chunks) + b"}}"
    etag = '"kk-' + hashlib.blake2b(data, digest_size=16).hexdigest() + '"'
    return RestBody(data, gzip.compress(data, compresslevel=5, mtime=0), etag, specs, default, parts)


class _SaveSoon:
    """``write(value)`` now, or once ``interval`` has passed since the last write, with the latest value.

    Called from worker threads; the write runs in the caller's thread or in a daemon timer's.
    """

    def __init__(self, write: Callable[[Any], Any], interval: float) -> None:
        self._write = write
        self.interval = interval
        self._lock = threading.Lock()
        self._pending: Any = None
        self._has_pending = False
        self._last = -float("inf")
        self._timer: threading.Timer | None = None

    def __call__(self, value: Any) -> None:
        with self._lock:
            self._pending, self._has_pending = value, True
            if self._timer is not None:
                return  # the timer set writes the latest value
            wait = self._last + self.interval - time.monotonic()
            if wait > 0:
                self._timer = threading.Timer(wait, self._flush)
                self._timer.daemon = True
                self._timer.start()
                return
        self._flush()

    def _flush(self) -> None:
        with self._lock:
            value, has = self._pending, self._has_pending
            self._pending, self._has_pending, self._timer = None, False, None
            self._last = time.monotonic()
        if has:
            self._write(value)


_gc_frozen = False


def _freeze_gc(log: logging.Logger) -> None:
    """Once per process: collect, then move every object alive out of the cyclic collector's way.

    A server with thousands of environments holds a million-odd long-lived objects (its own
    modules, the discovery, the kernel entries). Every full collection walks them all: 90-140 ms
    with the GIL held at 2,000 environments, several times a minute while environments change,
    and ``/api/status`` waits that long. ``gc.freeze()`` (made for long-lived servers) leaves
    them out of later collections (8-23 ms measured); what is frozen is freed by reference
    counting as before, only cycles among those objects would not be (the collection just
    before clears those that already are garbage). Not done where the collector is off.
    """
    global _gc_frozen
    if _gc_frozen or not gc.isenabled():
        return
    _gc_frozen = True
    gc.collect()
    gc.freeze()
    log.info("kernelkeeper: %d long-lived objects left out of later garbage collections", gc.get_freeze_count())


class DiscoveryCache:
    """Discovery results, revalidated in a worker thread: by inotify where it works, by mtimes elsewhere.

    A request past ``cache_seconds`` starts a check (or joins the running one) and
    waits for its answer at most ``refresh_timeout``. The answer is ready when the
    check finds nothing moved, or when the rescan it started ends — or at once when
    the last rescan took longer than ``refresh_timeout``: a request that would wait
    the whole timeout for nothing gets the cached list without waiting.

    A check with nothing changed reads the inotify descriptor and stats only the
    paths inotify cannot vouch for (network filesystems: ``Watch.polled``); an event
    only triggers the old comparison of mtimes and folder signatures, so a notebook
    saved in a project folder still costs no rescan.

    With ``persist``, the last scan is kept on disk per user (``state.save``, from the
    worker thread, atomic, at most once per ``save_interval``). At start the saved
    state is loaded (environments whose interpreter is gone dropped) and served at
    once, without waiting for its check; the check runs at the first request or
    ``start_delay`` seconds later, whichever comes first, so it does not compete with
    the server's own start-up for the CPU.
    """

    def __init__(
        self,
        make_context: Any,
        cache_seconds: float,
        refresh_timeout: float,
        first_timeout: float,
        log: logging.Logger | None = None,
        *,
        persist: bool = False,
        start_delay: float = 0.0,
        save_interval: float = 5.0,
        on_loaded: Callable[[], None] | None = None,
        on_boot: Callable[[], bool] | None = None,
        scan_in_child: bool = False,
        freeze_gc: bool = False,
    ) -> None:
        self._make_context = make_context
        self.log = log or logging.getLogger(__name__)
        self.cache_seconds = cache_seconds
        self.refresh_timeout = refresh_timeout
        self.first_timeout = first_timeout
        self.persist = persist
        self.start_delay = start_delay
        self._on_loaded = on_loaded
        self._on_boot = on_boot
        self.scan_in_child = scan_in_child
        self.freeze_gc = freeze_gc
        self._lock = threading.Lock()
        # A daemon thread per check, not an executor: a scan stuck on a dead network filesystem
        # must not keep the server from exiting (executor threads are joined at exit).
        self._job: threading.Thread | None = None
        self._answer = threading.Event()
        # Set by the job as its check ends: a job still alive then is only returning, not one to join.
        self._check_over = True
        self._entry: state._Entry | None = None
        self._from_disk = False  # the entry is the saved state, not yet checked
        self._kick = threading.Event()
        self._checked = 0.0
        self.scan_seconds = 0.0  # how long the last scan took
        self.scans = 0  # how many full scans ran (tests and the benchmark read it)
        self.checks = 0  # how many checks ran
        self.paths_checked = 0  # paths stat'ed by checks (inotify makes this ~0 while nothing changes)
        self.loaded = -1  # environments served from the saved state (-1: none was loaded)
        self.saves = 0
        self.child_scans = 0  # scans a child process made (scan.py)
        self.error: str | None = None
        self._save_soon = _SaveSoon(self._save, save_interval)

    @property
    def _found(self) -> Discovery | None:
        entry = self._entry
        return entry.found if entry is not None else None

    @property
    def _snapshot(self) -> Snapshot:
        entry = self._entry
        return entry.snapshot if entry is not None else {}

    def get(self) -> Discovery | None:
        """The freshest discovery available without waiting longer than the timeouts allow."""
        entry = self._entry
        if entry is None:  # nothing yet: wait for the saved state or the first scan
            self._kick.set()  # a boot holding back for a saved kernel list goes on now
            self.start().wait(self.first_timeout)
            entry = self._entry
            if entry is None or not self._from_disk:
                return self._found
        if time.monotonic() - self._checked < self.cache_seconds:
            return entry.found
        if self._from_disk:
            # The saved state answers now; its check starts (or runs) behind this request, unless this is
            # the worker itself preparing the list (``on_loaded``): the check then waits for its delay.
            if threading.current_thread() is not self._job:
                self._kick.set()
                self.start()
            return entry.found
        self.start().wait(self.refresh_timeout)
        return self._found

    def kick(self) -> None:
        """Load the saved state and check it now, not after ``start_delay``."""
        self._kick.set()

    def start(self, boot: bool = False) -> threading.Event:
        """Start a check (or join the one running); the event is set when its answer is ready."""
        with self._lock:
            if self._job is None or not self._job.is_alive() or self._check_over:
                self._check_over = False
                self._answer = threading.Event()
                self._job = threading.Thread(
                    target=self._boot if boot else self._refresh,
                    args=(self._answer,),
                    name="kernelkeeper-scan",
                    daemon=True,
                )
                self._job.start()
            return self._answer

    def _boot(self, answer: threading.Event) -> None:
        """The first job: the saved state first (answered at once), then its check when asked or after a while.

        When ``on_boot`` says a saved kernel list answers the first requests, even the state
        waits: loading it is work the starting server would otherwise share its CPU with.
        """
        try:
            if self.persist and self._on_boot is not None and self._on_boot():
                self._kick.wait(self.start_delay)
            if self.persist and self._load():
                answer.set()
                if self._on_loaded is not None:
                    self._on_loaded()
                self._kick.wait(self.start_delay)
        except Exception as e:  # a broken state file must cost a scan, never the kernel list
            self.log.warning("kernelkeeper: could not load the discovery state: %s: %s", type(e).__name__, e)
        self._refresh(answer)
        if self.freeze_gc:
            _freeze_gc(self.log)

    def _load(self) -> bool:
        loaded = state.load(self._make_context(), self.log)
        if loaded is None:
            return False
        found, snap = loaded
        # An environment deleted while the server was down must not be offered even once.
        alive = tuple(e for e in found.environments if e.python is None or os.path.exists(e.python))
        gone = len(found.environments) - len(alive)
        found = dataclasses.replace(found, environments=alive)
        # unsettled: the first check compares every mtime (what moved while no watch existed).
        self._entry = state._Entry(found, snap, unsettled=True)
        self._from_disk = True
        self.loaded = len(alive)
        self.log.info(
            "kernelkeeper: serving %d environments from the saved discovery state (%d gone since)",
            len(alive),
            gone,
        )
        return True

    def _refresh(self, answer: threading.Event) -> None:
        try:
            self._rescan_if_changed(answer)
        except Exception as e:  # a provider that raises would break the server's kernel list
            self.error = f"{type(e).__name__}: {e}"
            self._checked = time.monotonic()
        finally:
            self._from_disk = False
            self._check_over = True  # before the answer: whoever it wakes may start the next check
            answer.set()

    def _rescan_if_changed(self, answer: threading.Event) -> None:
        entry = self._entry
        moved = None
        before: Snapshot = {}
        if entry is not None:
            stats = entry.stats
            moved = state.check(entry)
            self.checks += 1
            self.paths_checked += entry.stats - stats
            if moved is None:
                self._checked = time.monotonic()
                return
            if self.scan_seconds > self.refresh_timeout:
                answer.set()  # the rescan will not end in time: the waiting request takes the cached list
            before = snapshot(entry.found.watched)
        start = time.monotonic()
        started_ns = time.time_ns()
        ctx = self._make_context()
        found = self._scan(ctx)
        # Watch first, then the snapshot; a change made while the scan ran shows on the next check.
        new = state.watched_entry(found, before, started_ns)
        self._entry = new
        self._from_disk = False
        if entry is not None and entry.watch is not None:
            entry.watch.close()
        self._checked = time.monotonic()
        self.scan_seconds = self._checked - start
        self.scans += 1
        self.log.info(
            "kernelkeeper: %s %d environments in %.2f s%s",
            "rescanned" if moved else "found",
            len(found.environments),
            self.scan_seconds,
            f" ({moved} changed)" if moved else "",
        )
        if self.persist:
            self._save_soon((ctx, found, dict(new.snapshot)))

    def _scan(self, ctx: Context) -> Discovery:
        """``discover(ctx)``: in a child process when ``scan_in_child`` (see scan.py), else in this thread.

        A ``discover`` replaced in this module (a test's slow or hung scan) is honoured: it runs here.
        A child that fails is logged once and not tried again; this thread scans instead.
        """
        if self.scan_in_child and discover is _discovery.discover:
            try:
                found = scan.discover_in_child(ctx)
            except scan.ScanFailed as e:
                self.scan_in_child = False
                self.log.warning("kernelkeeper: scanning in the server's process from now on: %s", e)
            else:
                self.child_scans += 1
                return found
        return discover(ctx)

    def _save(self, pending: tuple[Context, Discovery, Snapshot]) -> None:
        ctx, found, snap = pending
        if state.save(ctx, found, snap, self.log) is not None:
            self.saves += 1

    def close(self) -> None:
        """Nothing to release: a running check ends on its own, and never keeps the process alive."""


class KernelKeeperSpecManager(KernelSpecManager):
    """Every environment kernelkeeper finds, as a kernel — without writing a kernelspec."""

    roots = List(Unicode(), help="Folders to scan for projects besides the usual code folders.").tag(config=True)
    depth = Integer(DEFAULT_DEPTH, help="Folder levels below each root to look for projects.").tag(config=True)
    default_roots = Bool(True, help="Scan HOME's usual code folders (~/projects, ~/code, ...).").tag(config=True)
    env_paths = List(Unicode(), help="Environments, or folders of them, to show outright.").tag(config=True)
    include_kinds = List(Unicode(), help="Only environments of these kinds (empty: all).").tag(config=True)
    exclude_kinds = List(Unicode(), help="Never environments of these kinds.").tag(config=True)
    include_names = List(Unicode(), help="Only environments whose name matches one of these globs.").tag(config=True)
    exclude_names = List(Unicode(), help="Never environments whose name matches one of these globs.").tag(config=True)
    exclude_paths = List(Unicode(), help="Never environments whose folder matches one of these globs.").tag(config=True)
    use_overlays = Bool(
        True, help="Environments without ipykernel get a kernel on an ipykernel overlay built for their Python."
    ).tag(config=True)
    show_without_ipykernel = Bool(
        False, help="Also list environments without ipykernel (their kernels cannot start until it is installed)."
    ).tag(config=True)
    name_format = Unicode(
        "{kind}-{name}-py{minor}", help="Kernel name: fields kind, name, minor, version (as `kernelkeeper add`)."
    ).tag(config=True)
    display_name_format = Unicode(
        DISPLAY_FORMAT,
        help="Display name: fields kind, name, minor, version, project. "
        'The format before 0.2 was "Python {minor} ({name} · {kind})".',
    ).tag(config=True)
    hide_stale = Bool(
        True,
        help="Leave out written kernelspecs whose interpreter is gone (an environment deleted under them): "
        "the list stays true before anyone runs `kernelkeeper prune`. A notebook asking for one by name "
        "still gets it, and fails to start as it would have.",
    ).tag(config=True)
    cache_seconds = Float(1.0, help="Serve discovery from cache this long before checking for changes.").tag(
        config=True
    )
    refresh_timeout = Float(0.25, help="How long a request waits for a refresh before it gets the cached list.").tag(
        config=True
    )
    first_scan_timeout = Float(
        10.0, help="How long the first request waits for the first scan (later ones never wait long)."
    ).tag(config=True)
    list_all = Bool(
        False,
        help="List every kernel in the server's kernel list (launcher, pickers). By default a server lists the "
        "short list: recently started kernels, kernels written for everyone, kernels not written by kernelkeeper, "
        "and 'Python (this project)'. Every kernel starts by name either way; the full list is at "
        "<base_url>kernelkeeper/kernels.",
    ).tag(config=True)
    recent_kernels = Integer(
        listing.RECENT_LIMIT, help="How many recently started kernels the short list keeps (per user)."
    ).tag(config=True)
    list_notebook_kernels = Bool(
        True,
        help="The short list also lists the kernels named by the notebooks under the server's root folder "
        "(a bounded walk in the background, kept current as the server opens and saves notebooks), so stock "
        "JupyterLab and Notebook 7 start them without asking. Only kernels that start are listed.",
    ).tag(config=True)
    persist_state = Bool(
        True,
        help="Keep the last scan on disk (per user, in the cache folder) and answer the first kernel list "
        "of the next start from it, validated, before any scan has finished.",
    ).tag(config=True)
    first_check_delay = Float(
        3.0,
        help="With a saved state, check it this many seconds after start (or at the first request, if sooner), "
        "so the check does not compete with the server's start-up.",
    ).tag(config=True)

    scan_in_child = Bool(
        True,
        help="Run rescans in a child process (`python -m kernelkeeper.scan`, lower priority), so the server's "
        "event loop never competes with a scan for the GIL. Only inside a server; off, outside a server, or if the "
        "child cannot run: a thread scans.",
    ).tag(config=True)

    freeze_gc = Bool(
        True,
        help="Inside a server, once the first list is made: gc.freeze() the long-lived objects, so a full garbage "
        "collection (90-140 ms at 2,000 environments, GIL held) no longer stalls every request.",
    ).tag(config=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # One context for the manager's life: the saved state's key stays the one it was loaded under, and a
        # variable set later in the server's process does not turn every scan into another context's.
        self._ctx = self._context()
        self._cache = DiscoveryCache(
            lambda: self._ctx,
            self.cache_seconds,
            self.refresh_timeout,
            self.first_scan_timeout,
            self.log,
            persist=self.persist_state,
            start_delay=self.first_check_delay,
            on_loaded=self._warm,
            on_boot=self._load_saved_body,
            # Only in a server: there is an event loop to keep free; elsewhere (`jupyter kernelspec list`)
            # a thread scans and the caller waits for it anyway.
            scan_in_child=self.scan_in_child and self._server_base_url() is not None,
            freeze_gc=self.freeze_gc and self._server_base_url() is not None,
        )
        self._spec_cache: dict[str, tuple[int, dict[str, Any] | None]] = {}
        self._dynamic: dict[str, Environment] = {}
        self._overlay_of: dict[str, Overlay] = {}
        self._entries: dict[tuple[str, str], tuple[Any, dict[str, Any]]] = {}
        self._dynamic_key: tuple[Any, ...] | None = None
        self._kernels_key: tuple[Any, ...] | None = None
        self._dynamic_result: dict[str, Any] = {}
        # Per dynamic kernel: (name, environment, overlay, base_url) -> its entry, so a change rebuilds one.
        self._entry_of: dict[tuple[Any, ...], dict[str, Any]] = {}
        self._all_key: tuple[Any, ...] | None = None
        self._all_result: dict[str, Any] = {}
        self._short_source: dict[str, Any] | None = None
        self._short_recent: tuple[str, ...] = ()
        self._short_named: frozenset[str] = frozenset()
        # Every kernel name the server's notebooks held when the list was last made, startable or not:
        # part of what a saved list was made from (a notebook copied in while the server was down).
        self._named_raw: frozenset[str] = frozenset()
        self._short_result: dict[str, Any] = {}
        # The server's notebooks' kernels (notebook_kernels.NotebookKernels), set by the server extension.
        self.notebooks: Any = None
        self._body: RestBody | None = None
        self._body_job: asyncio.Task[RestBody | None] | None = None
        # The kernel list the last server saved (bodycache.py): the first requests' answer until ours is made.
        self._saved: bodycache.Saved | None = None
        self._saved_body: RestBody | None = None
        self._saved_lock = threading.Lock()
        self._saved_looked = threading.Event()  # set once the boot has looked for a saved list
        if not self.persist_state:
            self._saved_looked.set()
        self._save_body_soon = _SaveSoon(self._write_body, 5.0)
        self._specs_lock = threading.Lock()
        self.recent = listing.Recent(listing.recent_path(self._ctx.user_data_dir("kernelkeeper")), self.recent_kernels)
        # The saved state (or the first scan) starts with the server, so the first kernel list need not wait.
        self._cache.start(boot=True)

    # --- what discovery sees -----------------------------------------------------

    def _context(self) -> Context:
        return Context.from_environ(
            env=dict(os.environ),
            roots=tuple(Path(r) for r in self.roots),
            depth=self.depth,
            max_dirs=DEFAULT_MAX_DIRS,
            default_roots=self.default_roots,
            extra_paths=tuple(Path(p).expanduser() for p in self.env_paths),
        )

    def _filters(self) -> Filters:
        return Filters(
            tuple(self.include_kinds),
            tuple(self.exclude_kinds),
            tuple(self.include_names),
            tuple(self.exclude_names),
            tuple(self.exclude_paths),
        )

    def _read_spec(self, resource_dir: str) -> dict[str, Any] | None:
        """A kernel.json, re-read only when its mtime changes."""
        path = os.path.join(resource_dir, "kernel.json")
        try:
            mtime = os.stat(path).st_mtime_ns
        except OSError:
            return None
        cached = self._spec_cache.get(path)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        try:
            # safeio: a FIFO would block for good; a 100,000-deep document raises RecursionError.
            data = safeio.load_json(path, max_depth=KERNEL_JSON_DEPTH)
        except (OSError, ValueError) as e:
            self.log.warning("kernelkeeper: skipped kernelspec %s: %s", resource_dir, safeio.why(e))
            data = None
        data = data if isinstance(data, dict) else None
        self._spec_cache[path] = (mtime, data)
        return data

    def _covered(self, stock: dict[str, str]) -> tuple[set[str], set[str]]:
        """Prefixes and interpreters that already have a written kernelspec."""
        prefixes: set[str] = set()
        interpreters: set[str] = set()
        for resource_dir in stock.values():
            data = self._read_spec(resource_dir)
            if data is None:
                if os.path.basename(os.path.dirname(resource_dir)) == "ipykernel" and resource_dir.endswith(
                    "resources"
                ):
                    # jupyter_client's native python3 (ipykernel's resources, no kernel.json): the server's Python.
                    interpreters.add(os.path.normpath(sys.executable))
                continue
            marker = _marker(data)
            argv = data.get("argv")
            if not isinstance(argv, list) or not argv:
                continue
            argv_s = tuple(str(a) for a in argv)
            if not runs_ipykernel(argv_s, marker):
                continue  # "Python (this project)" and non-Python kernels are no environment's kernel
            if marker is not None and isinstance(marker.get("prefix"), str):
                prefixes.add(marker["prefix"])
            # A bare name resolves as jupyter_client resolves it at launch: python/python3/pythonX.Y is the
            # server's own sys.executable, another name is looked up on the PATH the kernel starts with.
            spec_env = data.get("env")
            spec_env = {str(k): str(v) for k, v in spec_env.items()} if isinstance(spec_env, dict) else {}
            here = os.environ.get("PATH", "")
            path = spec_env.get("PATH", here).replace("${PATH}", here).replace("$PATH", here)
            exe = _interpreter(argv_s, path, spec_env)
            if exe is not None:
                interpreters.add(os.path.normpath(str(exe)))
        return prefixes, interpreters

    def _dynamic_kernels(self, stock: dict[str, str]) -> dict[str, Environment]:
        found = self._cache.get()
        if found is None:
            return {}
        key = (id(found), tuple(sorted(stock)), self._overlay_state())
        if self._kernels_key == key:
            return self._dynamic
        filters = self._filters()
        prefixes, interpreters = self._covered(stock)
        taken = set(stock)
        out: dict[str, Environment] = {}
        overlays = {o.key: o for o in list_overlays(self._ctx)} if self.use_overlays else {}
        overlay_of: dict[str, Overlay] = {}
        for env in found.environments:
            if not env.healthy or env.python is None or not filters.admits(env):
                continue
            overlay = overlay_for(env, overlays) if overlays else None
            if overlay is not None:
                overlay_of[str(env.prefix)] = overlay
            elif not env.has_ipykernel and not self.show_without_ipykernel:
                continue
            if str(env.prefix) in prefixes or os.path.normpath(str(env.python)) in interpreters:
                continue  # one interpreter, one kernel
            name = kernel_name(env, taken, self.name_format)
            taken.add(name)
            out[name] = env
        self._dynamic = out
        self._overlay_of = overlay_of
        self._kernels_key = key
        return out

    # --- KernelSpecManager API ------------------------------------------------------

    def _live(self, stock: dict[str, str]) -> dict[str, str]:
        """The written kernelspecs whose interpreter still exists (all of them with hide_stale off)."""
        if not self.hide_stale:
            return stock
        live = {}
        for name, resource_dir in stock.items():
            if not _stale(self._read_spec(resource_dir) or {}):
                live[name] = resource_dir
        return live

    def find_kernel_specs(self) -> dict[str, str]:
        stock: dict[str, str] = super().find_kernel_specs()
        specs = self._live(stock)
        for name, env in self._dynamic_kernels(stock).items():
            specs[name] = str(self._resource_dir(env))
        if self.allowed_kernelspecs:
            specs = {name: d for name, d in specs.items() if name in self.allowed_kernelspecs}
        return specs

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        target = self._lookup(kernel_name)
        if isinstance(target, str):
            spec: KernelSpec = super().get_kernel_spec(target)
            return spec
        if self.allowed_kernelspecs and kernel_name not in self.allowed_kernelspecs:
            raise NoSuchKernel(kernel_name)
        return self._spec_for(target)

    def get_all_specs(self) -> Any:
        """Every kernel: a dict; inside a running event loop, an awaitable of that dict.

        jupyter_server's ``/api/kernelspecs`` awaits what this returns (``ensure_async``,
        the path its gateway's async manager takes), so reading kernel.json files and
        waiting for the first scan happen in a thread while the server keeps answering
        ``/api/status``, other requests and SIGTERM. Called outside a loop
        (``jupyter kernelspec list``), it answers directly.
        """
        if _on_event_loop():
            return _in_daemon_thread(self._all_specs_locked)
        return self._all_specs()

    def _all_specs_locked(self) -> dict[str, Any]:
        with self._specs_lock:  # the caches below are shared by concurrent requests' threads
            return self._short(self._all_specs())

    def _all_specs(self) -> dict[str, Any]:
        cls = type(self)
        if (
            cls.find_kernel_specs is not KernelKeeperSpecManager.find_kernel_specs
            or cls.get_kernel_spec is not KernelKeeperSpecManager.get_kernel_spec
        ):
            # A subclass that overrides either must be asked through them, as the stock class does.
            specs: dict[str, Any] = super().get_all_specs()
            return specs
        stock: dict[str, str] = super().find_kernel_specs()
        base_url = self._server_base_url()
        result: dict[str, Any] = {}
        for name, resource_dir in self._live(stock).items():
            entry = self._stock_entry(name, resource_dir, base_url)
            if entry is not None:
                result[name] = entry
        result.update(self._dynamic_entries(stock, base_url))
        if self.allowed_kernelspecs:
            result = {name: s for name, s in result.items() if name in self.allowed_kernelspecs}
        # The same dict while nothing changed: the REST body made from it is then reused (see rest_body).
        key = tuple((name, id(entry)) for name, entry in result.items())
        if key == self._all_key:
            return self._all_result
        self._all_key, self._all_result = key, result
        return result

    # --- the short list and the full catalog (listing.py) -------------------------------

    def _short(self, specs: dict[str, Any]) -> dict[str, Any]:
        """Inside a server, the short list (`listing.short_list`) unless ``list_all``; elsewhere every kernel."""
        if self.list_all or self._server_base_url() is None:
            return specs
        recent = tuple(self.recent.names())
        named = self._notebook_kernels(specs)
        # The same dict while neither the list nor the recent kernels changed: the REST body made
        # from it is then reused (rest_body compares by identity).
        if self._short_source is specs and self._short_recent == recent and self._short_named == named:
            return self._short_result
        result = listing.short_list(
            specs, recent=list(recent), dynamic=self._dynamic, user_kernels=self.user_kernel_dir, named=named
        )
        self._short_source, self._short_recent, self._short_result = specs, recent, result
        self._short_named = named
        return result

    def _notebook_kernels(self, specs: dict[str, Any]) -> frozenset[str]:
        """The kernels the server's notebooks name that would start (listing one that fails helps nobody).

        The first call waits briefly for the first walk of the root, so the first page load has them.
        """
        raw = self._notebook_names()
        self._named_raw = raw
        out = set()
        for name in raw:
            if name not in specs:
                continue  # no such kernel (or not allowed): nothing to list
            env = self._dynamic.get(name)
            if env is not None:
                if env.has_ipykernel or str(env.prefix) in self._overlay_of:
                    out.add(name)
                continue
            if not _stale(specs[name].get("spec") or {}):  # hide_stale off still lists dead ones
                out.add(name)
        return frozenset(out)

    def _notebook_names(self) -> frozenset[str]:
        """The kernel names in the server's notebooks (waits up to 2 s for the first walk of its root)."""
        if self.notebooks is None or not self.list_notebook_kernels:
            return frozenset()
        names: frozenset[str] = self.notebooks.names(wait=2.0)
        return names

    def record_started(self, kernel_name: str) -> None:
        """A kernel the server started: first in this user's recent list (written off the event loop)."""
        self.recent.record(kernel_name)

    def catalog(self) -> list[listing.Item]:
        """Every kernel, listed or not, and every environment that cannot start one (for the picker)."""
        with self._specs_lock:
            specs = self._all_specs()
            found = self._cache.get()
            return listing.catalog(
                specs,
                recent=self.recent.names(),
                dynamic=self._dynamic,
                user_kernels=self.user_kernel_dir,
                environments=found.environments if found is not None else (),
                named=self._notebook_kernels(specs),
            )

    def _warm(self) -> None:
        """Build the kernel list (and its REST body) from the saved state before anyone asks.

        Run by the worker right after loading the state, while the server is still starting:
        the first ``/api/kernelspecs`` then only sends bytes, instead of building a model per
        kernel (a few hundred ms at 2,000 environments: kernel.json, logos, site-packages).
        """
        try:
            self._all_specs_locked()  # the list (and its per-kernel entries) from the saved state
            base_url = self._server_base_url()
            manager = getattr(self.parent, "kernel_manager", None)
            default = getattr(manager, "default_kernel_name", None)
            if base_url is not None and isinstance(default, str):
                self._make_body(base_url, default)
        except Exception:  # a warm-up is an optimisation: the first request builds it instead
            self.log.warning("kernelkeeper: could not prepare the kernel list", exc_info=True)

    async def rest_body(self, base_url: str, default: str | None) -> RestBody | None:
        """``GET /api/kernelspecs``'s body, made in a worker thread and shared by concurrent requests.

        Requests that arrive while one is being made wait for it instead of starting
        their own (fifty JupyterLab tabs cost one computation); a kernel list that is
        the same object as last time reuses the last body (bytes, gzip, ETag). None
        when this manager cannot make it (a subclass overriding the lookups, or no
        models because the base_url differs): the caller falls back to the stock path.
        """
        if self._body is None and (self._saved is not None or not self._saved_looked.is_set()):
            saved = self._saved_body  # checked already: no thread, no disk
            if saved is None or saved.default != default:
                saved = await _in_daemon_thread(functools.partial(self._saved_answer, base_url, default))
            if saved is not None:
                return saved
        job = self._body_job
        loop = asyncio.get_running_loop()
        if job is None or job.done() or job.get_loop() is not loop:
            job = loop.create_task(_in_daemon_thread(functools.partial(self._make_body, base_url, default)))
            self._body_job = job
        try:
            body = await asyncio.shield(job)  # a request that goes away leaves the shared job running
        except Exception:
            self.log.warning("kernelkeeper: the kernel list's body failed; the stock handler answers", exc_info=True)
            return None
        if body is None or body.default != default or self._server_base_url() != base_url:
            return None
        return body

    def _make_body(self, base_url: str, default: str | None) -> RestBody | None:
        specs = self._all_specs_locked()
        if any(not all(k in entry for k in _MODEL_KEYS) for entry in specs.values()):
            return None
        previous = self._body
        if previous is not None and previous.specs is specs and previous.default == default:
            return previous
        body = _rest_body(specs, default, previous)
        self._body = body
        if self.persist_state:
            recent = () if self.list_all else self._short_recent
            named = () if self.list_all else tuple(sorted(self._named_raw))
            self._save_body_soon((body, base_url, default, recent, named))
        return body

    # --- the kernel list kept on disk between starts (bodycache.py) ---------------------

    def _body_path(self) -> Path:
        # Per server kind too (its Python): two Jupyters of one user in two environments keep a file each.
        where = json.dumps(
            [state.context_key(self._ctx), self._server_base_url(), sys.executable, self._list_config()], default=str
        )
        digest = hashlib.sha256(where.encode()).hexdigest()[:16]
        return self._ctx.user_cache_dir("kernelkeeper") / f"kernelspecs-{digest}.bin"

    #: Settings that change when the list is checked, never what it holds.
    _TIMING = frozenset(
        {
            "cache_seconds",
            "refresh_timeout",
            "first_scan_timeout",
            "first_check_delay",
            "persist_state",
            "scan_in_child",
            "freeze_gc",
        }
    )

    def _list_config(self) -> dict[str, Any]:
        values = self.trait_values()
        return {name: values.get(name) for name in sorted(self.trait_names(config=True)) if name not in self._TIMING}

    def _body_key(self, base_url: str, default: str | None, recent: tuple[str, ...], named: tuple[str, ...]) -> str:
        """Everything but discovery that the kernel list is made from (see bodycache.py)."""
        inputs = {
            "version": __version__,
            "python": sys.executable,
            "config": self._list_config(),
            "base_url": base_url,
            "default": default,
            "context": state.context_key(self._ctx),
            "kernelspecs": bodycache.folder_signature(list(self.kernel_dirs)),
            "overlays": list(self._overlay_state()),
            "recent": list(recent),
            "notebook_kernels": list(named),
        }
        return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()

    def _write_body(self, pending: tuple[RestBody, str, str | None, tuple[str, ...], tuple[str, ...]]) -> None:
        body, base_url, default, recent, named = pending
        saved = bodycache.Saved(
            key=self._body_key(base_url, default, recent, named),
            etag=body.etag,
            default=default,
            interpreters=_interpreters(body.specs),
            data=body.data,
            gzipped=body.gzipped,
        )
        bodycache.save(self._body_path(), saved, self.log)

    def _load_saved_body(self) -> bool:
        """At boot: the saved kernel list, if there is one (checked against today's inputs at the first request)."""
        try:
            if self._server_base_url() is None:
                return False
            self._saved = bodycache.load(self._body_path(), self.log)
            return self._saved is not None
        finally:
            self._saved_looked.set()

    def _saved_answer(self, base_url: str, default: str | None) -> RestBody | None:
        """The saved kernel list while it still holds (same inputs, every interpreter there), else None.

        Checked once; either way the saved discovery state is loaded and checked next, and
        the list made from it replaces this one.
        """
        self._saved_looked.wait(self.first_scan_timeout)  # a request as the server starts: the boot is looking
        with self._saved_lock:
            saved = self._saved
            if saved is None or self._body is not None:
                return None
            if self._saved_body is None:
                recent = () if self.list_all else tuple(self.recent.names())
                named = () if self.list_all else tuple(sorted(self._notebook_names()))
                if (
                    saved.default == default
                    and saved.key == self._body_key(base_url, default, recent, named)
                    and (bodycache.alive(saved))
                ):
                    self._saved_body = RestBody(saved.data, saved.gzipped, saved.etag, {}, default)
                    self.log.info("kernelkeeper: answering the kernel list saved by the last start until it is checked")
                else:
                    self._saved = None
                    self.log.info("kernelkeeper: the kernel list saved by the last start is out of date")
            self._cache.kick()
            return self._saved_body

    def remove_kernel_spec(self, name: str) -> str:
        if name in self._dynamic:
            raise NoSuchKernel(f"{name} is an environment, not a kernelspec folder; delete the environment instead")
        path: str = super().remove_kernel_spec(name)
        return path

    # --- helpers ----------------------------------------------------------------------

    def _stock_entry(self, name: str, resource_dir: str, base_url: str | None) -> dict[str, Any] | None:
        """A written kernelspec as get_all_specs returns it, rebuilt only when it or its folder changes."""
        try:
            # The folder's mtime moves when a logo is added or kernel.json is replaced.
            stamp = (os.stat(resource_dir).st_mtime_ns, os.stat(os.path.join(resource_dir, "kernel.json")).st_mtime_ns)
        except OSError:
            stamp = (-1, -1)  # ipykernel's built-in python3 has its kernel.json made on the fly
        key = (name, resource_dir)
        cached = self._entries.get(key)
        if cached is not None and cached[0] == (stamp, base_url):
            return cached[1]
        try:
            spec = self._get_kernel_spec_by_name(name, resource_dir)
        except NoSuchKernel:
            return None
        except Exception:
            self.log.warning("Error loading kernelspec %r", name, exc_info=True)
            return None
        try:
            to_dict = spec.to_dict()
        except RecursionError:
            return None
        entry = _entry(name, resource_dir, to_dict, base_url)
        self._entries[key] = ((stamp, base_url), entry)
        return entry

    def _get_kernel_spec_by_name(self, kernel_name: str, resource_dir: str) -> KernelSpec:
        """A written kernelspec, its kernel.json read through safeio (the stock reader opens a FIFO and waits).

        A kernel.json that is not a regular file, not JSON, too deep, or whose values
        KernelSpec refuses (``"metadata": "x"``) is no kernel: NoSuchKernel, as the
        stock manager treats a folder without one, so one bad file costs one kernel.
        """
        if not os.path.lexists(os.path.join(resource_dir, "kernel.json")):
            if kernel_name != "python3":
                raise NoSuchKernel(kernel_name)
            spec: KernelSpec = super()._get_kernel_spec_by_name(kernel_name, resource_dir)  # ipykernel's built-in
            return spec
        data = self._read_spec(resource_dir)
        if data is None:
            raise NoSuchKernel(kernel_name)
        try:
            spec = self.kernel_spec_class(resource_dir=resource_dir, **copy.deepcopy(data))
        except (TraitError, TypeError, ValueError) as e:
            self.log.warning("kernelkeeper: skipped kernelspec %s: %s", resource_dir, e)
            raise NoSuchKernel(kernel_name) from None
        from jupyter_client.provisioning.factory import KernelProvisionerFactory

        if not KernelProvisionerFactory.instance(parent=self.parent).is_provisioner_available(spec):
            raise NoSuchKernel(kernel_name)
        return spec

    def _dynamic_entries(self, stock: dict[str, str], base_url: str | None) -> dict[str, Any]:
        """The dynamic kernels as get_all_specs returns them, rebuilt only when discovery or the list changes."""
        found = self._cache.get()
        key = (id(found), tuple(sorted(stock)), self._overlay_state(), base_url)
        if self._dynamic_key == key:
            return self._dynamic_result
        result = {}
        made: dict[tuple[Any, ...], dict[str, Any]] = {}
        for name, env in self._dynamic_kernels(stock).items():
            overlay = self._overlay_of.get(str(env.prefix))
            entry_key = (name, env, overlay.key if overlay is not None else None, base_url)
            entry = self._entry_of.get(entry_key)
            if entry is None:
                # Only a new or changed environment's entry is built: under churn that is one or two, not 800.
                resource_dir = str(self._resource_dir(env))
                entry = _entry(name, resource_dir, self._spec_for(env).to_dict(), base_url)
            made[entry_key] = result[name] = entry
        self._entry_of = made
        self._dynamic_key, self._dynamic_result = key, result
        return result

    def _server_base_url(self) -> str | None:
        """The base_url of the Jupyter server this manager serves (None outside one): see `_entry`."""
        base_url = getattr(self.parent, "base_url", None)
        if not isinstance(base_url, str) or not _have_jupyter_server():
            return None
        return base_url

    def _overlay_state(self) -> tuple[str, ...]:
        if not self.use_overlays:
            return ()
        try:
            return tuple(sorted(os.listdir(overlays_dir(self._ctx))))
        except OSError:
            return ()

    def _lookup(self, kernel_name: str) -> str | Environment:
        """A written kernelspec's name, or the environment behind a dynamic name.

        nb_conda_kernels' and nb_venv_kernels' names for an environment
        (``conda-env-<name>-py``, ``venv-<name>-py``) lead to the kernel it has here.
        """
        name = kernel_name.lower()
        stock = super().find_kernel_specs()
        if name in stock:
            return name  # a written kernelspec always wins
        if name not in self._dynamic:
            self._dynamic_kernels(stock)
        if name in self._dynamic:
            return self._dynamic[name]
        env = self._alias(name)
        if env is None:
            return name  # the stock manager raises NoSuchKernel
        for dynamic_env in self._dynamic.values():
            if dynamic_env.prefix == env.prefix:
                return dynamic_env
        for written, resource_dir in stock.items():
            data = self._read_spec(resource_dir) or {}
            marker = _marker(data)
            exe = _argv0(data)
            if (marker is not None and marker.get("prefix") == str(env.prefix)) or (
                env.python is not None and exe and os.path.normpath(exe) == os.path.normpath(str(env.python))
            ):
                return written
        return name

    def _alias(self, name: str) -> Environment | None:
        found = self._cache.get()
        if found is None:
            return None
        kinds: tuple[str, ...]
        m = _NB_CONDA.match(name)
        if m:
            wanted, kinds = ("base" if m.group("root") else m.group("name")), ("conda",)
        else:
            m = _NB_VENV.match(name)
            if not m:
                return None
            wanted, kinds = m.group("name"), ("venv", "virtualenv", "uv", "virtualenvwrapper")
        for env in found.environments:
            if env.healthy and env.name.lower() == wanted and set(env.kinds) & set(kinds):
                return env
        return None

    def _resource_dir(self, env: Environment) -> Path:
        """The kind's badge folder shipped with kernelkeeper (the logos, nothing written): always the
        badge, not ipykernel's logo from the environment, so tiles of different kinds differ."""
        return logos.logo_dir(env.kind)

    def _spec_for(self, env: Environment) -> KernelSpec:
        display = display_name(env, self.display_name_format)
        data = kernel_json(env, display=display, overlay=self._overlay_of.get(str(env.prefix)))
        return KernelSpec(resource_dir=str(self._resource_dir(env)), **data)
