"""pipenv: ``<WORKON_HOME or ~/.local/share/virtualenvs>/<dir>-<hash>``.

The env's ``.project`` file holds the project folder. In-project envs
(``PIPENV_VENV_IN_PROJECT``) are named by the venv locator from the Pipfile.

pipenv reads ``WORKON_HOME`` only when it makes or looks for an env, so a
person who set it later (for virtualenvwrapper) keeps older pipenv envs in
``~/.local/share/virtualenvs``: both folders are searched. WORKON_HOME is
virtualenvwrapper's folder too; there an env is pipenv's only when its name is
the one pipenv would give its project (``virtualenv_name`` in pipenv's
``utils/venv_locator.py``): ``<dir>-<urlsafe_b64(sha256(<dir>/Pipfile)[:6])>``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

from .. import safeio
from ..context import Context
from ..environments import Found
from ..projects import ProjectScan, env_dirs

KIND = "pipenv"
_NAME_RE = re.compile(r"^.+-[A-Za-z0-9_-]{8}(?:-[^-]+)?$")
_HASH_RE = re.compile(r"^-[A-Za-z0-9_-]{8}(?:-[^-]+)?$")
_UNSAFE_RE = re.compile(r'[ &$`!*@"()\[\]\\\r\n\t]')


def workon_home(ctx: Context) -> Path:
    return ctx.path_var("WORKON_HOME") or default_home(ctx)


def default_home(ctx: Context) -> Path:
    """Where pipenv puts envs when WORKON_HOME is unset (and where it put them before it was set)."""
    return ctx.data_home() / "virtualenvs"


def homes(ctx: Context) -> list[tuple[Path, bool]]:
    """(folder, shared with virtualenvwrapper) for each folder pipenv envs may be in."""
    shared = workon_home(ctx)
    default = default_home(ctx)
    if "WORKON_HOME" not in ctx.env:
        return [(default, default == ctx.home / ".virtualenvs")]
    return [(shared, True)] + ([(default, False)] if default != shared else [])


def project_of(prefix: str | Path, scan: ProjectScan | None = None) -> Path | None:
    """The folder named by an env's ``.project`` file (pipenv and virtualenvwrapper write it).

    With ``scan``, the file (there or not) joins the files the scan read, which discovery
    watches: ``setvirtualenvproject`` writes it in place, in a folder no scan lists.
    """
    path = os.path.join(prefix, ".project")
    if scan is not None:
        scan.content_files.append(path)
    try:
        text = safeio.read_text(path, 4096, errors="strict").strip()
    except (OSError, ValueError):  # a FIFO, a huge file, bytes that are not UTF-8
        return None
    return Path(text) if text and "\0" not in text else None


def env_name(project: Path | str) -> str:
    """The name pipenv gives the env of the project whose Pipfile is ``project/Pipfile``.

    ``project`` as a `Path`, or its ``str``.
    """
    folder = str(project)
    pipfile = os.path.join(folder, "Pipfile")
    digest = hashlib.sha256(pipfile.encode()).digest()[:6]
    return f"{_UNSAFE_RE.sub('_', os.path.basename(folder))[:42]}-{base64.urlsafe_b64encode(digest).decode()[:8]}"


def _named_for(prefix: str | Path, project: Path) -> bool:
    # PIPENV_PYTHON adds "-<python>" after the hash.
    name = env_name(project)
    folder = os.path.basename(prefix)
    return folder == name or folder.startswith(name + "-")


def pipfile_projects(scan: ProjectScan) -> dict[str, Path]:
    """The scanned Pipfile projects by the env name pipenv would give them."""
    return {env_name(p.folder): p.path for p in scan.projects if "Pipfile" in p.files}


def pipenv_project(prefix: str | Path, project: Path | None, by_name: dict[str, Path]) -> Path | None:
    """The project of an env in a folder pipenv shares with virtualenvwrapper, if pipenv made it.

    None when nothing pipenv writes says the env is pipenv's: a virtualenvwrapper env
    named ``alpha-saffron3`` merely looks like ``<dir>-<hash>``, and a ``.project`` file
    alone is no proof (``mkvirtualenv -a`` writes one too).
    """
    folder = os.path.basename(prefix)
    if project is not None:
        if _named_for(prefix, project):
            return project
        # The hash may be of another spelling of the path (PIPENV_PIPFILE, a recased folder):
        # the .project file still counts when the name is its folder's and the folder is a
        # pipenv project, or gone.
        clean = _UNSAFE_RE.sub("_", project.name)[:42]
        shaped = folder.startswith(clean) and _HASH_RE.match(folder[len(clean) :])
        if shaped and ((project / "Pipfile").exists() or not os.path.lexists(project)):
            return project
    if not _NAME_RE.match(folder):
        return None
    # Without a .project file: the name's hash is that of a Pipfile found under the roots.
    return by_name.get(folder) or by_name.get(folder.rsplit("-", 1)[0])


def is_pipenv_env(prefix: str | Path, project: Path | None, by_name: dict[str, Path]) -> bool:
    return pipenv_project(prefix, project, by_name) is not None


def find(ctx: Context, scan: ProjectScan) -> Iterator[Found]:
    by_name: dict[str, Path] | None = None
    for home, shared in homes(ctx):
        for prefix in env_dirs(str(home), scan):
            project = project_of(prefix, scan)
            if shared:
                if by_name is None:
                    by_name = pipfile_projects(scan)
                project = pipenv_project(prefix, project, by_name)
                if project is None:
                    continue
            name = project.name if project else os.path.basename(prefix).rsplit("-", 1)[0]
            yield Found(prefix, KIND, name=name, project=project)


def watch(ctx: Context) -> list[Path]:
    return [home for home, _ in homes(ctx)]
