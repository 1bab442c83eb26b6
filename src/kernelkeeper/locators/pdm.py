"""pdm: ``<venv.location or ~/.local/share/pdm/venvs>/<project dir>-<hash>-<X.Y>``.

The hash is ``urlsafe_b64(md5(project root as posix))[:8]`` and may itself
hold ``-``; it links the env to a project found under the scanned roots.

pdm's default is an in-project ``.venv`` (named by the venv locator from the
project's pdm.lock / ``[tool.pdm]``); ``pdm venv create`` without
in-project puts envs in its data dir.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..config import load_toml
from ..context import Context
from ..environments import Found
from ..projects import ProjectScan, env_dirs

KIND = "pdm"
_NAME_RE = re.compile(r"^(?P<name>.+)-(?P<hash>[A-Za-z0-9_-]{8})-(?P<py>\d+\.\d+)$")


def config_file(ctx: Context) -> Path:
    return ctx.path_var("PDM_CONFIG_FILE") or ctx.user_config_dir("pdm") / "config.toml"


def venvs_dir(ctx: Context) -> Path:
    location = ctx.path_var("PDM_VENV_LOCATION")
    if location is not None:
        return location
    config: dict[str, Any] = load_toml(config_file(ctx)) or {}
    venv = config.get("venv")
    if isinstance(venv, dict) and isinstance(venv.get("location"), str):
        return ctx.expanduser(venv["location"])
    return ctx.user_data_dir("pdm") / "venvs"


def pdm_hash(project: Path) -> str:
    return _md5_8(project.as_posix())


def _md5_8(text: str) -> str:
    digest = hashlib.md5(text.encode(), usedforsecurity=False).digest()
    return base64.urlsafe_b64encode(digest).decode()[:8]


def find(ctx: Context, scan: ProjectScan) -> Iterator[Found]:
    prefixes = env_dirs(str(venvs_dir(ctx)), scan)
    if not prefixes:
        return
    # An env is named after its project's folder: only projects of those names need their hash
    # (of Path.as_posix(), from the folder's string).
    wanted = {m.group("name") for m in map(_NAME_RE.match, map(os.path.basename, prefixes)) if m}
    by_key = {f"{p.name}-{_md5_8(p.folder.replace(os.sep, '/'))}": p for p in scan.projects if p.name in wanted}
    for prefix in prefixes:
        folder = os.path.basename(prefix)
        m = _NAME_RE.match(folder)
        name = m.group("name") if m else folder
        project = by_key.get(f"{name}-{m.group('hash')}") if m else None
        yield Found(prefix, KIND, name=name, project=project.path if project is not None else None)


def watch(ctx: Context) -> list[Path]:
    return [venvs_dir(ctx), config_file(ctx)]  # `pdm config venv.location` moves the envs
