"""Discover: run every locator, fold what they found into `Environment` values."""

from __future__ import annotations

import gc
import os
import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

from .context import Context
from .environments import _KIND_RANK, Environment, Found, as_path, kind_rank, merge, merge_at
from .locators import LOCATORS, system
from .projects import Signature, Skipped, folder_signature, scan_projects


@dataclass(frozen=True)
class Discovery:
    """What a scan found, and what it skipped (unreadable folders, symlink loops)."""

    environments: tuple[Environment, ...]
    skipped: tuple[Skipped, ...] = field(default=())
    # What the scan read; if none of their mtimes changed, a new scan finds the same.
    watched: tuple[str, ...] = field(default=(), compare=False)
    # For the walked folders among them, what the walk read there (see `projects.signature`).
    signatures: Mapping[str, Signature] = field(default_factory=dict, compare=False)

    def by_kind(self, kind: str) -> tuple[Environment, ...]:
        return tuple(e for e in self.environments if kind in e.kinds)


_DIGITS = re.compile(r"(\d+)")


def _natural(name: str) -> list[tuple[int, int | str]]:
    """Sort key that puts 3.9 before 3.10 and env2 before env10."""
    lower = name.lower()
    parts = _DIGITS.split(lower)
    if len(parts) == 1:  # no digits (half the names): one part, no list to build
        return [(1, lower)] if lower else []
    # The split alternates text and digits: the digits are at the odd places.
    return [(0, int(p)) if i & 1 else (1, p) for i, p in enumerate(parts) if p]


def discover(ctx: Context) -> Discovery:
    """Find every environment the context can see. Reads files only; never runs Python."""
    # A scan makes tens of thousands of objects and no reference cycles (tests/test_discovery.py
    # checks), so a cyclic collection during it frees nothing; at 10,000 environments the
    # collections it would trigger (full ones included) cost a tenth of the scan. Paused,
    # then back as it was.
    pause = gc.isenabled()
    if pause:
        gc.disable()
    try:
        return _discover(ctx)
    finally:
        if pause:
            gc.enable()


def _discover(ctx: Context) -> Discovery:
    scan = scan_projects(ctx)
    real = scan.realpath
    # Records grouped by resolved prefix: two locators reaching one env by two paths is one env.
    # (normcase folds case where the filesystem does; on POSIX it is the identity, and a call less.)
    key = real if os.name == "posix" else lambda path: os.path.normcase(real(path))
    records: dict[str, list[Found]] = defaultdict(list)
    for locator in LOCATORS:
        for found in locator.find(ctx, scan):
            records[key(str(found.prefix))].append(found)
    known = set(records)
    user_home = str(ctx.home)
    # The dist-packages and user site-packages folders base Pythons import from, as describe looks.
    extra_sites: dict[str, bool] = {}
    environments = []
    cfgs = scan.cfgs
    for prefix, group in records.items():
        if len(group) > 1:
            group.sort(key=_rank)
        environments.append(merge_at(prefix, as_path(prefix), group, user_home, cfgs, extra_sites))
    for found in system.find(ctx, known):
        # Several system Pythons may share one prefix (/usr): one environment per interpreter.
        environments.append(merge([found], ctx.home, scan.cfgs, extra_sites))
    environments.sort(key=_order)
    watched = scan.visited + scan.content_files
    for locator in LOCATORS:
        watched += [str(p) for p in locator.watch(ctx)]
    watched += [str(p) for p in system.watch(ctx)]
    dirname, watch_at = os.path.dirname, cfgs.watch_at
    for env in environments:
        prefix = str(env.prefix)
        watched.append(dirname(prefix))
        watched += watch_at(prefix)  # its pyvenv.cfg or conda-meta/, and its base Python's folder
        if env.site_packages is not None:
            watched.append(str(env.site_packages))
    watched += extra_sites  # `pip install --user ipykernel` changes no folder the scan listed
    watched += [p for p in ctx.env.get("PATH", "").split(os.pathsep) if p]
    return Discovery(tuple(environments), tuple(scan.skipped), tuple(dict.fromkeys(watched)), scan.signatures)


def _rank(found: Found) -> int:
    return kind_rank(found.kind)


def _order(env: Environment) -> tuple[int, list[tuple[int, int | str]], str]:
    return _KIND_RANK.get(env.kinds[0], _UNKNOWN_RANK), _natural(env.name), str(env.prefix)


_UNKNOWN_RANK = kind_rank("")  # what kind_rank gives a kind it does not know


Snapshot = dict[str, int]


def snapshot(paths: tuple[str, ...]) -> Snapshot:
    """The mtime of each watched path (-1 when missing): a cheap way to ask "did anything change?"."""
    out: Snapshot = {}
    for path in paths:
        try:
            out[path] = os.stat(path).st_mtime_ns
        except OSError:
            out[path] = -1
    return out


def changed(before: Snapshot, signatures: Mapping[str, Signature] | None = None) -> str | None:
    """The first watched path whose mtime moved since the snapshot, or None.

    A walked folder whose mtime moved but whose signature did not (a notebook was
    saved in it) is no change: its new mtime goes into ``before`` instead.
    """
    settled: Snapshot = {}
    try:
        for path, mtime in before.items():
            try:
                now = os.stat(path).st_mtime_ns
            except OSError:
                now = -1
            if now == mtime:
                continue
            sig = signatures.get(path) if signatures is not None and now != -1 else None
            if sig is not None and folder_signature(path) == sig:
                settled[path] = now
                continue
            return path
        return None
    finally:
        before.update(settled)


# mtimes come from the kernel's coarse clock (or an NFS server's): how far before a
# scan started a new folder's mtime may lie and still be a change during the scan.
_CLOCK_SLACK_NS = 1_000_000_000


def settle(after: Snapshot, before: Snapshot, scan_started_ns: int) -> Snapshot:
    """The snapshot to keep after a scan, so that a change made while it ran is seen next time.

    ``after`` is taken when the scan ends, ``before`` when it started (of the paths the
    previous scan watched). A path that moved in between keeps its old mtime; a path
    new to this scan that was modified about when it started gets -2. Either way the
    next check sees a difference (for a walked folder, only its signature is compared
    then: no rescan unless what the walk read changed).
    """
    out: Snapshot = {}
    for path, mtime in after.items():
        old = before.get(path)
        if old is not None:
            out[path] = old
        elif mtime >= scan_started_ns - _CLOCK_SLACK_NS:
            out[path] = -2
        else:
            out[path] = mtime
    return out
