"""ipykernel overlays: kernels for environments that lack ipykernel, without touching them.

One overlay per Python implementation and minor version lives in
``<user data dir>/kernelkeeper/overlays/<impl>-<X.Y>/site-packages``, built
once with ``uv pip install --target`` (or ``pip install --target``) for an
interpreter of that version. A kernel for environment E runs E's own
interpreter and appends the overlay to ``sys.path`` *after* E's
site-packages: every package the project has wins, the overlay only fills
what is missing, and E's files, ``pip list`` and lock file stay as they were.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import safeio
from .context import Context
from .environments import Environment
from .errors import UserError
from .launch import find_uv

# pip too: %pip and !pip in an environment without pip run the overlay's (kernel_pip.py).
PACKAGES = ("ipykernel", "pip")
PIP_SHIM = (
    "#!/bin/sh\n"
    "# pip for an environment without pip (kernelkeeper's ipykernel overlay): pip's own runner imports only pip\n"
    "# from the overlay; PIP_PYTHON (set in the kernel) is the environment's Python, and pip installs into it.\n"
    'here=$(dirname "$0")\n'
    'exec "${PIP_PYTHON:-python3}" "$here/../site-packages/pip/__pip-runner__.py" "$@"\n'
)
MIN_VERSION = (3, 8)  # the oldest Python today's ipykernel runs on
# ipykernel_launcher, with the overlay appended to sys.path first. E's site-packages stay in front.
BOOTSTRAP = (
    "import site, sys; site.addsitedir({overlay}); "
    "sys.path[0] == '' and sys.path.pop(0); "
    "from ipykernel import kernelapp as app; app.launch_new_instance()"
)


def overlays_dir(ctx: Context) -> Path:
    return ctx.path_var("KERNELKEEPER_OVERLAYS") or ctx.user_data_dir("kernelkeeper") / "overlays"


def key_of(env: Environment) -> str | None:
    """``cpython-3.11``: which overlay an environment can use, or None (unknown or too old a Python)."""
    if env.minor is None:
        return None
    try:
        major, minor = (int(p) for p in env.minor.split("."))
    except ValueError:
        return None
    if (major, minor) < MIN_VERSION:
        return None
    return f"{env.implementation or 'cpython'}-{env.minor}"


@dataclass(frozen=True)
class Overlay:
    key: str
    path: Path  # the folder holding site-packages/ and overlay.json
    info: dict[str, Any]

    @property
    def site_packages(self) -> Path:
        return self.path / "site-packages"

    @property
    def ipykernel_version(self) -> str | None:
        return dist_versions(self.site_packages).get("ipykernel")

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "path": str(self.path),
            "ipykernel": self.ipykernel_version,
            "built_with": self.info.get("built_with"),
            "built_by": self.info.get("command"),
            "built_at": self.info.get("built_at"),
            "size_mb": round(_size(self.site_packages) / 1e6, 1),
        }


def _size(folder: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def find_overlay(ctx: Context, key: str) -> Overlay | None:
    path = overlays_dir(ctx) / key
    try:
        info = safeio.load_json(path / "overlay.json")
    except (OSError, ValueError):
        return None
    if not (path / "site-packages" / "ipykernel").is_dir():
        return None
    return Overlay(key, path, info if isinstance(info, dict) else {})


def list_overlays(ctx: Context) -> list[Overlay]:
    try:
        names = sorted(os.listdir(overlays_dir(ctx)))
    except OSError:
        return []
    found = [find_overlay(ctx, n) for n in names if not n.startswith(".")]
    return [o for o in found if o is not None]


def build_command(python: Path, target: Path, env: dict[str, str], offline: bool = False) -> list[str]:
    # The uv binary rather than a shim found first on PATH (pyenv's bash shim costs 150-250 ms a call).
    uv = find_uv(env.get("PATH", ""))
    if uv:
        cmd = [uv, "pip", "install", "--quiet", "--compile-bytecode", "--python", str(python)]
        cmd += ["--target", str(target), *PACKAGES]
        return [*cmd, "--offline"] if offline else cmd
    cmd = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target", str(target)]
    return [*cmd, "--no-index", *PACKAGES] if offline else [*cmd, *PACKAGES]


def add_pip_hook(folder: Path) -> None:
    """``%pip``/``!pip`` for environments without pip: the overlay's pip, run by the environment's Python.

    ``site-packages/_kernelkeeper_pip.py`` (kernel_pip.py) with a ``.pth`` importing it — read by
    ``site.addsitedir`` in the kernel only — and ``bin/pip``, ``bin/pip3`` for ``!pip``.
    """
    site = folder / "site-packages"
    shutil.copyfile(Path(__file__).with_name("kernel_pip.py"), site / "_kernelkeeper_pip.py")
    (site / "_kernelkeeper_pip.pth").write_text("import _kernelkeeper_pip\n")
    bin_dir = folder / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name in ("pip", "pip3"):
        shim = bin_dir / name
        shim.write_text(PIP_SHIM)
        shim.chmod(0o755)


def build(
    ctx: Context,
    env: Environment,
    *,
    progress: Callable[[str], None] | None = None,
    rebuild: bool = False,
) -> Overlay:
    """Build (or return) the overlay for an environment's Python. E itself is only run, never changed."""
    key = key_of(env)
    if key is None:
        raise UserError(
            f"{env.prefix} runs Python {env.version or '?'}: ipykernel needs Python ≥ 3.8",
            hint="use an environment with a newer Python",
        )
    existing = find_overlay(ctx, key)
    if existing is not None and not rebuild:
        return existing
    if env.python is None:
        raise UserError(f"{env.prefix} has no interpreter to build an overlay for")
    from .run import run_checked

    root = overlays_dir(ctx)
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".{key}.building-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    command = build_command(env.python, staging / "site-packages", dict(ctx.env))
    say = progress or (lambda _msg: None)
    say(f"building the ipykernel overlay for {key}: {' '.join(command)}")
    try:
        try:
            run_checked(command, env=ctx.env)
        except UserError as online_error:
            # The registry may be unreachable: try what the local wheel cache holds.
            offline = build_command(env.python, staging / "site-packages", dict(ctx.env), offline=True)
            say(f"the registry failed; trying the local cache: {' '.join(offline)}")
            try:
                run_checked(offline, env=ctx.env)
                command = offline
            except UserError:
                raise UserError(
                    f"could not build the ipykernel overlay for {key}: {online_error}",
                    hint="check the network or the package index settings (PIP_INDEX_URL / UV_INDEX_URL), "
                    "or install ipykernel into the environment: kernelkeeper add --install-ipykernel",
                ) from None
        if not (staging / "site-packages" / "ipykernel").is_dir():
            raise UserError(f"`{' '.join(command)}` ran but left no ipykernel in {staging}")
        add_pip_hook(staging)
        info = {
            "key": key,
            "built_with": str(env.python),
            "python_version": env.version,
            "command": " ".join(command),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (staging / "overlay.json").write_text(json.dumps(info, indent=1) + "\n")
        target = root / key
        if target.exists():
            old = root / f".{key}.old-{os.getpid()}"
            os.rename(target, old)
            os.rename(staging, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    overlay = find_overlay(ctx, key)
    assert overlay is not None
    say(f"overlay {key} ready: ipykernel {overlay.ipykernel_version} in {overlay.path}")
    return overlay


def remove(ctx: Context, key: str) -> Path:
    path = overlays_dir(ctx) / key
    if not re.fullmatch(r"[a-z]+-\d+\.\d+", key) or not path.is_dir():
        raise UserError(f"no overlay {key!r}", hint="`kernelkeeper overlay list` shows them")
    shutil.rmtree(path)
    return path


# --- what the environment already has: clashes ---------------------------------------------

_DIST_RE = re.compile(r"^(?P<name>.+?)-(?P<version>[^-]+)\.(dist-info|egg-info)$")


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def dist_versions(site_packages: Path | None) -> dict[str, str]:
    """Installed distributions of a site-packages folder, by canonical name, from their folder names."""
    out: dict[str, str] = {}
    if site_packages is None:
        return out
    try:
        names = os.listdir(site_packages)
    except OSError:
        return out
    for name in names:
        m = _DIST_RE.match(name)
        if m:
            out[_canon(m.group("name"))] = m.group("version")
    return out


def _requires(site_packages: Path, dist: str, version: str) -> list[str]:
    for folder in site_packages.glob("*.dist-info"):
        m = _DIST_RE.match(folder.name)
        if m and _canon(m.group("name")) == dist:
            try:
                text = safeio.read_text(folder / "METADATA")
            except OSError:
                return []
            return [
                line[len("Requires-Dist:") :].strip() for line in text.splitlines() if line.startswith("Requires-Dist:")
            ]
    return []


@dataclass(frozen=True)
class Clash:
    package: str
    env_version: str
    needed: str  # the specifier the overlay's packages need
    overlay_version: str | None
    required_by: str

    def __str__(self) -> str:
        have = f" (the overlay has {self.overlay_version})" if self.overlay_version else ""
        return (
            f"{self.package} {self.env_version} in the environment, but {self.required_by} needs "
            f"{self.package}{self.needed}{have}"
        )


def clashes(env: Environment, overlay: Overlay) -> list[Clash]:
    """Packages the environment has at versions the overlay's ipykernel stack cannot run with.

    E's own copy wins on sys.path, so each is a kernel that would die at start.
    """
    from packaging.markers import default_environment
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.version import InvalidVersion, Version

    mine = dist_versions(env.site_packages)
    theirs = dist_versions(overlay.site_packages)
    marker_env: dict[str, str] = {k: str(v) for k, v in default_environment().items()}
    if env.minor:
        marker_env["python_version"] = env.minor
        marker_env["python_full_version"] = env.version or env.minor
    found: list[Clash] = []
    for dist, version in sorted(theirs.items()):
        for line in _requires(overlay.site_packages, dist, version):
            try:
                req = Requirement(line)
            except InvalidRequirement:
                continue
            if req.marker is not None and not req.marker.evaluate(dict(marker_env, extra="")):
                continue
            name = _canon(req.name)
            if name not in mine or not req.specifier:
                continue
            try:
                ok = req.specifier.contains(Version(mine[name]), prereleases=True)
            except InvalidVersion:
                continue
            if not ok:
                found.append(Clash(name, mine[name], str(req.specifier), theirs.get(name), f"{dist} {version}"))
    return found


def bootstrap_code(site_packages: Path) -> str:
    """The ``-c`` code of an overlay kernel.

    jupyter_client replaces ``{name}`` in every argv item, so the path's ``{``
    is spelled ``\\x7b`` inside the Python string literal.
    """
    return BOOTSTRAP.format(overlay=repr(str(site_packages)).replace("{", "\\x7b"))
