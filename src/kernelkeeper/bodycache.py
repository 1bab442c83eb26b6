"""The last ``/api/kernelspecs`` body on disk, so a restarted server's first kernel list is bytes, not work.

The provider keeps its discovery on disk (``state.py``), but turning 2,000 saved
environments back into a kernel list still costs a few hundred milliseconds of
Python (decoding the state, a model per kernel, JSON, gzip) while the server is
busy starting. This file keeps the finished answer instead: a one-line JSON
header, then the gzipped body.

The saved body is used for the first requests after a start only when

* the header's ``key`` equals the key of today's inputs other than discovery:
  kernelkeeper's version, the manager's settings, the server's base_url and
  default kernel, the discovery context, the written kernelspecs (each folder's
  and ``kernel.json``'s mtime), the overlays, the recent kernels and the kernel
  names in the server's notebooks (a notebook copied in while the server was down)
  (``KernelKeeperSpecManager._body_key``);
* every interpreter the listed kernels start still exists (``interpreters``):
  a kernel whose environment was deleted while the server was down is never
  offered, as with the saved discovery state;
* the body's digest matches its ETag (a truncated or edited file is ignored).

Environments created while the server was down are not in it: they appear on
the first check, which the first request starts, exactly as with the saved
discovery state. Like that state, the file is a cache read only when it is a
regular file owned by the user and not writable by others; anything wrong with
it is logged and ignored.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import safeio
from .state import trusted_file

log = logging.getLogger(__name__)

FORMAT = 1
#: A body of 10,000 kernels is ~10 MB; a larger file (or one that inflates past this) is not ours.
LIMIT = 64 << 20


@dataclass(frozen=True)
class Saved:
    key: str
    etag: str
    default: str | None
    interpreters: tuple[str, ...]
    data: bytes
    gzipped: bytes


def etag_of(data: bytes) -> str:
    return '"kk-' + hashlib.blake2b(data, digest_size=16).hexdigest() + '"'


def encode(saved: Saved) -> bytes:
    header = {
        "format": FORMAT,
        "key": saved.key,
        "etag": saved.etag,
        "default": saved.default,
        "interpreters": list(saved.interpreters),
    }
    return json.dumps(header, separators=(",", ":")).encode() + b"\n" + saved.gzipped


def decode(blob: bytes) -> Saved:
    """The saved body in ``blob``; ``ValueError`` when it is not one, or not whole."""
    head, newline, gzipped = blob.partition(b"\n")
    if not newline:
        raise ValueError("no header")
    header = safeio.loads_json(head, "the saved kernel list's header", max_depth=4)
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ValueError("another format")
    key, etag, default, interpreters = (header.get(k) for k in ("key", "etag", "default", "interpreters"))
    if not (isinstance(key, str) and isinstance(etag, str) and (default is None or isinstance(default, str))):
        raise ValueError("a malformed header")
    if not isinstance(interpreters, list) or not all(isinstance(p, str) for p in interpreters):
        raise ValueError("a malformed header")
    inflate = zlib.decompressobj(wbits=31)  # gzip
    try:
        data = inflate.decompress(gzipped, LIMIT)
    except zlib.error as e:
        raise ValueError(f"a corrupt body ({e})") from None
    if inflate.unconsumed_tail or not inflate.eof:
        raise ValueError("a truncated or oversized body")
    if etag_of(data) != etag:
        raise ValueError("a body that does not match its ETag")
    return Saved(key, etag, default, tuple(interpreters), data, gzipped)


def load(path: Path, logger: logging.Logger | None = None) -> Saved | None:
    """The body saved at ``path``, or None (missing, foreign or corrupt: logged)."""
    try:
        trusted_file(path)
        return decode(safeio.read_bytes(path, LIMIT))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        (logger or log).warning("kernelkeeper: ignoring the saved kernel list %s: %s", path, safeio.why(e))
        return None


def save(path: Path, saved: Saved, logger: logging.Logger | None = None) -> bool:
    """Write atomically (0600, never through a planted link); False when it cannot be written."""
    try:
        safeio.write_private(path, encode(saved))
    except OSError as e:
        (logger or log).info("kernelkeeper: could not save the kernel list %s: %s", path, safeio.why(e))
        return False
    return True


def alive(saved: Saved) -> bool:
    return all(os.path.exists(p) for p in saved.interpreters)


def folder_signature(folders: list[str]) -> list[Any]:
    """Each kernelspec folder under ``folders``: its name, its mtime and its kernel.json's (mtime, size)."""
    out: list[Any] = []
    for folder in folders:
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            out.append([folder, None])
            continue
        row: list[Any] = [folder]
        for name in names:
            sub = os.path.join(folder, name)
            try:
                st = os.stat(sub)
                js = os.stat(os.path.join(sub, "kernel.json"))
                row.append([name, st.st_mtime_ns, js.st_mtime_ns, js.st_size])
            except OSError:
                row.append([name, None])
        out.append(row)
    return out
