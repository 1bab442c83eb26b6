"""pdm: ``<venv.location or ~/.local/share/pdm/venvs>/<project>-<hash>-<python>``.

pdm's default is an in-project ``.venv`` (named by the venv locator from the
project's pdm.lock / ``[tool.pdm]``); ``pdm venv create`` without
in-project puts envs in its data dir.
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

KIND = "pdm"
_NAME_RE = re.compile(r"^(?P<name>.+)-(?P<hash>[A-Za-z0-9_-]{8})-(?P<py>[\w.]+)$")


def venvs_dir(ctx: Context) -> Path:
    location = ctx.path_var("PDM_VENV_LOCATION")
    if location is not None:
        return location
    config_file = ctx.path_var("PDM_CONFIG_FILE") or ctx.user_config_dir("pdm") / "config.toml"
    config: dict[str, Any] = load_toml(config_file) or {}
    venv = config.get("venv")
    if isinstance(venv, dict) and isinstance(venv.get("location"), str):
        return Path(venv["location"]).expanduser()
    return ctx.user_data_dir("pdm") / "venvs"


def find(ctx: Context, scan: ProjectScan) -> Iterator[Found]:
    by_name: dict[str, Path] = {}
    for project in scan.projects:
        by_name.setdefault(project.path.name, project.path)
    for prefix in iter_env_dirs(venvs_dir(ctx)):
        m = _NAME_RE.match(prefix.name)
        name = m.group("name") if m else prefix.name
        yield Found(prefix, KIND, name=name, project=by_name.get(name) if m else None)
