"""kernelkeeper's own settings, and the small TOML reading the locators share.

The user config lives at ``<user config dir>/kernelkeeper/config.toml``::

    [discovery]
    roots = ["~/research"]       # scanned besides the usual code folders
    depth = 3                    # how deep below each root to look for projects
    max_dirs = 20000             # folders walked per root before giving up
    default_roots = true         # scan ~/projects, ~/code, ~/src, ...
    paths = ["/opt/envs/shared"] # environments (or folders of them) named outright

    [sync]                       # which environments `sync` gives a kernel
    include_kinds = []           # only these kinds (empty: all)
    exclude_kinds = ["system"]
    include_names = []           # globs on the environment's name
    exclude_names = ["scratch*"]
    exclude_paths = ["/tmp/*"]   # globs on the prefix

    [kernels]                    # what `add` and `sync` write
    display_name_format = "{name} ({kind} · {minor})"   # fields: name, kind, minor, version, project
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import safeio
from .errors import UserError
from .kernel import DISPLAY_FORMAT
from .plan import Filters


def load_toml(path: Path, *, strict: bool = False) -> dict[str, Any] | None:
    """A TOML file as a dict; None when missing. A malformed file is None, or an error if strict."""
    try:
        # safeio: regular files only (a FIFO would block), bytes that are not UTF-8 are a ValueError.
        return safeio.load_toml(path)
    except FileNotFoundError:
        return None
    except OSError as e:
        if strict:
            raise UserError(f"cannot read {path}: {safeio.why(e)}", hint="fix or remove the file") from e
        return None
    except ValueError as e:
        if strict:
            raise UserError(str(e), hint="fix or remove the file") from e
        return None


@dataclass(frozen=True)
class DiscoveryConfig:
    roots: tuple[Path, ...] = ()
    depth: int | None = None
    max_dirs: int | None = None
    default_roots: bool = True
    paths: tuple[Path, ...] = field(default=())


@dataclass(frozen=True)
class KernelsConfig:
    display_name_format: str = DISPLAY_FORMAT


@dataclass(frozen=True)
class Config:
    discovery: DiscoveryConfig = field(default_factory=DiscoveryConfig)
    sync: Filters = field(default_factory=Filters)
    kernels: KernelsConfig = field(default_factory=KernelsConfig)


def load_config(path: Path) -> Config:
    data = load_toml(path, strict=True) or {}
    return Config(_discovery(data, path), _filters(data, path), _kernels(data, path))


def _kernels(data: dict[str, Any], path: Path) -> KernelsConfig:
    section = data.get("kernels", {})
    if not isinstance(section, dict):
        raise UserError(f"{path}: [kernels] must be a table")
    fmt = section.get("display_name_format", DISPLAY_FORMAT)
    hint = 'for example "{name} ({kind} · {minor})", or the old "Python {minor} ({name} · {kind})"'
    if not isinstance(fmt, str) or not fmt.strip():
        raise UserError(f"{path}: kernels.display_name_format must be a non-empty string", hint=hint)
    try:
        # Checked here, with every field, so a typo is one clear error rather than a traceback in sync.
        fmt.format(kind="k", name="n", minor="3.11", version="3.11.4", project="p")
    except (KeyError, IndexError, ValueError) as e:
        raise UserError(
            f"{path}: kernels.display_name_format {fmt!r} is not a format of name, kind, minor, version, project: {e}",
            hint=hint,
        ) from None
    return KernelsConfig(display_name_format=fmt)


def _filters(data: dict[str, Any], path: Path) -> Filters:
    section = data.get("sync", {})
    if not isinstance(section, dict):
        raise UserError(f"{path}: [sync] must be a table")

    def strings(key: str) -> tuple[str, ...]:
        value = section.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise UserError(f"{path}: sync.{key} must be a list of strings")
        return tuple(value)

    return Filters(
        include_kinds=strings("include_kinds"),
        exclude_kinds=strings("exclude_kinds"),
        include_names=strings("include_names"),
        exclude_names=strings("exclude_names"),
        exclude_paths=strings("exclude_paths"),
    )


def _discovery(data: dict[str, Any], path: Path) -> DiscoveryConfig:
    section = data.get("discovery", {})
    if not isinstance(section, dict):
        raise UserError(f"{path}: [discovery] must be a table")

    def paths(key: str) -> tuple[Path, ...]:
        value = section.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise UserError(f"{path}: discovery.{key} must be a list of folder paths")
        return tuple(Path(v).expanduser() for v in value)

    def integer(key: str) -> int | None:
        value = section.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise UserError(f"{path}: discovery.{key} must be a whole number ≥ 0")
        return value

    default_roots = section.get("default_roots", True)
    if not isinstance(default_roots, bool):
        raise UserError(f"{path}: discovery.default_roots must be true or false")
    return DiscoveryConfig(
        roots=paths("roots"),
        depth=integer("depth"),
        max_dirs=integer("max_dirs"),
        default_roots=default_roots,
        paths=paths("paths"),
    )
