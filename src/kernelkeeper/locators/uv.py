"""uv: ``UV_PROJECT_ENVIRONMENT`` and the interpreters uv installs.

uv's own virtualenvs are recognised by the ``uv = …`` line of pyvenv.cfg
wherever the venv locator meets them; this locator adds what only uv knows.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

from ..context import Context
from ..environments import Found
from ..projects import ProjectScan, is_env_dir

KIND = "uv"
# cpython-3.12.1-linux-x86_64-gnu, pypy-3.10.14-linux-x86_64-gnu
_MANAGED_RE = re.compile(r"^(cpython|pypy|graalpy)-(\d+\.\d+\.\d+)\S*-")


def python_install_dir(ctx: Context) -> Path:
    # uv keeps XDG folders on macOS too (~/.local/share/uv), not ~/Library.
    data = ctx.user_data_dir("uv") if ctx.platform == "win32" else ctx.data_home() / "uv"
    return ctx.path_var("UV_PYTHON_INSTALL_DIR") or data / "python"


def find(ctx: Context, scan: ProjectScan) -> Iterator[Found]:
    from .venv import base_kind

    location = ctx.env.get("UV_PROJECT_ENVIRONMENT")
    if location:
        target = ctx.path_var("UV_PROJECT_ENVIRONMENT")
        assert target is not None
        if target.is_absolute():
            if base_kind(target, scan.cfgs):
                yield Found(target, KIND)
        else:
            for project in scan.projects:
                prefix = project.path / target
                if project.uses("uv") and base_kind(prefix, scan.cfgs):
                    yield Found(prefix, KIND, name=project.path.name, project=project.path)
    managed = python_install_dir(ctx)
    try:
        names = sorted(os.listdir(managed))
    except OSError:
        return
    for name in names:
        m = _MANAGED_RE.match(name)
        prefix = managed / name
        if m and prefix.is_dir() and not is_env_dir(str(prefix)):
            yield Found(prefix, "uv-python", name=f"{m.group(1)}-{m.group(2)}")


def watch(ctx: Context) -> list[Path]:
    return [python_install_dir(ctx)]
