"""The trust list: folders whose environments "Python (this project)" may run although others could change them.

The launcher (``launch.py``) runs an environment it found only when no one but you
or root could have changed it; anything else runs only at or below a folder
recorded here by ``kernelkeeper trust DIR``. The file is
``<XDG_DATA_HOME>/kernelkeeper/trusted.json`` (the path the launcher computes):

    {"version": 1, "trusted": [{"path": "/abs/real/path", "owner_uid": 1000,
                                "owner": "me", "added": "2025-01-01T12:00:00+00:00"}]}

Each entry keeps the folder's owner at the time it was trusted: the launcher
ignores an entry whose folder now has another owner (deleted and made again
by someone else in a shared folder). The file is written atomically, mode
0600, under a lock; the launcher ignores it unless it is a regular file owned
by you that no one else can write, in folders no one else can change.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import launch, safeio
from .context import Context
from .errors import UserError

VERSION = 1


def trust_file(ctx: Context) -> Path:
    """Where the launcher looks: ``launch.trust_path()`` computed from this context's environment."""
    return ctx.data_home().joinpath(*launch.TRUST_FILE)


@dataclass(frozen=True)
class Entry:
    path: str
    owner_uid: int | None
    owner: str | None
    added: str | None

    def state(self) -> str:
        """``ok``, ``gone``, or ``owner changed``: whether the launcher still honours the entry."""
        try:
            uid = os.stat(self.path).st_uid
        except OSError:
            return "gone"
        return "ok" if uid == self.owner_uid else "owner changed"

    def covers(self, path: str) -> bool:
        return path == self.path or path.startswith(self.path.rstrip(os.sep) + os.sep)

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "owner_uid": self.owner_uid, "owner": self.owner, "added": self.added}


@dataclass(frozen=True)
class TrustChange:
    """What ``trust``/``trust --remove`` did (or would do, with ``dry_run``)."""

    action: str  # "add", "remove", "already"
    entry: Entry
    file: Path
    dry_run: bool
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            **self.entry.to_json(),
            "file": str(self.file),
            "dry_run": self.dry_run,
            "note": self.note,
        }


def _user(uid: int) -> str | None:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return None


def _problem_with_file(path: Path) -> str | None:
    """Why the launcher would ignore the trust file (the same rule it applies), or None."""
    if not hasattr(os, "geteuid"):
        return None
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    except OSError as e:
        return f"{path} cannot be read: {safeio.why(e)}"
    if st is not None:
        bad = launch.problem(str(path), st, sticky_ok=False)
        if bad:
            return bad
        if st.st_uid != os.geteuid():
            return f"{path} is owned by {_user(st.st_uid) or st.st_uid}, not by you"
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # the folders `trust` would create are yours
    return launch.Checker().above(os.path.realpath(folder))


def load(ctx: Context) -> tuple[Entry, ...]:
    """The entries of the trust file (none when it does not exist)."""
    path = trust_file(ctx)
    try:
        data = safeio.load_json(path, launch.READ_LIMIT)
    except FileNotFoundError:
        return ()
    except OSError as e:
        raise UserError(f"cannot read the trust file {path}: {safeio.why(e)}", hint=f"remove {path}") from e
    except ValueError as e:
        raise UserError(str(e), hint=f"fix or remove {path} (it only lists trusted folders)") from e
    raw = data.get("trusted") if isinstance(data, dict) else None
    if not isinstance(raw, list):
        raise UserError(f"{path} has no list 'trusted'", hint=f"fix or remove {path}")
    entries = []
    for item in raw:
        if isinstance(item, dict) and isinstance(item.get("path"), str):
            uid = item.get("owner_uid")
            entries.append(
                Entry(
                    item["path"],
                    uid if isinstance(uid, int) else None,
                    item.get("owner") if isinstance(item.get("owner"), str) else None,
                    item.get("added") if isinstance(item.get("added"), str) else None,
                )
            )
    return tuple(entries)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Two `trust` runs at once must not lose one's entry: read-modify-write under a lock."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as e:
        raise UserError(f"cannot create {path.parent}: {safeio.why(e)}") from e
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if sys.platform != "win32":
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write(path: Path, entries: tuple[Entry, ...]) -> None:
    """Atomically: a 0600 file beside the target, then rename over it."""
    text = json.dumps({"version": VERSION, "trusted": [e.to_json() for e in entries]}, indent=2) + "\n"
    safeio.write_private(path, text.encode("utf-8"), durable=True)


def _check_writable_place(path: Path) -> None:
    bad = _problem_with_file(path)
    if bad:
        raise UserError(
            f"the launcher would ignore the trust file: {bad}",
            hint="make it and the folders above it yours and not writable by others (chmod go-w), then run again",
        )


def add(ctx: Context, folder: str, *, dry_run: bool = False) -> TrustChange:
    """Trust ``folder`` (its real path) and everything below it."""
    path = Path(folder).expanduser()
    if not path.is_absolute():
        path = ctx.cwd / path
    if not path.is_dir():
        raise UserError(f"{folder}: no such folder", hint="trust the project folder the kernel's notice names")
    real = os.path.realpath(path)
    uid = os.stat(real).st_uid
    entry = Entry(real, uid, _user(uid), datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    note = None
    if hasattr(os, "geteuid") and uid not in (os.geteuid(), 0):
        note = f"{real} belongs to {entry.owner or uid}: whatever they put there can now run as you in a kernel"
    file = trust_file(ctx)
    _check_writable_place(file)
    with contextlib.nullcontext() if dry_run else _locked(file):
        entries = load(ctx)
        for e in entries:
            if e.covers(real) and e.state() == "ok":
                return TrustChange("already", e, file, dry_run, f"already trusted through {e.path}")
        kept = tuple(e for e in entries if e.path != real)  # a stale entry for the same path is replaced
        if not dry_run:
            _write(file, (*kept, entry))
    return TrustChange("add", entry, file, dry_run, note)


def remove(ctx: Context, folder: str, *, dry_run: bool = False) -> TrustChange:
    """Stop trusting ``folder`` (as given, or its real path: a folder that is gone can still be removed)."""
    path = Path(folder).expanduser()
    if not path.is_absolute():
        path = ctx.cwd / path
    candidates = {os.path.abspath(path), os.path.realpath(path)}
    file = trust_file(ctx)
    with contextlib.nullcontext() if dry_run else _locked(file):
        entries = load(ctx)
        match = [e for e in entries if e.path in candidates]
        if not match:
            above = [e.path for e in entries if any(e.covers(c) for c in candidates)]
            hint = (
                f"it is trusted through {above[0]}: `kernelkeeper trust --remove {above[0]}`"
                if above
                else "`kernelkeeper trust --list` shows the trusted folders"
            )
            raise UserError(f"{folder} is not in the trust list", hint=hint)
        if not dry_run:
            _write(file, tuple(e for e in entries if e.path not in candidates))
    return TrustChange("remove", match[0], file, dry_run)


__all__ = ["Entry", "TrustChange", "add", "load", "remove", "trust_file"]
