"""venv and virtualenv: any folder with a pyvenv.cfg that discovery meets.

In-project ``.venv``/``venv``/``env`` folders, loose environments under the
scanned roots, the active ``VIRTUAL_ENV``, and folders named in the config.
The kind comes from pyvenv.cfg: ``uv = …`` → uv, ``virtualenv = …`` →
virtualenv, else venv. The tool that manages a project's in-project env
(poetry, pdm, pipenv, uv) is added from the project's own files.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

from ..context import Context
from ..environments import Found, cfg_kind, read_pyvenv_cfg
from ..projects import ProjectScan, env_dirs, is_env_dir, is_legacy_virtualenv, iter_env_dirs

KIND = "venv"
# Folders people keep environments in by hand (`python -m venv ~/venvs/x`).
ENV_FOLDERS_IN_HOME = ("venvs", ".venvs", "envs", "virtualenvs", ".local/venvs")
_PROJECT_TOOLS = ("poetry", "pdm", "uv", "pipenv", "hatch")


def base_kind(prefix: str | Path, cfgs: Callable[[str | Path], dict[str, str] | None] = read_pyvenv_cfg) -> str | None:
    """uv, virtualenv or venv, from the pyvenv.cfg the creating tool wrote (virtualenv before 20: none)."""
    return cfg_kind(cfgs(prefix)) or ("virtualenv" if is_legacy_virtualenv(prefix) else None)


def find(ctx: Context, scan: ProjectScan) -> Iterator[Found]:
    for project in scan.projects:
        for prefix in project.envs:
            kind = base_kind(prefix, scan.cfgs)
            if kind is None:
                continue  # a conda prefix in .venv; the conda locator has it
            name, path = project.name, project.path
            yield Found(prefix, kind, name=name, project=path)
            for tool in _PROJECT_TOOLS:
                if tool != kind and project.uses(tool):
                    yield Found(prefix, tool, name=name, project=path)
    for prefix in scan.loose_envs:
        kind = base_kind(prefix, scan.cfgs)
        if kind is not None:
            yield Found(prefix, kind)
    candidates: list[str | Path] = []
    for folder in ENV_FOLDERS_IN_HOME:
        candidates += env_dirs(str(ctx.home / folder), scan)
    for path in ctx.extra_paths:  # named in the config: an env, or a folder of envs
        candidates += [path] if is_env_dir(str(path)) else list(iter_env_dirs(path))
    active = ctx.path_var("VIRTUAL_ENV")
    if active is not None:
        candidates.append(active)
    for candidate in candidates:
        kind = base_kind(candidate, scan.cfgs) or (
            "conda" if os.path.isdir(os.path.join(candidate, "conda-meta")) else None
        )
        if kind is not None:
            yield Found(candidate, kind)


def watch(ctx: Context) -> list[Path]:
    return [*(ctx.home / f for f in ENV_FOLDERS_IN_HOME), *ctx.extra_paths]
