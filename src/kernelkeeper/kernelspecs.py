"""The kernelspecs Jupyter sees, what each one runs, and the atomic writes.

Reading follows jupyter_client's own rules (`jupyter_path("kernels")` in its
search order, first name wins, names lower-cased). Writing is atomic: a new
kernel is built in a staging folder beside the kernels folder and renamed into
place; an update replaces kernel.json with ``os.replace``. A kernelspec is
kernelkeeper's when its kernel.json carries ``metadata.kernelkeeper``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import safeio
from .environments import has_dist, read_pyvenv_cfg
from .errors import UserError

MARKER = "kernelkeeper"
NAME_RE = re.compile(r"^[a-z0-9._-]+$")
STAGING = ".kernelkeeper-staging"
LOCK_FILE = ".kernelkeeper.lock"

# A kernel.json is a few levels deep; past this it is refused before it is copied or printed.
KERNEL_JSON_DEPTH = 64
STATUSES = ("ok", "stale", "no-ipykernel", "shadowed", "invalid")
_OVERLAY_RE = re.compile(r"site\.addsitedir\('([^']+)'\)")


def check_name(name: str) -> str:
    """A kernel name Jupyter accepts, or a UserError saying why not."""
    if not NAME_RE.match(name) or name in (".", ".."):
        raise UserError(
            f"invalid kernel name {name!r}: Jupyter kernel names may hold only a-z, 0-9, '.', '_' and '-'",
            hint=f"try --name {slug(name) or 'mykernel'}",
        )
    return name


def slug(text: str) -> str:
    """The closest valid kernel name: lower case, other characters become '-'."""
    import unicodedata

    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9._-]", "-", ascii_text.lower())).strip("-.")


# --- scopes --------------------------------------------------------------------


def scope_dir(scope: str) -> Path:
    """The kernels folder of a scope: user, sys-prefix, system or prefix:PATH."""
    from jupyter_core import paths

    if scope == "user":
        return Path(paths.jupyter_data_dir()) / "kernels"
    if scope == "sys-prefix":
        return Path(paths.ENV_JUPYTER_PATH[0]) / "kernels"
    if scope == "system":
        return Path(paths.SYSTEM_JUPYTER_PATH[0]) / "kernels"
    if scope.startswith("prefix:") and len(scope) > len("prefix:"):
        return Path(scope[len("prefix:") :]).expanduser().absolute() / "share" / "jupyter" / "kernels"
    raise UserError(f"unknown scope {scope!r}", hint="use user, sys-prefix, system or prefix:PATH")


def kernel_dirs() -> list[Path]:
    """jupyter_client's kernel folders, in its search order."""
    from jupyter_core.paths import jupyter_path

    return [Path(p) for p in jupyter_path("kernels")]


# --- reading -------------------------------------------------------------------


@dataclass(frozen=True)
class KernelSpecInfo:
    name: str
    resource_dir: Path
    display_name: str | None = None
    argv: tuple[str, ...] = ()
    language: str | None = None
    env: dict[str, str] = field(default_factory=dict, compare=False)
    metadata: dict[str, Any] = field(default_factory=dict, compare=False)
    interpreter: Path | None = None
    env_prefix: Path | None = None
    status: str = "ok"
    reason: str | None = None
    builtin: bool = False  # ipykernel's own python3, not a folder in Jupyter's path

    @property
    def managed(self) -> bool:
        return isinstance(self.metadata.get(MARKER), dict)

    @property
    def marker(self) -> dict[str, Any]:
        value = self.metadata.get(MARKER)
        return value if isinstance(value, dict) else {}

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "resource_dir": str(self.resource_dir),
            "display_name": self.display_name,
            "argv": list(self.argv),
            "language": self.language,
            "interpreter": str(self.interpreter) if self.interpreter else None,
            "env": str(self.env_prefix) if self.env_prefix else None,
            "status": self.status,
            "reason": self.reason,
            "managed": self.managed,
            "overlay": self.overlay,
        }

    @property
    def overlay(self) -> str | None:
        """The ipykernel overlay this kernel runs on (an env without ipykernel), or None."""
        m = _OVERLAY_RE.search(" ".join(self.argv)) if "-c" in self.argv else None
        return Path(m.group(1)).parent.name if m else None


def env_prefix_of(interpreter: Path) -> Path | None:
    """The environment an interpreter path belongs to, from its folder (links not followed)."""
    bin_dir = interpreter.parent
    prefix = bin_dir.parent if bin_dir.name in ("bin", "Scripts") else bin_dir
    if (prefix / "pyvenv.cfg").is_file() or (prefix / "conda-meta").is_dir():
        return prefix
    if (prefix / "lib").is_dir() and bin_dir.name == "bin":
        return prefix
    return None


def _site_packages(prefix: Path) -> list[str]:
    lib = os.path.join(prefix, "lib")
    try:
        names = os.listdir(lib)
    except OSError:
        names = []
    found = [os.path.join(lib, n, "site-packages") for n in names if n.startswith(("python", "pypy"))]
    found.append(os.path.join(prefix, "Lib", "site-packages"))
    if read_pyvenv_cfg(prefix) is None:
        found.append(os.path.join(lib, "python3", "dist-packages"))
    return found


def _interpreter(argv: tuple[str, ...], path_env: str | None) -> Path | None:
    if not argv:
        return None
    exe = argv[0]
    if exe in ("python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info[:2])):
        # jupyter_client runs these with its own sys.executable (KernelManager.format_kernel_cmd).
        return Path(sys.executable)
    if os.sep in exe:
        return Path(exe)
    which = shutil.which(exe, path=path_env)
    return Path(which) if which else None


def read_kernelspec(name: str, resource_dir: Path) -> KernelSpecInfo:
    """One kernelspec folder, with its status (never raises on bad input)."""
    if os.path.islink(resource_dir) and not os.path.exists(resource_dir):
        return KernelSpecInfo(name, resource_dir, status="invalid", reason="dangling symlink")
    try:
        # safeio: a FIFO here would block open() for good, a 100,000-deep document raises RecursionError.
        data = safeio.loads_json(
            safeio.read_bytes(resource_dir / "kernel.json"), "kernel.json", max_depth=KERNEL_JSON_DEPTH
        )
    except OSError as e:
        return KernelSpecInfo(name, resource_dir, status="invalid", reason=f"cannot read kernel.json: {safeio.why(e)}")
    except ValueError as e:
        return KernelSpecInfo(name, resource_dir, status="invalid", reason=str(e))
    if not isinstance(data, dict) or not isinstance(data.get("argv"), list) or not data["argv"]:
        return KernelSpecInfo(name, resource_dir, status="invalid", reason="kernel.json has no argv list")
    argv = tuple(str(a) for a in data["argv"])
    env = {str(k): str(v) for k, v in (data.get("env") or {}).items()} if isinstance(data.get("env"), dict) else {}
    metadata = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    interpreter = _interpreter(argv, None)
    status: str = "ok"
    reason: str | None = None
    prefix: Path | None = None
    overlay = _OVERLAY_RE.search(" ".join(argv)) if "-c" in argv else None
    if interpreter is None or not os.path.exists(interpreter):
        status, reason = "stale", f"interpreter {argv[0]} is gone"
    elif overlay is not None and not os.path.isdir(os.path.join(overlay.group(1), "ipykernel")):
        status, reason = "stale", f"its ipykernel overlay {overlay.group(1)} is gone (`kernelkeeper overlay build`)"
    else:
        prefix = env_prefix_of(interpreter)
        uses_ipykernel = any(a in ("ipykernel_launcher", "ipykernel") for a in argv)
        if (
            uses_ipykernel
            and prefix is not None
            and not any(has_dist(sp, "ipykernel") for sp in _site_packages(prefix))
        ):
            status, reason = "no-ipykernel", f"ipykernel is not installed in {prefix}"
    return KernelSpecInfo(
        name=name,
        resource_dir=resource_dir,
        display_name=str(data.get("display_name")) if data.get("display_name") is not None else None,
        argv=argv,
        language=str(data.get("language")) if data.get("language") is not None else None,
        env=env,
        metadata=metadata or {},
        interpreter=interpreter,
        env_prefix=prefix,
        status=status,
        reason=reason,
    )


@dataclass(frozen=True)
class KernelList:
    kernels: tuple[KernelSpecInfo, ...]
    problems: tuple[tuple[Path, str], ...] = ()

    def visible(self) -> dict[str, KernelSpecInfo]:
        """The kernelspec Jupyter would use for each name (the first in search order)."""
        out: dict[str, KernelSpecInfo] = {}
        for k in self.kernels:
            if k.status != "shadowed":
                out.setdefault(k.name, k)
        return out

    def in_dir(self, folder: Path) -> list[KernelSpecInfo]:
        return [k for k in self.kernels if k.resource_dir.parent == folder]


def list_kernelspecs(dirs: list[Path] | None = None, *, native: bool = True, also: Path | None = None) -> KernelList:
    """Every kernelspec in Jupyter's kernel folders, in search order, with a status.

    ``also``: a kernels folder outside Jupyter's path (a ``prefix:`` scope), read last.
    """
    dirs = kernel_dirs() if dirs is None else dirs
    if also is not None and also not in dirs:
        dirs = [*dirs, also]
    kernels: list[KernelSpecInfo] = []
    problems: list[tuple[Path, str]] = []
    seen: dict[str, Path] = {}
    for folder in dict.fromkeys(dirs):
        try:
            names = sorted(os.listdir(folder))
        except FileNotFoundError:
            continue
        except NotADirectoryError:
            problems.append((folder, "not a folder"))
            continue
        except PermissionError:
            problems.append((folder, "permission denied: its kernels are not listed"))
            continue
        for entry in names:
            path = folder / entry
            if entry.startswith(".") or not (os.path.isdir(path) or os.path.islink(path)):
                continue
            if not os.path.lexists(path / "kernel.json") and not (os.path.islink(path) and not os.path.exists(path)):
                continue
            name = entry.lower()
            info = read_kernelspec(name, path)
            if name in seen:
                info = _with(info, status="shadowed", reason=f"{seen[name]} comes first in Jupyter's path")
            else:
                seen[name] = path
            kernels.append(info)
    if native and "python3" not in seen:
        try:
            from ipykernel.kernelspec import RESOURCES  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            pass
        else:
            kernels.append(
                KernelSpecInfo(
                    "python3",
                    Path(RESOURCES),
                    display_name="Python 3 (ipykernel)",
                    argv=(sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"),
                    language="python",
                    interpreter=Path(sys.executable),
                    env_prefix=Path(sys.prefix),
                    reason="built in: the ipykernel of the Python running Jupyter",
                    builtin=True,
                )
            )
    return KernelList(tuple(kernels), tuple(problems))


def _with(info: KernelSpecInfo, **changes: Any) -> KernelSpecInfo:
    from dataclasses import replace

    return replace(info, **changes)


# --- writing -------------------------------------------------------------------


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold the kernels folder's lock: two runs at once cannot interleave their writes."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except PermissionError as e:
        raise UserError(
            f"cannot create {folder}: permission denied",
            hint="use --scope user, or run as a user who may write there",
        ) from e
    except (FileExistsError, NotADirectoryError) as e:  # a file where a folder should be
        raise UserError(
            f"cannot use {folder} as a kernels folder: it or a folder above it is not a folder",
            hint="move that file away, or use another --scope",
        ) from e
    lock_path = folder.parent / LOCK_FILE
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except PermissionError as e:
        raise UserError(f"cannot write in {folder.parent}: permission denied", hint="use --scope user") from e
    try:
        if sys.platform != "win32":
            import fcntl

            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                print(f"kernelkeeper: waiting for another kernelkeeper run ({lock_path})", file=sys.stderr)
                fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def write_kernelspec(folder: Path, name: str, spec: dict[str, Any], files: dict[str, Path] | None = None) -> Path:
    """Create or replace ``folder/name`` atomically. Caller holds `locked(folder)`."""
    check_name(name)
    target = folder / name
    payload = json.dumps(spec, indent=1, ensure_ascii=False) + "\n"
    if target.is_dir() and not target.is_symlink():
        # Update in place: kernel.json is swapped whole, the folder never vanishes.
        fd, tmp = tempfile.mkstemp(prefix=".kernel.json.", dir=target)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(payload)
            # The rename is what makes it atomic for readers and against a killed process.
            os.replace(tmp, target / "kernel.json")
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return target
    staging = folder.parent / STAGING
    staging.mkdir(exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f"{name}.", dir=staging))
    try:
        for dest, src in (files or {}).items():
            with contextlib.suppress(OSError):
                shutil.copyfile(src, build / dest)
        with open(build / "kernel.json", "w", encoding="utf-8") as f:
            f.write(payload)
        build.chmod(0o755)
        os.rename(build, target)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    return target


def remove_kernelspec(path: Path) -> None:
    """Remove a kernelspec folder; a symlinked one loses only the link."""
    if path.is_symlink():
        path.unlink()
        return
    # Rename first so Jupyter never sees a half-deleted kernel.
    trash = path.parent.parent / STAGING
    trash.mkdir(exist_ok=True)
    doomed = Path(tempfile.mkdtemp(prefix=f"{path.name}.removed.", dir=trash))
    os.rename(path, doomed / path.name)
    shutil.rmtree(doomed, ignore_errors=True)
