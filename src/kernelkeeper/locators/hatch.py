"""hatch: ``<HATCH_DATA_DIR or ~/.local/share/hatch>/env/virtual/<project>/<hash>/<env>``.

The hash is hatch's digest of the project folder, which links the env to a
project found under the scanned roots. The default environment's folder is
named after the project.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from ..context import Context
from ..environments import Found
from ..projects import ProjectScan, iter_env_dirs

KIND = "hatch"


def data_dir(ctx: Context) -> Path:
    return ctx.path_var("HATCH_DATA_DIR") or ctx.user_data_dir("hatch")


def find(ctx: Context, scan: ProjectScan) -> Iterator[Found]:
    virtual = data_dir(ctx) / "env" / "virtual"
    by_hash = scan.by_path_hash()
    try:
        projects = sorted(os.listdir(virtual))
    except OSError:
        return
    for project_name in projects:
        if project_name.startswith("."):
            continue  # .internal and .pythons hold hatch's own tooling
        try:
            hashes = sorted(os.listdir(virtual / project_name))
        except OSError:
            continue
        for digest in hashes:
            project = by_hash.get(digest)
            for prefix in iter_env_dirs(virtual / project_name / digest):
                env_name = prefix.name
                name = project_name if env_name in (project_name, "default") else f"{project_name}-{env_name}"
                yield Found(prefix, KIND, name=name, project=project.path if project else None)


def watch(ctx: Context) -> list[Path]:
    virtual = data_dir(ctx) / "env" / "virtual"
    folders = [virtual]
    try:
        for project in os.listdir(virtual):
            folders.append(virtual / project)
            folders += [virtual / project / h for h in os.listdir(virtual / project)]
    except OSError:
        pass
    return folders
