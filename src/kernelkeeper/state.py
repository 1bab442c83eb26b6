"""One discovery state, shared: in memory for every caller, on disk between runs.

A discovery records what it read (``Discovery.watched``, and for walked folders
their ``signatures``). If none of those paths moved, a new scan would find the
same environments, so the last result can be reused after a few thousand
``stat`` calls instead of a scan. That is what the provider has always done in
its worker thread; here it is available to every caller:

* ``discover_cached(ctx)`` keeps the last result per context in this process
  (a second discovery with nothing changed costs the stats only);
* ``load(ctx)`` / ``save(ctx, found, snapshot)`` keep it on disk per user
  (``$XDG_CACHE_HOME/kernelkeeper/discovery-<key>.json``), so a server that
  restarts answers its first kernel list from the last scan, still validated,
  before any scan of its own has finished.

The on-disk file is a cache, never an input that decides anything alone: it is
read only when it is a regular file owned by the user and not writable by
others, it names the context it was made for, and anything wrong with it
(another format, another context, corrupt JSON) is ignored with a log line.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import safeio
from .context import Context
from .discovery import Discovery, Snapshot, changed, discover, settle, snapshot
from .environments import Environment
from .projects import Skipped
from .watch import Watch

log = logging.getLogger(__name__)

# 2: JSON lines (1 was one JSON document). 3: a walked folder's signature records the marker
# files whose content discovery does not read (lock files, requirements.txt...) as present, not
# by mtime: a saved signature of 2 would not match the folder as it is now. 4: the watched paths
# include each environment's pyvenv.cfg or conda-meta/; a state of 3 would miss their changes.
FORMAT = 4
#: The state of 10,000 environments is a few MB; past this something else is in the file.
LIMIT = 64 << 20
# Variables that change from one shell to the next without changing what discovery finds.
_VOLATILE = ("PWD", "OLDPWD", "SHLVL", "_", "COLUMNS", "LINES", "TERM", "PS1", "SSH_", "DISPLAY", "JPY_", "KERNEL")


def context_key(ctx: Context) -> str:
    """A short digest of everything discovery depends on (variables, HOME, folder, roots, limits)."""
    env = sorted((k, v) for k, v in ctx.env.items() if not k.startswith(_VOLATILE))
    data = {
        "format": FORMAT,
        "env": env,
        "home": str(ctx.home),
        "cwd": str(ctx.cwd),
        "roots": [str(r) for r in ctx.roots],
        "default_roots": ctx.default_roots,
        "depth": ctx.depth,
        "max_dirs": ctx.max_dirs,
        "extra_paths": [str(p) for p in ctx.extra_paths],
        "platform": ctx.platform,
        "system_root": str(ctx.system_root),
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


# --- in memory ---------------------------------------------------------------------


@dataclass
class _Entry:
    found: Discovery
    snapshot: Snapshot
    watch: Watch | None = None
    # The snapshot holds a value no stat will match (a path that moved while the scan ran):
    # the next check must compare mtimes even if inotify saw nothing.
    unsettled: bool = False
    stats: int = 0  # paths stat'ed by checks so far


_memory: dict[str, _Entry] = {}
_memory_lock = threading.Lock()
#: Results kept per process (each holds one inotify descriptor; a user may have 128).
MEMORY_SLOTS = 4


def check(entry: _Entry) -> str | None:
    """The first path the entry's discovery read that moved, or None while nothing did.

    The first call sets up the inotify watch and then checks every path by its mtime
    (which covers whatever happened before the watch existed); later calls stat only
    the paths inotify cannot vouch for, unless an event arrived. ``entry.stats``
    counts the paths stat'ed (what an idle check costs).
    """
    if entry.watch is None:
        entry.watch = Watch(entry.found.watched)
        entry.watch.pending()
    elif entry.watch.active and not entry.watch.pending() and not entry.unsettled:
        polled = {p: entry.snapshot[p] for p in entry.watch.polled if p in entry.snapshot}
        entry.stats += len(polled)
        moved = changed(polled, entry.found.signatures)
        entry.snapshot.update(polled)
        return moved
    entry.unsettled = False
    entry.watch.rearm()  # before comparing: see Watch.rearm
    entry.stats += len(entry.snapshot)
    return changed(entry.snapshot, entry.found.signatures)


def unchanged(entry: _Entry) -> bool:
    """Whether nothing the entry's discovery read has moved (see ``check``)."""
    return check(entry) is None


def watched_entry(found: Discovery, before: Snapshot, started_ns: int) -> _Entry:
    """The cache entry for a scan that just ended: watches first, then the snapshot.

    In that order nothing falls between the two: a change after the watch exists raises
    an event, one before the snapshot shows in it (``settle`` keeps the old mtime).
    """
    watch = Watch(found.watched)
    after = snapshot(found.watched)
    settled = settle(after, before, started_ns)
    return _Entry(found, settled, watch, unsettled=settled != after)


def discover_cached(ctx: Context) -> Discovery:
    """``discover(ctx)``, reused while nothing it read has moved (see ``unchanged``)."""
    key = context_key(ctx)
    with _memory_lock:
        entry = _memory.get(key)
        if entry is not None and unchanged(entry):
            return entry.found
    before = snapshot(entry.found.watched) if entry is not None else {}
    started = time.time_ns()
    found = discover(ctx)
    with _memory_lock:
        old = _memory.pop(key, None)
        if old is not None and old.watch is not None:
            old.watch.close()
        while len(_memory) >= MEMORY_SLOTS:
            _drop(next(iter(_memory)))
        _memory[key] = watched_entry(found, before, started)
    return found


def _drop(key: str) -> None:
    entry = _memory.pop(key)
    if entry.watch is not None:
        entry.watch.close()


def forget() -> None:
    """Drop every in-memory result (tests)."""
    with _memory_lock:
        for key in list(_memory):
            _drop(key)


# --- on disk -----------------------------------------------------------------------


def state_path(ctx: Context) -> Path:
    return ctx.user_cache_dir("kernelkeeper") / f"discovery-{context_key(ctx)}.json"


def _env_to_json(env: Environment) -> list[Any]:
    return [
        str(env.prefix),
        str(env.python) if env.python is not None else None,
        env.version,
        list(env.kinds),
        env.name,
        str(env.project) if env.project is not None else None,
        env.has_ipykernel,
        list(env.problems),
        env.implementation,
        str(env.site_packages) if env.site_packages is not None else None,
    ]


def _env_from_json(row: list[Any]) -> Environment:
    prefix, python, version, kinds, name, project, ipk, problems, impl, site = row
    return Environment(
        prefix=Path(prefix),
        python=Path(python) if python is not None else None,
        version=version,
        kinds=tuple(kinds),
        name=str(name),
        project=Path(project) if project is not None else None,
        has_ipykernel=bool(ipk),
        problems=tuple(problems),
        implementation=impl,
        site_packages=Path(site) if site is not None else None,
    )


#: Items per line of the saved state. Each line is one small ``json`` call: a server's worker thread
#: that saves or loads 2,000 environments never holds the GIL for long against the event loop (one
#: ``json.dumps`` of the whole 3.5 MB state held it ~30 ms; a line of 256 items, well under 1 ms).
CHUNK = 256


def _lines(section: str, items: list[Any]) -> Iterator[str]:
    for i in range(0, len(items), CHUNK):
        yield json.dumps([section, items[i : i + CHUNK]], separators=(",", ":"))


def encode(ctx: Context, found: Discovery, snap: Snapshot) -> str:
    """The state as JSON lines: a header, the sections in pieces, and an end line with the counts."""
    sections: dict[str, list[Any]] = {
        "environments": [_env_to_json(e) for e in found.environments],
        "skipped": [[str(s.path), s.reason] for s in found.skipped],
        "watched": list(found.watched),
        "signatures": [[path, [list(pair) for pair in sig]] for path, sig in found.signatures.items()],
        "snapshot": list(snap.items()),
    }
    header = {"format": FORMAT, "key": context_key(ctx), "saved": time.time()}
    lines = [json.dumps(header, separators=(",", ":"))]
    for name, items in sections.items():
        lines.extend(_lines(name, items))
    lines.append(json.dumps(["end", {name: len(items) for name, items in sections.items()}]))
    return "\n".join(lines) + "\n"


def decode(ctx: Context, text: str | bytes) -> tuple[Discovery, Snapshot]:
    """The state in ``text``; ``ValueError`` when it is not a whole state for this context."""
    raw = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    lines = raw.splitlines()
    header = safeio.loads_json(lines[0] if lines else "", "the discovery state", max_depth=4)
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ValueError("the discovery state has another format")
    if header.get("key") != context_key(ctx):
        raise ValueError("the discovery state was made for another context")
    sections: dict[str, list[Any]] = {n: [] for n in ("environments", "skipped", "watched", "signatures", "snapshot")}
    counts = None
    try:
        for line in lines[1:]:
            name, items = safeio.loads_json(line, "the discovery state", max_depth=8)
            if name == "end":
                counts = items
                break
            sections[name].extend(items)
        if counts != {name: len(items) for name, items in sections.items()}:
            raise ValueError("the discovery state is incomplete")
        found = Discovery(
            environments=tuple(_env_from_json(row) for row in sections["environments"]),
            skipped=tuple(Skipped(Path(p), str(r)) for p, r in sections["skipped"]),
            watched=tuple(str(p) for p in sections["watched"]),
            signatures={str(path): tuple((str(n), int(v)) for n, v in sig) for path, sig in sections["signatures"]},
        )
        snap = {str(k): int(v) for k, v in sections["snapshot"]}
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ValueError(f"the discovery state is malformed ({type(e).__name__}: {e})") from None
    return found, snap


def trusted_file(path: Path) -> os.stat_result:
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{path} is not a regular file")
    if st.st_uid != os.getuid():
        raise ValueError(f"{path} belongs to another user")
    if st.st_mode & 0o022:
        raise ValueError(f"{path} is writable by others")
    return st


def load(ctx: Context, logger: logging.Logger | None = None) -> tuple[Discovery, Snapshot] | None:
    """The last state saved for this context, or None (missing, foreign or corrupt: logged)."""
    path = state_path(ctx)
    try:
        trusted_file(path)
        found, snap = decode(ctx, safeio.read_bytes(path, LIMIT))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        (logger or log).warning("kernelkeeper: ignoring the discovery state %s: %s", path, safeio.why(e))
        return None
    return found, snap


def save(ctx: Context, found: Discovery, snap: Snapshot, logger: logging.Logger | None = None) -> Path | None:
    """Write the state atomically (0600, never through a planted link); None when it cannot be written."""
    path = state_path(ctx)
    try:
        safeio.write_private(path, encode(ctx, found, snap).encode("utf-8"))
    except OSError as e:
        (logger or log).info("kernelkeeper: could not save the discovery state %s: %s", path, safeio.why(e))
        return None
    return path


def still_valid(snap: Mapping[str, int], found: Discovery) -> str | None:
    """The first path that moved since the state was saved, or None (``discovery.changed``, on a copy)."""
    return changed(dict(snap), found.signatures)
