"""The interpreters on PATH that belong to no environment: the system Pythons.

Runs after every other locator, so a PATH entry inside a known environment
(an activated venv, pyenv's own builds) is not reported twice. pyenv's
shims are shell scripts, not interpreters, and are skipped.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

from .. import safeio
from ..context import Context
from ..environments import Found
from ..projects import is_env_dir

KIND = "system"
_PYTHON_RE = re.compile(r"^python(\d+(\.\d+)?)?$")


def _is_script(path: str) -> bool:
    try:
        # A FIFO named python3 in a PATH folder would block open() for good.
        return safeio.read_head(path, 2) == b"#!"
    except (OSError, ValueError):
        return True


def find(ctx: Context, known: set[str]) -> Iterator[Found]:
    seen: set[str] = set()
    for folder in ctx.env.get("PATH", "").split(os.pathsep):
        if not folder:
            continue
        try:
            names = sorted(n for n in os.listdir(folder) if _PYTHON_RE.match(n))
        except OSError:
            continue
        parent = os.path.dirname(os.path.abspath(folder))
        if is_env_dir(parent):
            continue  # an environment's bin/: its own locator reports it
        for name in names:
            path = os.path.join(folder, name)
            real = os.path.realpath(path)
            if real in seen or not os.access(real, os.X_OK) or os.path.isdir(real):
                continue
            seen.add(real)
            if _is_script(real):
                continue
            prefix = os.path.dirname(os.path.dirname(real))
            if prefix in known or is_env_dir(prefix):
                continue
            # Named "python": the kind says "system", the version tells two apart.
            yield Found(Path(prefix), KIND, name="python", python=Path(real))
