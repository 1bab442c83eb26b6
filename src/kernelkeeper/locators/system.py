"""The interpreters on PATH that belong to no environment: the system Pythons.

Runs after every other locator, so a PATH entry inside a known environment
(an activated venv, pyenv's own builds) is not reported twice. pyenv's
shims are shell scripts, not interpreters, and are skipped.

On macOS the Pythons installed where macOS keeps them are found on PATH or
not: Homebrew's (``<brew>/Cellar/python@X.Y/<version>/Frameworks/
Python.framework/Versions/X.Y``, brew being ``/opt/homebrew`` or
``/usr/local``) and python.org's framework builds
(``/Library/Frameworks/Python[T].framework/Versions/X.Y``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

from .. import safeio
from ..context import Context
from ..environments import Found
from ..projects import is_env_dir

KIND = "system"
_PYTHON_RE = re.compile(r"^python(\d+(\.\d+)?)?$")
_MINOR_DIR_RE = re.compile(r"^\d+\.\d+$")
_BREWS = ("/opt/homebrew", "/usr/local")
_FRAMEWORKS = ("/Library/Frameworks/Python.framework", "/Library/Frameworks/PythonT.framework")


def _is_script(path: str) -> bool:
    try:
        # A FIFO named python3 in a PATH folder would block open() for good.
        return safeio.read_head(path, 2) == b"#!"
    except (OSError, ValueError):
        return True


def find(ctx: Context, known: set[str]) -> Iterator[Found]:
    seen: set[str] = set()
    for folder in ctx.env.get("PATH", "").split(os.pathsep):
        if not folder:
            continue
        try:
            names = sorted(n for n in os.listdir(folder) if _PYTHON_RE.match(n))
        except OSError:
            continue
        parent = os.path.dirname(os.path.abspath(folder))
        if is_env_dir(parent):
            continue  # an environment's bin/: its own locator reports it
        for name in names:
            path = os.path.join(folder, name)
            real = os.path.realpath(path)
            if real in seen or not os.access(real, os.X_OK) or os.path.isdir(real):
                continue
            seen.add(real)
            if _is_script(real):
                continue
            prefix = os.path.dirname(os.path.dirname(real))
            if prefix in known or is_env_dir(prefix):
                continue
            # Named "python": the kind says "system", the version tells two apart.
            yield Found(Path(prefix), KIND, name="python", python=Path(real))
    if ctx.platform == "darwin":
        for install, python in macos_installs(ctx):
            real = os.path.realpath(python)
            if real in seen or os.path.realpath(install) in known or not os.path.exists(real):
                continue
            seen.add(real)
            yield Found(Path(os.path.dirname(os.path.dirname(real))), KIND, name="python", python=Path(real))


def _listdir(path: Path) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def _framework_versions(framework: Path) -> Iterator[tuple[Path, Path]]:
    """(prefix, interpreter) of each ``Versions/X.Y`` of a framework (not the ``Current`` link)."""
    versions = framework / "Versions"
    for minor in _listdir(versions):
        prefix = versions / minor
        if not _MINOR_DIR_RE.match(minor) or prefix.is_symlink():
            continue
        for name in (f"python{minor}", f"python{minor}t"):
            if os.path.lexists(prefix / "bin" / name):
                yield prefix, prefix / "bin" / name
                break


def macos_installs(ctx: Context) -> Iterator[tuple[Path, Path]]:
    """(prefix, interpreter) of Homebrew's and python.org's Pythons, under the context's system root."""
    for brew in _BREWS:
        cellar = ctx.system_path(brew) / "Cellar"
        for formula in _listdir(cellar):
            if formula != "python" and not formula.startswith("python@"):
                continue
            for version in _listdir(cellar / formula):
                yield from _framework_versions(cellar / formula / version / "Frameworks" / "Python.framework")
    for framework in _FRAMEWORKS:
        yield from _framework_versions(ctx.system_path(framework))


def watch(ctx: Context) -> list[Path]:
    """The Cellar folders and frameworks: a `brew install python@3.13` adds a folder there."""
    if ctx.platform != "darwin":
        return []
    folders = [ctx.system_path(f) / "Versions" for f in _FRAMEWORKS]
    for brew in _BREWS:
        cellar = ctx.system_path(brew) / "Cellar"
        folders += [cellar / f for f in _listdir(cellar) if f == "python" or f.startswith("python@")]
    return folders
