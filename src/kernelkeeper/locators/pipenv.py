"""pipenv: ``<WORKON_HOME or ~/.local/share/virtualenvs>/<dir>-<hash>``.

The env's ``.project`` file holds the project folder. In-project envs
(``PIPENV_VENV_IN_PROJECT``) are named by the venv locator from the Pipfile.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from .. import safeio
from ..context import Context
from ..environments import Found
from ..projects import ProjectScan, iter_env_dirs

KIND = "pipenv"
_NAME_RE = re.compile(r"^.+-[A-Za-z0-9_-]{8}$")


def workon_home(ctx: Context) -> Path:
    return ctx.path_var("WORKON_HOME") or ctx.data_home() / "virtualenvs"


def project_of(prefix: Path) -> Path | None:
    """The folder named by an env's ``.project`` file (pipenv and virtualenvwrapper write it)."""
    try:
        text = safeio.read_text(prefix / ".project", errors="strict").strip()
    except (OSError, ValueError):  # a FIFO, a huge file, bytes that are not UTF-8
        return None
    return Path(text) if text and "\0" not in text else None


def is_pipenv_env(prefix: Path, project: Path | None) -> bool:
    """pipenv names envs ``<dir>-<8-char hash>`` and its projects have a Pipfile."""
    if not _NAME_RE.match(prefix.name):
        return False
    return project is None or (project / "Pipfile").exists() or prefix.name.startswith(project.name)


def find(ctx: Context, scan: ProjectScan) -> Iterator[Found]:
    home = workon_home(ctx)
    # WORKON_HOME is virtualenvwrapper's folder too: there, claim only pipenv's names.
    shared = "WORKON_HOME" in ctx.env or home == ctx.home / ".virtualenvs"
    for prefix in iter_env_dirs(home):
        project = project_of(prefix)
        if not shared or is_pipenv_env(prefix, project):
            name = project.name if project else prefix.name.rsplit("-", 1)[0]
            yield Found(prefix, KIND, name=name, project=project)


def watch(ctx: Context) -> list[Path]:
    return [workon_home(ctx)]
