"""On-disk copies of what the tools write, for fast tests of every layout.

Each builder mirrors one tool's output (files and links only); the real
tools are exercised in test_real_tools.py. Interpreter links point at the
Python running the tests, so they resolve on any machine.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

BASE_PYTHON = Path(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))
BASE_VERSION = "{}.{}.{}".format(*sys.version_info[:3])
MINOR = "{}.{}".format(*sys.version_info[:2])


def _site(prefix: Path, minor: str, packages: dict[str, str]) -> Path:
    site = prefix / "lib" / f"python{minor}" / "site-packages"
    site.mkdir(parents=True, exist_ok=True)
    for name, version in packages.items():
        info = site / f"{name}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    return site


def _bin(prefix: Path, minor: str, target: Path = BASE_PYTHON) -> None:
    bin_dir = prefix / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    (bin_dir / f"python{minor}").symlink_to(target)
    (bin_dir / "python3").symlink_to(f"python{minor}")
    (bin_dir / "python").symlink_to(f"python{minor}")


def venv(
    prefix: Path,
    *,
    tool: str = "venv",
    version: str = BASE_VERSION,
    ipykernel: bool = False,
    target: Path = BASE_PYTHON,
) -> Path:
    """A virtual environment as `python -m venv`, virtualenv or `uv venv` writes it."""
    minor = ".".join(version.split(".")[:2])
    prefix.mkdir(parents=True)
    lines = [f"home = {target.parent}", "include-system-site-packages = false"]
    if tool == "venv":
        lines += [f"version = {version}", f"executable = {target}", f"command = {target} -m venv {prefix}"]
    elif tool == "virtualenv":
        lines += ["implementation = CPython", f"version_info = {version}.final.0", "virtualenv = 20.29.1"]
        lines += [f"base-prefix = {target.parent.parent}", f"base-exec-prefix = {target.parent.parent}"]
    elif tool == "uv":
        lines += ["implementation = CPython", f"version_info = {version}", "uv = 0.5.11"]
    else:
        raise ValueError(tool)
    (prefix / "pyvenv.cfg").write_text("\n".join(lines) + "\n")
    _bin(prefix, minor, target)
    _site(prefix, minor, {"pip": "24.0", **({"ipykernel": "6.29.5"} if ipykernel else {})})
    return prefix


def conda(prefix: Path, *, version: str = BASE_VERSION, ipykernel: bool = False, base: bool = False) -> Path:
    """A conda prefix: conda-meta/ with one JSON record per package, bin/python, site-packages."""
    minor = ".".join(version.split(".")[:2])
    meta = prefix / "conda-meta"
    meta.mkdir(parents=True)
    (meta / "history").write_text("==> 2024-01-01 00:00:00 <==\n# cmd: conda create\n")
    (meta / f"python-{version}-h955ad1f_0.json").write_text('{"name": "python"}')
    if ipykernel:
        (meta / "ipykernel-6.29.5-pyh3099207_0.json").write_text('{"name": "ipykernel"}')
    if base:
        (meta / f"conda-24.1.2-py{minor.replace('.', '')}h06a4308_0.json").write_text("{}")
        (prefix / "envs").mkdir(exist_ok=True)
    _bin(prefix, minor)
    _site(prefix, minor, {"ipykernel": "6.29.5"} if ipykernel else {})
    return prefix


def base_python(prefix: Path, *, version: str = BASE_VERSION) -> Path:
    """A full Python install (pyenv's versions/X.Y.Z, uv's managed Pythons)."""
    minor = ".".join(version.split(".")[:2])
    _bin(prefix, minor)
    _site(prefix, minor, {"pip": "24.0"})
    inc = prefix / "include" / f"python{minor}"
    inc.mkdir(parents=True)
    (inc / "patchlevel.h").write_text(f'#define PY_VERSION              "{version}"\n')
    return prefix


def project(folder: Path, *, files: dict[str, str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in (files or {"pyproject.toml": f'[project]\nname = "{folder.name}"\n'}).items():
        (folder / name).write_text(text)
    return folder
