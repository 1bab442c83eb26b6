"""Kernelspecs a package installed: files listed in a dist-info RECORD belong to that package.

ipykernel's wheel ships ``share/jupyter/kernels/python3/kernel.json`` as a data
file; installed into an environment it lands in ``<prefix>/share/jupyter/kernels``
and its RECORD lists it (``../../../share/jupyter/kernels/python3/kernel.json``).
The package rewrites or deletes that file on its next upgrade or uninstall, and
``pip check``-style tools compare it with the recorded hash: kernelkeeper never
rewrites, adopts or removes it. Reads go through `safeio` (RECORDs are files
anyone may have placed).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from pathlib import Path

from . import safeio
from .kernelspecs import KernelSpecInfo

# Far above any real RECORD (numpy's is ~150 kB); a larger file is skipped, not read.
RECORD_LIMIT = 8 << 20
_NEEDLE = b"share/jupyter/kernels/"


def _site_dirs(prefix: Path) -> list[Path]:
    out: list[Path] = []
    lib = prefix / "lib"
    try:
        names = sorted(os.listdir(lib))
    except OSError:
        names = []
    out += [lib / n / "site-packages" for n in names if n.startswith(("python", "pypy"))]
    out.append(prefix / "Lib" / "site-packages")
    return out


def recorded_kernel_files(prefix: Path) -> dict[str, str]:
    """Every ``kernel.json`` under ``prefix`` that an installed distribution lists: path -> "name version"."""
    found: dict[str, str] = {}
    for site in _site_dirs(prefix):
        try:
            entries = sorted(os.listdir(site))
        except OSError:
            continue
        for entry in entries:
            if not entry.endswith(".dist-info"):
                continue
            try:
                raw = safeio.read_bytes(site / entry / "RECORD", RECORD_LIMIT)
            except OSError:
                continue
            if _NEEDLE not in raw:
                continue
            dist = entry[: -len(".dist-info")]
            name, _, version = dist.partition("-")
            lines = [ln for ln in raw.decode("utf-8", "replace").splitlines() if "share/jupyter/kernels/" in ln]
            for row in csv.reader(lines):
                if row and row[0].endswith("/kernel.json"):
                    path = os.path.normpath(os.path.join(site, row[0]))
                    found.setdefault(path, f"{name} {version}".strip())
    return found


def packaged_kernels(kernels: Iterable[KernelSpecInfo]) -> dict[str, str]:
    """The kernelspecs whose kernel.json a package installed: str(resource_dir) -> "ipykernel 6.29.5 in PREFIX".

    Only folders shaped ``<prefix>/share/jupyter/kernels/<name>`` can be; each prefix's RECORDs are read once.
    """
    by_prefix: dict[Path, dict[str, str]] = {}
    out: dict[str, str] = {}
    for k in kernels:
        if k.builtin:
            continue
        folder = k.resource_dir.parent
        if folder.name != "kernels" or folder.parent.name != "jupyter" or folder.parent.parent.name != "share":
            continue
        prefix = folder.parent.parent.parent
        if prefix not in by_prefix:
            by_prefix[prefix] = recorded_kernel_files(prefix)
        owner = by_prefix[prefix].get(os.path.normpath(k.resource_dir / "kernel.json"))
        if owner is not None:
            out[str(k.resource_dir)] = f"{owner} in {prefix}"
    return out
