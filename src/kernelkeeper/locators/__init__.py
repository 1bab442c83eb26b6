"""One locator per environment kind, most specific first.

A locator is a module with ``KIND`` and ``find(ctx, scan) -> Iterable[Found]``.
It reads files only, and a tool that is not installed simply finds nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

from ..context import Context
from ..environments import Found
from ..projects import ProjectScan
from . import conda, hatch, pdm, pipenv, pixi, poetry, pyenv, uv, venv, virtualenvwrapper


class Locator(Protocol):
    KIND: str

    def find(self, ctx: Context, scan: ProjectScan) -> Iterable[Found]: ...

    def watch(self, ctx: Context) -> Sequence[str | Path]:
        """The folders and files whose change means the locator could find something else."""
        ...


LOCATORS: tuple[Locator, ...] = (
    uv,
    poetry,
    pipenv,
    hatch,
    pdm,
    pixi,
    conda,
    pyenv,
    virtualenvwrapper,
    venv,
)
