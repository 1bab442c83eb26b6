"""conda, mamba and micromamba: any prefix with a ``conda-meta/`` folder.

Where conda keeps them: ``~/.conda/environments.txt`` (every env conda made),
``envs_dirs`` of the .condarc files, ``CONDA_ENVS_PATH``/``CONDA_ENVS_DIRS``,
the active ``CONDA_PREFIX``, and the base installs people put in the usual
places (``~/miniconda3``, ``~/miniforge3``, ``/opt/conda``, …) with their
``envs/``. Prefixes without any Python (an R-only env) are not Python
environments and are left out.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from .. import safeio
from ..context import Context
from ..environments import Found
from ..projects import ProjectScan, env_dirs, normal

KIND = "conda"
BASE_NAMES = (
    "miniconda3",
    "miniconda",
    "anaconda3",
    "anaconda",
    "miniforge3",
    "miniforge",
    "mambaforge",
    "micromamba",
    ".micromamba",
    ".local/share/mamba",
)
SYSTEM_BASES = ("/opt/conda", "/opt/miniconda3", "/opt/anaconda3", "/opt/miniforge3", "/opt/mambaforge")
# macOS: Homebrew casks (Apple silicon under /opt/homebrew, Intel under /usr/local) and the
# Anaconda .pkg installer's "just for me" folder, ~/opt/anaconda3.
MACOS_SYSTEM_BASES = (
    *(
        f"{brew}/Caskroom/{cask}/base"
        for brew in ("/opt/homebrew", "/usr/local")
        for cask in ("miniconda", "miniforge", "mambaforge", "anaconda")
    ),
    "/opt/homebrew/anaconda3",
    "/usr/local/anaconda3",
)
MACOS_BASE_NAMES = ("opt/anaconda3", "opt/miniconda3")


def _condarc_files(ctx: Context, bases: list[Path]) -> list[Path]:
    files = [ctx.system_path(p) for p in ("/etc/conda/.condarc", "/etc/conda/condarc", "/var/lib/conda/.condarc")]
    files += [base / ".condarc" for base in bases]
    files += [
        ctx.config_home() / "conda" / ".condarc",
        ctx.config_home() / "conda" / "condarc",
        ctx.home / ".config" / "conda" / ".condarc",
        ctx.home / ".conda" / ".condarc",
        ctx.home / ".conda" / "condarc",
        ctx.home / ".condarc",
        ctx.home / ".mambarc",
    ]
    explicit = ctx.path_var("CONDARC")
    if explicit is not None:
        files.append(explicit)
    return files


def parse_envs_dirs(text: str) -> list[str]:
    """The ``envs_dirs`` list of a .condarc (block or flow YAML list), without a YAML parser."""
    dirs: list[str] = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        key, sep, rest = line.partition(":")
        if not sep or key.strip() not in ("envs_dirs", "envs_path") or line[:1].isspace():
            continue
        rest = rest.split("#", 1)[0].strip()
        if rest.startswith("["):
            dirs += [_unquote(v) for v in rest.strip("[]").split(",") if v.strip()]
            continue
        for item in lines[i + 1 :]:
            stripped = item.strip()
            if not stripped or stripped.startswith("#"):
                continue
            if not stripped.startswith("- "):
                break
            dirs.append(_unquote(stripped[2:].split(" #", 1)[0]))
    return dirs


def _unquote(value: str) -> str:
    return value.strip().strip("'\"")


def base_prefixes(ctx: Context) -> list[Path]:
    bases = [ctx.home / name for name in BASE_NAMES] + [ctx.system_path(p) for p in SYSTEM_BASES]
    if ctx.platform == "darwin":
        bases += [ctx.home / name for name in MACOS_BASE_NAMES] + [ctx.system_path(p) for p in MACOS_SYSTEM_BASES]
    for var in ("MAMBA_ROOT_PREFIX", "CONDA_ROOT"):
        path = ctx.path_var(var)
        if path is not None:
            bases.append(path)
    conda_exe = ctx.path_var("CONDA_EXE") or ctx.path_var("MAMBA_EXE")
    if conda_exe is not None:
        bases.append(conda_exe.parent.parent)
    return [b for b in dict.fromkeys(bases) if os.path.isdir(b / "conda-meta") or os.path.isdir(b / "envs")]


def _has_python(prefix: str | Path, meta: list[str]) -> bool:
    """Whether a conda prefix holds Python; ``meta``: the names in its conda-meta/.

    Python's own record there answers without a stat (the interpreter is looked for next).
    """
    if any(n.startswith("python-") for n in meta):
        return True
    join = os.path.join
    return os.path.lexists(join(prefix, "bin", "python")) or os.path.lexists(join(prefix, "python.exe"))


def envs_dirs(ctx: Context, bases: list[Path]) -> list[Path]:
    """The folders of envs named by ``CONDA_ENVS_PATH``/``CONDA_ENVS_DIRS`` and the .condarc files."""
    env_dirs: list[Path] = []
    for var in ("CONDA_ENVS_PATH", "CONDA_ENVS_DIRS"):
        value = ctx.env.get(var)
        if value:
            env_dirs += [ctx.expand(p) for p in value.split(os.pathsep) if p]
    for rc in _condarc_files(ctx, bases):
        try:
            text = safeio.read_text(rc)  # a FIFO at ~/.condarc would block open() for good
        except (OSError, ValueError):
            continue
        # conda expands $VAR, ${VAR} and ~ in envs_dirs (``expand`` in conda's config).
        # A NUL byte makes every os call on the path raise ValueError: such an entry names no folder.
        env_dirs += [ctx.expand(d) for d in parse_envs_dirs(text) if "\0" not in d]
    return env_dirs


def candidates(
    ctx: Context, scan: ProjectScan | None = None, bases: list[Path] | None = None
) -> Iterator[tuple[str | Path, str | None]]:
    """(prefix, name) pairs; name None means "the folder's name"."""
    if bases is None:
        bases = base_prefixes(ctx)
    for base in bases:
        yield base, "base"
        yield from ((p, None) for p in env_dirs(str(base / "envs"), scan))
    yield from ((p, None) for p in env_dirs(str(ctx.home / ".conda" / "envs"), scan))
    for folder in envs_dirs(ctx, bases):
        yield from ((p, None) for p in env_dirs(str(folder), scan))
    try:
        listed = safeio.read_text(ctx.home / ".conda" / "environments.txt")
    except (OSError, ValueError):
        listed = ""
    for line in listed.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "\0" not in line:
            yield normal(line), None
    active = ctx.path_var("CONDA_PREFIX")
    if active is not None:
        yield active, ctx.env.get("CONDA_DEFAULT_ENV") or None


def find(ctx: Context, scan: ProjectScan) -> Iterator[Found]:
    bases = base_prefixes(ctx)
    base_set = {str(b) for b in bases}
    conda_meta = scan.cfgs.conda_meta  # one listing a prefix, shared with env_dirs and describe
    # The envs folders and environments.txt name the same prefixes: each is looked at once.
    python: dict[str, bool] = {}
    for prefix, name in candidates(ctx, scan, bases):
        key = str(prefix)
        has = python.get(key)
        if has is None:
            meta = conda_meta(key)
            has = python[key] = meta is not None and _has_python(key, meta)
        if not has:
            continue
        if name is None and key in base_set:
            name = "base"
        yield Found(prefix, KIND, name=name)
    for project in scan.projects:
        for prefix in project.envs:
            meta = conda_meta(prefix)
            if meta is not None and _has_python(prefix, meta):
                yield Found(prefix, KIND, name=project.name, project=project.path)


def watch(ctx: Context) -> list[Path]:
    bases = base_prefixes(ctx)
    folders = [*bases, *(b / "envs" for b in bases), ctx.home / ".conda" / "envs"]
    folders += [ctx.home / ".conda" / "environments.txt", *_condarc_files(ctx, bases)]
    return folders + envs_dirs(ctx, bases)
