"""Reading files that anyone may have placed: regular files only, with a size limit.

Every file kernelkeeper reads may be hostile or broken: a FIFO where a config
file should be blocks ``open()`` for good, a device or a huge file costs
seconds, a JSON document nested 100,000 deep raises ``RecursionError``. All
reads of files kernelkeeper does not own go through here:

* the file is opened with ``O_NONBLOCK`` (opening a FIFO never waits) and
  checked with ``fstat`` on the open descriptor (no race between check and
  read): anything but a regular file is refused;
* at most ``limit`` bytes are read; a larger file is refused;
* JSON and TOML parse errors, recursion and decoding errors all become one
  ``ValueError`` whose message says what was wrong.

``launch.py`` runs with ``python -I -S`` and imports nothing of the package; it
keeps its own copy of ``read_bytes`` (a dozen lines).
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import sys
import tempfile
from pathlib import Path
from typing import Any, Union

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

StrPath = Union[str, "os.PathLike[str]"]

#: The default limit: far above any config, kernel.json or marker file people write.
LIMIT = 1 << 20


class NotARegularFile(OSError):
    """The path is a FIFO, socket, device or folder, not a file that can be read."""


class TooLarge(OSError):
    """The file is larger than the reader allows."""


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a regular file"


def _open_regular(path: StrPath) -> tuple[int, os.stat_result]:
    """A descriptor of ``path`` and its stat: opened without blocking (a FIFO would block ``open``),
    ``NotARegularFile`` for anything but a regular file. The caller closes it."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotARegularFile(f"{os.fspath(path)} is {_kind(st.st_mode)}, not a regular file")
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def read_bytes(path: StrPath, limit: int = LIMIT) -> bytes:
    """The content of a regular file of at most ``limit`` bytes.

    Raises ``FileNotFoundError``/``PermissionError`` (and other ``OSError``) as
    ``open`` does, ``NotARegularFile`` for anything but a regular file, and
    ``TooLarge`` past the limit. Never blocks on a FIFO.
    """
    fd, st = _open_regular(path)
    try:
        if st.st_size > limit:
            raise TooLarge(f"{os.fspath(path)} is {st.st_size:,} bytes (the limit is {limit:,})")
        # One read of what fstat says is there, and one byte more: exactly that many bytes is the
        # whole file (no second read to meet its end: a scan reads thousands of small files).
        # A file that grew, shrank, or says 0 bytes (/proc) is read on until its end.
        first = os.read(fd, st.st_size + 1)
        if len(first) == st.st_size:
            return first
        chunks: list[bytes] = [first]
        size = len(first)
        if size > limit:
            raise TooLarge(f"{os.fspath(path)} is larger than {limit:,} bytes")
        while first:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            size += len(chunk)
            if size > limit:  # grew while we read it
                raise TooLarge(f"{os.fspath(path)} is larger than {limit:,} bytes")
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_head(path: StrPath, size: int) -> bytes:
    """The first ``size`` bytes of a regular file of any length (a magic number, a ``#!``)."""
    fd, _ = _open_regular(path)
    try:
        return os.read(fd, size)
    finally:
        os.close(fd)


def read_tail(path: StrPath, size: int) -> tuple[int, bytes]:
    """The length of a regular file of any length and its last ``size`` bytes (where nbformat puts a
    notebook's metadata). Never blocks on a FIFO; refuses anything but a regular file."""
    fd, st = _open_regular(path)
    try:
        start = max(0, st.st_size - size)
        chunks: list[bytes] = []
        got = 0
        while got < st.st_size - start:  # a file that shrank while read gives what is left
            chunk = os.pread(fd, st.st_size - start - got, start + got)
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        return st.st_size, b"".join(chunks)
    finally:
        os.close(fd)


def read_text(path: StrPath, limit: int = LIMIT, *, errors: str = "replace") -> str:
    """``read_bytes`` decoded as UTF-8 (undecodable bytes replaced unless ``errors="strict"``)."""
    return read_bytes(path, limit).decode("utf-8", errors=errors)


def why(error: BaseException) -> str:
    """A short reason for a failed read, for a status or a message."""
    if isinstance(error, (NotARegularFile, TooLarge)):
        return str(error)
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower() if error.strerror[:1].isupper() else error.strerror
    return str(error)


def depth(value: Any) -> int:
    """How deeply a parsed JSON value nests (iterative: a deep value cannot exhaust the stack here)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in item if isinstance(child, (dict, list)))
    return deepest


def loads_json(text: str | bytes, what: str = "JSON", *, max_depth: int | None = None) -> Any:
    """``json.loads`` whose every failure is a ``ValueError`` saying what was wrong.

    ``max_depth``: refuse documents nested deeper. One that json.loads just manages
    (~990 levels) still raises RecursionError later, when it is copied or printed a
    few calls deeper (traitlets, jupyter_server's reply, our own renderers).
    """
    try:
        data = json.loads(text)
    except RecursionError:
        raise ValueError(f"{what} is nested too deeply to read") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"{what} is not UTF-8: {e.reason} at byte {e.start}") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{what} is not valid JSON: {e}") from None
    if max_depth is not None and depth(data) > max_depth:
        raise ValueError(f"{what} is nested too deeply to read (more than {max_depth} levels)")
    return data


def load_json(path: StrPath, limit: int = LIMIT, *, max_depth: int | None = None) -> Any:
    """A JSON file: ``OSError`` when it cannot be read, ``ValueError`` when it is not JSON."""
    return loads_json(read_bytes(path, limit), f"{os.fspath(path)}", max_depth=max_depth)


def load_toml(path: StrPath, limit: int = LIMIT) -> dict[str, Any]:
    """A TOML file: ``OSError`` when it cannot be read, ``ValueError`` when it is not TOML."""
    raw = read_bytes(path, limit)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{os.fspath(path)} is not UTF-8: {e.reason} at byte {e.start}") from None
    try:
        data: dict[str, Any] = tomllib.loads(text)
        return data
    except RecursionError:
        raise ValueError(f"{os.fspath(path)} is nested too deeply to read") from None
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{os.fspath(path)} is not valid TOML: {e}") from None


def is_regular_file(path: StrPath) -> bool:
    """True when ``path`` (following links) is a regular file; never opens it."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def write_private(path: Path, data: bytes, *, durable: bool = False) -> None:
    """Write ``data`` to ``path`` atomically, mode 0600, never through a planted link.

    A temporary file in the same folder (``mkstemp``: 0600, created exclusively) renamed
    over ``path``: a rename replaces a link placed there, it never writes through it, and a
    reader sees the old file or the new one, never half of one. ``durable``: on disk (fsync)
    before the rename, for a file whose loss after a crash matters (the trust list). Raises ``OSError``.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def reach(path: StrPath) -> str:
    """Whether ``path`` is ``"there"`` (stat follows links), ``"out of reach"`` (a folder on the way
    this user may not enter: another user's Python) or ``"gone"`` (missing, a dangling link, a bad path)."""
    try:
        os.stat(path)
    except PermissionError:
        return "out of reach"
    except (OSError, ValueError):
        return "gone"
    return "there"


__all__ = [
    "LIMIT",
    "NotARegularFile",
    "TooLarge",
    "depth",
    "is_regular_file",
    "load_json",
    "load_toml",
    "loads_json",
    "reach",
    "read_bytes",
    "read_head",
    "read_tail",
    "read_text",
    "why",
    "write_private",
]
