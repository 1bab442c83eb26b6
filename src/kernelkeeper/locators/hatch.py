"""hatch: ``<data dir>/env/virtual/<project>/<hash>/<env>``, or where ``dirs.env`` says.

The hash is hatch's digest of the project folder (case-folded on macOS), which
links the env to a project found under the scanned roots. The default
environment's folder is named after the project.

hatch's own ``config.toml`` (``HATCH_CONFIG``, else the user config folder) may
move them: ``[dirs] data`` moves the data dir (``HATCH_DATA_DIR`` wins), and
``[dirs.env] virtual`` names the folder of envs. A relative one is taken inside
each project, flat: ``<project>/.hatch/<env>``; an absolute one keeps the
``<project>/<hash>/<env>`` layout under it. (hatch 1.18 reads ``dirs.env`` from
that file only; the same table in a project's pyproject.toml or hatch.toml
changes nothing, so it is not read.)
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .. import safeio
from ..context import Context
from ..environments import Found
from ..projects import Project, ProjectScan, env_dirs, iter_env_dirs

KIND = "hatch"


def _config(ctx: Context) -> dict[str, Any]:
    path = ctx.path_var("HATCH_CONFIG") or ctx.user_config_dir("hatch") / "config.toml"
    try:
        return safeio.load_toml(path)
    except (OSError, ValueError):
        return {}


def _dirs(ctx: Context) -> dict[str, Any]:
    dirs = _config(ctx).get("dirs")
    return dirs if isinstance(dirs, dict) else {}


def data_dir(ctx: Context, dirs: dict[str, Any] | None = None) -> Path:
    explicit = ctx.path_var("HATCH_DATA_DIR")
    if explicit is not None:
        return explicit
    data = (_dirs(ctx) if dirs is None else dirs).get("data")
    return ctx.expand(data) if isinstance(data, str) and data else ctx.user_data_dir("hatch")


def virtual_dirs(ctx: Context) -> tuple[list[Path], str | None]:
    """(folders of ``<project>/<hash>/<env>`` trees, the in-project folder name if configured)."""
    dirs = _dirs(ctx)
    roots = [data_dir(ctx, dirs) / "env" / "virtual"]
    env = dirs.get("env")
    configured = env.get("virtual") if isinstance(env, dict) else None
    if not isinstance(configured, str) or not configured:
        return roots, None
    path = ctx.expand(configured)
    if not path.is_absolute():
        return roots, configured
    if path != ctx.home / ".virtualenvs":  # flat there: virtualenvwrapper's folder, found as such
        roots.append(path)
    return roots, None


def hatch_id(path: Path, platform: str) -> str:
    """hatch's ``Path.id``: ``urlsafe_b64(sha256(str(path)))[:8]``, case-folded on macOS and Windows."""
    text = str(path)
    if platform in ("darwin", "win32"):
        text = text.casefold()
    return base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).decode()[:8]


def _project_name(project: Project) -> str:
    """The canonical project name hatch names the default env's folder after."""
    from packaging.utils import canonicalize_name

    name = None
    if "pyproject.toml" in project.files:
        try:
            table = safeio.load_toml(project.path / "pyproject.toml").get("project")
        except (OSError, ValueError):
            table = None
        name = table.get("name") if isinstance(table, dict) else None
    return str(canonicalize_name(name if isinstance(name, str) and name else project.path.name))


def find(ctx: Context, scan: ProjectScan) -> Iterator[Found]:
    roots, in_project = virtual_dirs(ctx)
    by_hash = scan.by_path_hash()
    if ctx.platform in ("darwin", "win32"):
        by_hash = {**by_hash, **{hatch_id(p.path, ctx.platform): p for p in scan.projects}}
    for virtual in roots:
        yield from _find_tree(str(virtual), by_hash, scan)
    if in_project is not None:
        for project in scan.projects:
            folder = project.path / in_project
            # Watched like a walked folder, there or not: `hatch env create` adds an env there and
            # nowhere else (and a new folder changes the project's, which the walk watches).
            scan.visited.append(str(folder))
            prefixes = list(iter_env_dirs(folder))
            if not prefixes:
                continue
            canonical = _project_name(project)
            for prefix in prefixes:
                name = canonical if prefix.name == canonical else f"{canonical}-{prefix.name}"
                yield Found(prefix, KIND, name=name, project=project.path)


def _listing(folder: str, scan: ProjectScan) -> list[str]:
    """The sorted names in a folder of hatch's tree; the scan learns where each resolves from the
    listing (each is a parent of environments ``env_dirs`` resolves next: no lstat per level)."""
    try:
        with os.scandir(folder) as it:
            entries = list(it)
    except OSError:
        return []
    scan.realpath.children(folder, entries)
    return sorted(entry.name for entry in entries)


def _find_tree(virtual: str, by_hash: dict[str, Project], scan: ProjectScan) -> Iterator[Found]:
    join = os.path.join
    for project_name in _listing(virtual, scan):
        if project_name.startswith("."):
            continue  # .internal and .pythons hold hatch's own tooling
        folder = join(virtual, project_name)
        for digest in _listing(folder, scan):
            project = by_hash.get(digest)
            for prefix in env_dirs(join(folder, digest), scan):
                env_name = os.path.basename(prefix)
                name = project_name if env_name in (project_name, "default") else f"{project_name}-{env_name}"
                yield Found(prefix, KIND, name=name, project=project.path if project else None)


def watch(ctx: Context) -> list[str | Path]:
    roots, _ = virtual_dirs(ctx)
    folders: list[str | Path] = [ctx.path_var("HATCH_CONFIG") or ctx.user_config_dir("hatch") / "config.toml"]
    join = os.path.join
    for virtual in map(str, roots):
        folders.append(virtual)
        try:
            for project in os.listdir(virtual):
                folder = join(virtual, project)
                folders.append(folder)
                folders += [join(folder, h) for h in os.listdir(folder)]
        except OSError:
            pass
    return folders
