"""virtualenvwrapper: ``<WORKON_HOME or ~/.virtualenvs>/<name>``.

When WORKON_HOME is shared with pipenv, the envs whose name pipenv's own
hash proves pipenv's (`pipenv.pipenv_project`) are left to the pipenv locator.
``setvirtualenvproject`` writes ``.project``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from ..context import Context
from ..environments import Found
from ..projects import ProjectScan, env_dirs
from . import pipenv
from .pipenv import is_pipenv_env, project_of

KIND = "virtualenvwrapper"


def workon_home(ctx: Context) -> Path:
    return ctx.path_var("WORKON_HOME") or ctx.home / ".virtualenvs"


def find(ctx: Context, scan: ProjectScan) -> Iterator[Found]:
    home = workon_home(ctx)
    shared = any(home == h and is_shared for h, is_shared in pipenv.homes(ctx))
    by_name = pipenv.pipfile_projects(scan) if shared else {}
    for prefix in env_dirs(str(home), scan):
        project = project_of(prefix, scan)
        if not (shared and is_pipenv_env(prefix, project, by_name)):
            yield Found(prefix, KIND, name=os.path.basename(prefix), project=project)


def watch(ctx: Context) -> list[Path]:
    return [workon_home(ctx)]
