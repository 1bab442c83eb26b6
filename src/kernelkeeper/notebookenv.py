"""Environments that notebooks declare (PEP 723 in a code cell, juv's format): the builder and the cache.

The launcher (launch.py, standard library only) reads the declaration, keys it, and runs a
cached environment; when none is ready it writes ``request.json`` into the key's folder and
starts ``python -I -m kernelkeeper.notebookenv build FOLDER`` detached. The builder holds a lock
on the folder, builds the environment in place with ``uv sync --script`` (uv reads every
``[tool.uv]`` setting and honours juv's lock, kept in the notebook's metadata as ``uv.lock``),
builds the ipykernel overlay for its Python if there is none (offline first, like ``sync``),
and writes ``built.json`` last: a folder without it is not an environment yet.

Layout of ``<cache>/kernelkeeper/notebook-envs/<key>/``: ``env/`` (the environment, no
ipykernel in it), ``script.py`` (+ ``script.py.lock``) what was declared, ``built.json``,
``failed.json`` (the last failure, shown once), ``build.log``, ``used/<hash>`` one file per
notebook that started it (its path; its mtime is the last start).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import launch, safeio
from .context import Context
from .errors import UserError


def envs_root(env: dict[str, str]) -> Path:
    cache = env.get("XDG_CACHE_HOME") or os.path.join(env.get("HOME") or os.path.expanduser("~"), ".cache")
    return Path(env.get("KERNELKEEPER_NOTEBOOK_ENVS") or os.path.join(cache, "kernelkeeper", "notebook-envs"))


@contextmanager
def locked(folder: Path) -> Iterator[None]:
    """One builder (or remover) per environment at a time; the others wait for it."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)


def _uv_env(env: dict[str, str]) -> dict[str, str]:
    out = {k: v for k, v in env.items() if k not in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "PYTHONPATH")}
    return out


def _run(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str]:
    import subprocess

    print("$ " + " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=3600)
    output = (proc.stdout + proc.stderr).strip()
    if output:
        print(output, flush=True)
    return proc.returncode, output


def build(folder: Path, env: dict[str, str]) -> int:
    """Build what ``folder/request.json`` asks for; 0 when ``built.json`` is there at the end."""
    with locked(folder):
        if (folder / launch.BUILT).exists() and _overlay_ready(folder / "env", env):
            return 0
        try:
            request = safeio.load_json(folder / launch.REQUEST)
        except (OSError, ValueError) as e:
            print(f"no build request in {folder}: {e}", flush=True)
            return 1
        started = time.monotonic()
        try:
            info = _build(folder, request, env)
        except UserError as e:
            print(f"failed: {e}", flush=True)
            _write_json(folder / launch.FAILED, {"message": str(e), "hint": e.hint or "", "at": time.time()})
            return 1
        info["seconds"] = round(time.monotonic() - started, 2)
        with_failed = folder / launch.FAILED
        if with_failed.exists():
            with_failed.unlink()
        _write_json(folder / launch.BUILT, info)
        print(f"ready: {folder / 'env'} ({info['seconds']} s)", flush=True)
        return 0


def _build(folder: Path, request: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    uv = launch.find_uv()
    if uv is None:
        raise UserError("uv is not on this machine", hint=launch.UV_HINT)
    prefix = folder / "env"
    if not (folder / launch.BUILT).exists():
        # A build that died half-way left a partial environment: start it again from nothing.
        shutil.rmtree(prefix, ignore_errors=True)
        script = folder / "script.py"
        script.write_text(str(request["block"]))
        lock = folder / "script.py.lock"
        if request.get("lock"):
            lock.write_text(str(request["lock"]))
        elif lock.exists():
            lock.unlink()
        uv_env = {**_uv_env(env), "VIRTUAL_ENV": str(prefix)}
        # --active: into VIRTUAL_ENV (this folder), not uv's own script cache. With a lock present and
        # matching the declaration, uv installs from it without resolving.
        cmd = [uv, "sync", "--script", str(script), "--active", "--no-progress"]
        code, output = _run(cmd, uv_env, folder)
        if code != 0:
            # The index may be unreachable: try what uv's cache holds.
            offline_code, _ = _run([*cmd, "--offline"], uv_env, folder)
            if offline_code != 0:
                shutil.rmtree(prefix, ignore_errors=True)
                raise UserError(
                    f"`uv sync --script` failed (uv's message below; offline from uv's cache it failed too):\n"
                    f"{output[-3000:]}",
                    hint="fix the dependencies in the notebook's `# /// script` block, or check the network and "
                    "the index settings, then restart the kernel",
                )
    overlay = _ensure_overlay(prefix, env)
    return {
        "key": request.get("key"),
        "notebook": request.get("notebook"),
        "python": str(prefix / "bin" / "python"),
        "overlay": str(overlay),
        "locked": bool(request.get("lock")),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _environment(prefix: Path) -> Any:
    from .environments import Found, describe

    return describe(Found(prefix, "uv"))


def _overlay_ready(prefix: Path, env: dict[str, str]) -> bool:
    from .overlay import find_overlay, key_of

    key = key_of(_environment(prefix))
    return key is not None and find_overlay(Context.from_environ(env=env), key) is not None


def _ensure_overlay(prefix: Path, env: dict[str, str]) -> Path:
    """The overlay for the environment's Python: the one there is, else built from uv's cache, else online."""
    import dataclasses

    from .overlay import build as build_overlay
    from .overlay import find_overlay, key_of

    target = _environment(prefix)
    key = key_of(target)
    if key is None:
        raise UserError(f"{prefix} runs Python {target.version or '?'}: ipykernel needs Python ≥ 3.8")
    ctx = Context.from_environ(env=_uv_env(env))
    existing = find_overlay(ctx, key)
    if existing is not None:
        return existing.site_packages
    offline = dataclasses.replace(ctx, env={**ctx.env, "UV_OFFLINE": "1", "PIP_NO_INDEX": "1"})
    try:
        return build_overlay(offline, target, progress=lambda m: print(m, flush=True)).site_packages
    except UserError:
        return build_overlay(ctx, target, progress=lambda m: print(m, flush=True)).site_packages


# --- the cache, for `kernelkeeper cache` ------------------------------------------------------


@dataclass(frozen=True)
class CachedEnv:
    key: str
    path: Path
    built: bool
    size: int
    last_used: float | None  # epoch seconds of the last kernel start (None: never started)
    notebooks: tuple[str, ...]  # most recent first
    dependencies: tuple[str, ...]
    requires_python: str | None
    locked: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "path": str(self.path),
            "built": self.built,
            "size_bytes": self.size,
            "last_used": (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.last_used)) if self.last_used else None),
            "notebooks": list(self.notebooks),
            "dependencies": list(self.dependencies),
            "requires_python": self.requires_python,
            "locked": self.locked,
        }


def _size(folder: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                continue
    return total


def _declared(folder: Path) -> tuple[tuple[str, ...], str | None]:
    try:
        block = safeio.read_text(folder / "script.py")
    except (OSError, ValueError):
        return (), None
    body = "".join(line[2:] if line.startswith("# ") else line[1:] for line in block.splitlines(True)[1:-1])
    from .safeio import tomllib  # type: ignore[attr-defined]

    try:
        data = tomllib.loads(body)
    except tomllib.TOMLDecodeError:
        return (), None
    deps = data.get("dependencies", [])
    rp = data.get("requires-python")
    return tuple(d for d in deps if isinstance(d, str)), rp if isinstance(rp, str) else None


def describe_cached(folder: Path) -> CachedEnv:
    uses: list[tuple[float, str]] = []
    try:
        entries = list(os.scandir(folder / "used"))
    except OSError:
        entries = []
    for entry in entries:
        try:
            uses.append((entry.stat(follow_symlinks=False).st_mtime, safeio.read_text(entry.path)))
        except (OSError, ValueError):
            continue
    uses.sort(reverse=True)
    deps, rp = _declared(folder)
    built = (folder / launch.BUILT).exists()
    last = uses[0][0] if uses else None
    if last is None and built:
        last = (folder / launch.BUILT).stat().st_mtime  # built but never started: counts from the build
    return CachedEnv(
        key=folder.name,
        path=folder,
        built=built,
        size=_size(folder),
        last_used=last,
        notebooks=tuple(n for _, n in uses),
        dependencies=deps,
        requires_python=rp,
        locked=(folder / "script.py.lock").exists(),
    )


def list_cached(env: dict[str, str]) -> list[CachedEnv]:
    root = envs_root(env)
    try:
        names = sorted(n for n in os.listdir(root) if not n.startswith("."))
    except OSError:
        return []
    return [describe_cached(root / n) for n in names if (root / n).is_dir()]


def remove_cached(env: dict[str, str], keys: list[str], unused_for: float | None, dry_run: bool) -> list[CachedEnv]:
    """Remove the named environments, or those not started for ``unused_for`` seconds; return them."""
    now = time.time()
    chosen: list[CachedEnv] = []
    everything = {c.key: c for c in list_cached(env)}
    for key in keys:
        if key not in everything:
            raise UserError(f"no cached notebook environment {key!r}", hint="`kernelkeeper cache list` shows them")
        chosen.append(everything[key])
    if unused_for is not None:
        chosen += [
            c
            for c in everything.values()
            if c not in chosen and (c.last_used is None or now - c.last_used >= unused_for)
        ]
    if not dry_run:
        for c in chosen:
            with locked(c.path):  # not while a builder is writing it
                shutil.rmtree(c.path / "env", ignore_errors=True)
                for name in os.listdir(c.path):
                    if name != ".lock":
                        p = c.path / name
                        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink()
            shutil.rmtree(c.path, ignore_errors=True)
    return chosen


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "build":
        return build(Path(argv[1]), dict(os.environ))
    print("usage: python -m kernelkeeper.notebookenv build FOLDER", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
