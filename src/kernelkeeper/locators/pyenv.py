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
from ..projects import ProjectScan, iter_env_dirs

KIND = "pyenv"


def root(ctx: Context) -> Path:
    return ctx.path_var("PYENV_ROOT") or ctx.home / ".pyenv"


def find(ctx: Context, scan: ProjectScan) -> Iterator[Found]:
    versions = root(ctx) / "versions"
    try:
        entries = sorted(os.scandir(versions), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        prefix = Path(entry.path)
        try:
            if not entry.is_dir():
                continue
        except OSError:
            continue
        if entry.is_symlink():
            continue  # pyenv-virtualenv's alias of versions/X/envs/<name>: found there
        if (prefix / "pyvenv.cfg").is_file():
            yield Found(prefix, "pyenv-virtualenv", name=prefix.name)
        elif (prefix / "conda-meta").is_dir():
            yield Found(prefix, "conda", name=prefix.name)
        elif os.path.isdir(prefix / "bin"):
            yield Found(prefix, KIND, name=prefix.name)
        for env in iter_env_dirs(prefix / "envs"):
            yield Found(env, "pyenv-virtualenv", name=env.name)


def watch(ctx: Context) -> list[Path]:
    versions = root(ctx) / "versions"
    try:
        return [versions, *(versions / n / "envs" for n in os.listdir(versions))]
    except OSError:
        return [versions]
