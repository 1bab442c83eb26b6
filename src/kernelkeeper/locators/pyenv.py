"""pyenv: ``<PYENV_ROOT or ~/.pyenv>/versions/*``.

A folder with pyvenv.cfg is a pyenv-virtualenv env (which lives in
``versions/X.Y.Z/envs/<name>`` with a symlink ``versions/<name>`` to it);
a folder without is a Python that pyenv built. conda installs made through
pyenv (``versions/miniconda3-latest``) are left to the conda locator.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from ..context import Context
from ..environments import Found
from ..projects import ProjectScan, env_dirs

KIND = "pyenv"


def root(ctx: Context) -> Path:
    return ctx.path_var("PYENV_ROOT") or ctx.home / ".pyenv"


def find(ctx: Context, scan: ProjectScan) -> Iterator[Found]:
    versions = root(ctx) / "versions"
    try:
        entries = sorted(os.scandir(versions), key=lambda e: e.name)
    except OSError:
        return
    join = os.path.join
    for entry in entries:
        prefix, name = entry.path, entry.name
        try:
            if not entry.is_dir():
                continue
        except OSError:
            continue
        if entry.is_symlink():
            continue  # pyenv-virtualenv's alias of versions/X/envs/<name>: found there
        scan.realpath.child(str(versions), entry)
        if os.path.isfile(join(prefix, "pyvenv.cfg")):
            yield Found(prefix, "pyenv-virtualenv", name=name)
        elif os.path.isdir(join(prefix, "conda-meta")):
            yield Found(prefix, "conda", name=name)
        elif os.path.isdir(join(prefix, "bin")):
            yield Found(prefix, KIND, name=name)
        for env in env_dirs(join(prefix, "envs"), scan):
            yield Found(env, "pyenv-virtualenv", name=os.path.basename(env))


def watch(ctx: Context) -> list[str | Path]:
    versions = root(ctx) / "versions"
    try:
        return [versions, *(os.path.join(versions, n, "envs") for n in os.listdir(versions))]
    except OSError:
        return [versions]
