"""poetry: ``<virtualenvs.path>/<name>-<hash>-pyX.Y``.

virtualenvs.path comes from ``POETRY_VIRTUALENVS_PATH``, then poetry's
config.toml (``virtualenvs.path``, ``cache-dir``), then
``<POETRY_CACHE_DIR or ~/.cache/pypoetry>/virtualenvs``. The hash is
``urlsafe_b64(sha256(realpath(project)))[:8]``, which links an env to a
project found under the scanned roots. A project's own ``poetry.toml`` may
set ``virtualenvs.path`` too (``{cache-dir}`` is poetry's cache folder). In-project ``.venv`` envs of poetry
projects are named by the venv locator from the project's files.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .. import safeio
from ..config import load_toml
from ..context import Context
from ..environments import Found
from ..projects import ProjectScan, env_dirs

KIND = "poetry"
_NAME_RE = re.compile(r"^(?P<name>.+)-(?P<hash>[A-Za-z0-9_-]{8})-py(?P<py>\d+\.\d+)$")


def config_dir(ctx: Context) -> Path:
    return ctx.path_var("POETRY_CONFIG_DIR") or ctx.user_config_dir("pypoetry")


def _cache_dir(ctx: Context, config: dict[str, Any]) -> Path:
    cache_dir = ctx.path_var("POETRY_CACHE_DIR")
    if cache_dir is None and isinstance(config.get("cache-dir"), str):
        cache_dir = ctx.expanduser(config["cache-dir"])
    return cache_dir or ctx.user_cache_dir("pypoetry")


def _configured_path(ctx: Context, config: dict[str, Any], cache_dir: Path) -> Path | None:
    """``virtualenvs.path`` of a config file, its ``{cache-dir}`` placeholder filled in."""
    venvs = config.get("virtualenvs")
    if isinstance(venvs, dict) and isinstance(venvs.get("path"), str):
        # Only this placeholder, and by replacement: user data never goes through str.format.
        return ctx.expanduser(venvs["path"].replace("{cache-dir}", str(cache_dir)))
    return None


def virtualenvs_path(ctx: Context) -> Path:
    path = ctx.path_var("POETRY_VIRTUALENVS_PATH")
    if path is not None:
        return path
    config: dict[str, Any] = load_toml(config_dir(ctx) / "config.toml") or {}
    cache_dir = _cache_dir(ctx, config)
    return _configured_path(ctx, config, cache_dir) or cache_dir / "virtualenvs"


def project_virtualenvs_paths(ctx: Context, scan: ProjectScan) -> list[tuple[Path, Path]]:
    """(project, folder of its envs) for the projects whose own poetry.toml moves them.

    poetry reads a project's ``poetry.toml`` over its config.toml (the variables win
    over both); a relative ``virtualenvs.path`` is taken from the project folder.
    """
    if ctx.path_var("POETRY_VIRTUALENVS_PATH") is not None:
        return []
    out: list[tuple[Path, Path]] = []
    global_config: dict[str, Any] | None = None
    for project in scan.projects:
        if "poetry.toml" not in project.files:
            continue
        try:
            local = safeio.load_toml(project.path / "poetry.toml")
        except (OSError, ValueError):
            continue
        if global_config is None:
            global_config = load_toml(config_dir(ctx) / "config.toml") or {}
        cache_dir = _cache_dir(ctx, {**global_config, **local})
        path = _configured_path(ctx, local, cache_dir)
        if path is not None:
            out.append((project.path, path if path.is_absolute() else project.path / path))
    return out


def find(ctx: Context, scan: ProjectScan) -> Iterator[Found]:
    by_hash = scan.by_path_hash()
    moved = [path for _, path in project_virtualenvs_paths(ctx, scan)]
    # Watched there or not (the folder `watch` names is the global one): `poetry install` puts
    # the project's env there and nowhere else.
    scan.visited += map(str, moved)
    for folder in dict.fromkeys([virtualenvs_path(ctx), *moved]):
        for prefix in env_dirs(str(folder), scan):
            m = _NAME_RE.match(os.path.basename(prefix))
            if not m:
                yield Found(prefix, KIND)
                continue
            project = by_hash.get(m.group("hash"))
            yield Found(prefix, KIND, name=m.group("name"), project=project.path if project else None)


def watch(ctx: Context) -> list[Path]:
    return [virtualenvs_path(ctx), config_dir(ctx) / "config.toml"]
