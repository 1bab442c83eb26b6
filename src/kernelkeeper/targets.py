"""Which environment `add` means: a prefix, a project folder, an env name, or "here"."""

from __future__ import annotations

import os
from pathlib import Path

from .context import Context
from .discovery import Discovery
from .environments import Environment, Found, merge
from .errors import UserError
from .projects import is_env_dir


def _env_at(prefix: Path, found: Discovery, ctx: Context) -> Environment:
    real = Path(os.path.realpath(prefix))
    for env in found.environments:
        if env.prefix == real:
            return env
    # Not under any scanned root: describe it on its own.
    kind = "conda" if (real / "conda-meta").is_dir() else "venv"
    return merge([Found(real, kind)], ctx.home)


def resolve(target: str | None, found: Discovery, ctx: Context) -> Environment:
    return resolve_explained(target, found, ctx)[0]


def resolve_explained(target: str | None, found: Discovery, ctx: Context) -> tuple[Environment, str | None]:
    """The environment, and when no TARGET was given, which one was chosen and why (for the person)."""
    if target is None:
        return _here(found, ctx)
    return _resolve(target, found, ctx), None


def _resolve(target: str, found: Discovery, ctx: Context) -> Environment:
    path = Path(target).expanduser()
    if path.is_dir():
        path = path.absolute()
        if is_env_dir(str(path)):
            return _env_at(path, found, ctx)
        in_project = [e for e in found.environments if e.project is not None and e.project == path]
        if not in_project:
            for name in (".venv", "venv", "env"):
                if is_env_dir(str(path / name)):
                    return _env_at(path / name, found, ctx)
            raise UserError(
                f"{path} is neither an environment nor a project with one",
                hint="create the project's environment first (e.g. `uv venv`, `poetry install`), or pass its path",
            )
        return _pick(in_project, f"project {path}")
    named = [e for e in found.environments if e.name == target]
    if not named:
        raise UserError(
            f"no environment, folder or project named {target!r}",
            hint="`kernelkeeper envs` lists the environment names it knows",
        )
    return _pick(named, f"name {target!r}")


def _pick(candidates: list[Environment], what: str) -> Environment:
    healthy = [e for e in candidates if e.healthy] or candidates
    if len(healthy) == 1:
        return healthy[0]
    listing = "; ".join(f"{e.prefix} ({e.kind})" for e in healthy)
    raise UserError(f"{what} matches {len(healthy)} environments: {listing}", hint="pass the prefix path instead")


def _relative(path: Path, ctx: Context) -> str:
    """``../venv`` for what is near the current folder, else the path with HOME as ``~``."""
    try:
        rel = os.path.relpath(path, ctx.cwd)
    except ValueError:
        rel = str(path)
    if not rel.startswith(("../..", "/")) and len(rel) < len(str(path)):
        return rel
    try:
        return "~/" + str(path.relative_to(ctx.home))
    except ValueError:
        return str(path)


def _here(found: Discovery, ctx: Context) -> tuple[Environment, str]:
    """The environment of the project the current folder is in, else the active one; and why that one."""
    for folder in (ctx.cwd, *ctx.cwd.parents):
        mine = [e for e in found.environments if e.project == folder]
        if mine:
            env = _pick(mine, f"project {folder}")
            where = _relative(env.prefix, ctx)
            if folder == ctx.cwd:
                why = f"found {where}, the environment of this folder's project ({env.kind})"
            elif env.prefix.parent == folder:
                why = f"found {where}, the nearest environment above this folder"
            else:
                why = (
                    f"found {where}, the {env.kind} environment of {_relative(folder, ctx)}, "
                    "the nearest project above this folder"
                )
            return env, why
    for var in ("VIRTUAL_ENV", "CONDA_PREFIX"):
        active = ctx.path_var(var)
        if active is not None and is_env_dir(str(active)):
            return _env_at(active, found, ctx), f"found {active}, the active environment (${var})"
    raise UserError(
        f"no project environment found in {ctx.cwd} or its parents, and none is active",
        hint="pass the environment: `kernelkeeper add PATH|NAME` (`kernelkeeper envs` lists them)",
    )
