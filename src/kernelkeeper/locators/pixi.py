"""pixi: ``<project>/.pixi/envs/<env>``, conda prefixes that pixi builds per project."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from ..context import Context
from ..environments import Found
from ..projects import ProjectScan

KIND = "pixi"


def find(ctx: Context, scan: ProjectScan) -> Iterator[Found]:
    for project in scan.projects:
        for prefix in project.pixi_envs:
            env = os.path.basename(prefix)
            name = project.name if env == "default" else f"{project.name}-{env}"
            yield Found(prefix, KIND, name=name, project=project.path)
            yield Found(prefix, "conda", name=name, project=project.path)


def watch(ctx: Context) -> list[Path]:
    return []  # .pixi folders are under project folders, which the walk watches
