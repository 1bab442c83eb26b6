"""poetry: ``<virtualenvs.path>/<name>-<hash>-pyX.Y``.

virtualenvs.path comes from ``POETRY_VIRTUALENVS_PATH``, then poetry's
config.toml (``virtualenvs.path``, ``cache-dir``), then
``<POETRY_CACHE_DIR or ~/.cache/pypoetry>/virtualenvs``. The hash is
``urlsafe_b64(sha256(realpath(project)))[:8]``, which links an env to a
project found under the scanned roots. In-project ``.venv`` envs of poetry
projects are named by the venv locator from the project's files.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..config import load_toml
from ..context import Context
from ..environments import Found
from ..projects import ProjectScan, iter_env_dirs

KIND = "poetry"
_NAME_RE = re.compile(r"^(?P<name>.+)-(?P<hash>[A-Za-z0-9_-]{8})-py(?P<py>\d+\.\d+)$")


def config_dir(ctx: Context) -> Path:
    return ctx.path_var("POETRY_CONFIG_DIR") or ctx.user_config_dir("pypoetry")


def virtualenvs_path(ctx: Context) -> Path:
    path = ctx.path_var("POETRY_VIRTUALENVS_PATH")
    if path is not None:
        return path
    config: dict[str, Any] = load_toml(config_dir(ctx) / "config.toml") or {}
    cache_dir = ctx.path_var("POETRY_CACHE_DIR")
    if cache_dir is None and isinstance(config.get("cache-dir"), str):
        cache_dir = Path(config["cache-dir"]).expanduser()
    cache_dir = cache_dir or ctx.user_cache_dir("pypoetry")
    venvs = config.get("virtualenvs")
    if isinstance(venvs, dict) and isinstance(venvs.get("path"), str):
        configured = venvs["path"].replace("{cache-dir}", str(cache_dir))
        return Path(configured).expanduser()
    return cache_dir / "virtualenvs"


def find(ctx: Context, scan: ProjectScan) -> Iterator[Found]:
    by_hash = scan.by_path_hash()
    for prefix in iter_env_dirs(virtualenvs_path(ctx)):
        m = _NAME_RE.match(prefix.name)
        if not m:
            yield Found(prefix, KIND)
            continue
        project = by_hash.get(m.group("hash"))
        yield Found(prefix, KIND, name=m.group("name"), project=project.path if project else None)


def watch(ctx: Context) -> list[Path]:
    return [virtualenvs_path(ctx), config_dir(ctx) / "config.toml"]
