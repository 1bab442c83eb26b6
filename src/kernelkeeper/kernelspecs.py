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
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import safeio
from .environments import has_dist, read_pyvenv_cfg
from .errors import UsageError, UserError

MARKER = "kernelkeeper"
NAME_RE = re.compile(r"^[a-z0-9._-]+$")
STAGING = ".kernelkeeper-staging"
LOCK_FILE = ".kernelkeeper.lock"

# A kernel.json is a few levels deep; past this it is refused before it is copied or printed.
KERNEL_JSON_DEPTH = 64
STATUSES = ("ok", "stale", "unreachable", "no-overlay", "no-ipykernel", "shadowed", "invalid")
_OVERLAY_RE = re.compile(r"""site\.addsitedir\(('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")\)""")
#: NAME_MAX of the common filesystems: a longer kernel name cannot be a folder.
NAME_MAX = 255

# jupyter_client treats every argv item as a template: ``{prefix}``, ``{resource_dir}``, ``{cwd}``...
# are replaced (KernelManager.format_kernel_cmd), and there is no escape. An interpreter whose path
# holds such a pattern runs through this exec wrapper, its path in the env (where only ``$`` is special).
ARGV_TEMPLATE_RE = re.compile(r"\{[A-Za-z0-9_]+\}")
PYTHON_VAR = "KERNELKEEPER_PYTHON"
SH_WRAPPER = ("/bin/sh", "-c", f'exec "${PYTHON_VAR}" "$@"', "kernelkeeper")


def env_literal(value: str) -> str:
    """``value`` as a kernelspec env value: jupyter_client's string.Template turns ``$$`` back into ``$``."""
    return value.replace("$", "$$")


def env_value(value: str) -> str:
    """What jupyter_client makes of a kernelspec env value with no variables to substitute."""
    from string import Template

    return Template(value).safe_substitute({})


def overlay_path(argv: tuple[str, ...] | list[str]) -> str | None:
    """The overlay folder a bootstrap ``-c`` argument adds to sys.path, or None."""
    import ast

    m = _OVERLAY_RE.search(" ".join(argv)) if "-c" in argv else None
    if m is None:
        return None
    try:
        value = ast.literal_eval(m.group(1))
    except (ValueError, SyntaxError):
        return None
    return value if isinstance(value, str) else None


def check_name(name: str) -> str:
    """A kernel name Jupyter accepts, or a UsageError (exit 2) saying why not."""
    if not NAME_RE.match(name) or name in (".", ".."):
        error = UsageError(
            f"invalid kernel name {name!r}: Jupyter kernel names may hold only a-z, 0-9, '.', '_' and '-'",
            hint=f"the closest valid name is {slug(name)[:NAME_MAX].strip('-.') or 'mykernel'!r}",
        )
    elif len(name) > NAME_MAX:
        error = UsageError(
            f"invalid kernel name {name[:40]}...: {len(name)} characters, a folder name holds at most {NAME_MAX}",
            hint="choose a shorter name",
        )
    else:
        return name
    raise error


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
    raise UsageError(f"unknown scope {scope!r}", hint="use user, sys-prefix, system or prefix:PATH")


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
        path = overlay_path(self.argv)
        return Path(path).parent.name if path else None


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


def _interpreter(argv: tuple[str, ...], path_env: str | None, env: dict[str, str] | None = None) -> Path | None:
    if not argv:
        return None
    exe = argv[0]
    if argv[: len(SH_WRAPPER)] == SH_WRAPPER and env and env.get(PYTHON_VAR):
        return Path(env_value(env[PYTHON_VAR]))
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
    interpreter = _interpreter(argv, None, env)
    status: str = "ok"
    reason: str | None = None
    prefix: Path | None = None
    overlay = overlay_path(argv)
    found = "gone" if interpreter is None else safeio.reach(interpreter)  # one stat
    if found == "out of reach":
        # There, but behind a folder this user may not enter (another user's Python): it may start
        # for them, so it is not stale, and nothing here removes it.
        status, reason = "unreachable", f"interpreter {interpreter} is there, but this user may not reach it"
    elif interpreter is None or found == "gone":
        status, reason = "stale", f"interpreter {interpreter or argv[0]} is gone"
    elif overlay is not None and not os.path.isdir(os.path.join(overlay, "ipykernel")):
        # The environment is still there: only the overlay is missing, and building it again brings the kernel back.
        prefix = env_prefix_of(interpreter)
        key = Path(overlay).parent.name
        status = "no-overlay"
        reason = f"its ipykernel overlay {key} was removed ({overlay}): `kernelkeeper overlay build " + (
            f"{prefix}` brings it back" if prefix is not None else "ENV` brings it back"
        )
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
#
# Every write has readers who are not the writer: another user's Jupyter reads a
# system or sys-prefix kernel, so those are 0644 files in 0755 folders whatever
# the umask (a user-scope kernel follows the umask). Every path kernelkeeper
# creates is created relative to an open folder with O_NOFOLLOW / O_EXCL, so a
# link planted at the lock, the staging folder or a temporary name cannot send
# a write (as root) somewhere else.

FILE_MODE = 0o644
DIR_MODE = 0o755
_TMP_RE = re.compile(r"^\.kernel\.json\.[a-z0-9_]{8}$")  # an update's temporary kernel.json (also mkstemp's)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)


def is_shared(folder: Path) -> bool:
    """True for every kernels folder but the user's own: its kernels are read by other users."""
    return os.path.realpath(folder) != os.path.realpath(scope_dir("user"))


def _random_name(prefix: str) -> str:
    # mkstemp's alphabet and length, so leftovers of every version match one pattern
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789_"
    return prefix + "".join(alphabet[b % len(alphabet)] for b in os.urandom(8))


def _makedirs(folder: Path, shared: bool) -> None:
    """``mkdir -p``; in a shared scope each folder it creates is 0755 whatever the umask."""
    missing: list[Path] = []
    path = folder
    while not os.path.isdir(path):
        missing.append(path)
        if path.parent == path:
            break
        path = path.parent
    for path in reversed(missing):
        try:
            os.mkdir(path, DIR_MODE)
        except FileExistsError:
            if not os.path.isdir(path):
                raise
            continue
        if shared:
            os.chmod(path, DIR_MODE)


def _open_dir(name: str | Path, dir_fd: int | None = None, *, follow: bool = False) -> int:
    flags = os.O_RDONLY | _DIRECTORY | _CLOEXEC | (0 if follow else _NOFOLLOW)
    return os.open(name, flags, dir_fd=dir_fd)


def _staging_fd(parent_fd: int, parent: Path, shared: bool) -> int:
    """The staging folder beside the kernels folder, opened without following a link."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(STAGING, 0o700, dir_fd=parent_fd)  # only renamed-out folders are read from it
    try:
        return _open_dir(STAGING, parent_fd)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR):
            raise UserError(
                f"{parent / STAGING} is a link or not a folder; kernelkeeper does not write through it",
                hint=f"remove it (`rm {parent / STAGING}`) and run again",
            ) from None
        raise


def _rmtree_at(dir_fd: int, name: str) -> None:
    """``rm -rf name`` inside an open folder, never following a link (shutil.rmtree takes dir_fd only on 3.11+)."""
    if not stat.S_ISDIR(os.lstat(name, dir_fd=dir_fd).st_mode):
        os.unlink(name, dir_fd=dir_fd)
        return
    fd = _open_dir(name, dir_fd)
    try:
        for entry in os.listdir(fd):
            _rmtree_at(fd, entry)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=dir_fd)


def _read_at(dir_fd: int, name: str) -> bytes:
    """A small regular file in an open folder, never through a link."""
    fd = os.open(name, os.O_RDONLY | _NOFOLLOW | _CLOEXEC | os.O_NONBLOCK, dir_fd=dir_fd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError(f"{name} is not a file")
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _write_file(dir_fd: int, name: str, data: bytes, shared: bool) -> None:
    """A new file ``name`` in an open folder: never through a link, never over an existing file."""
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, FILE_MODE, dir_fd=dir_fd)
    try:
        if shared:
            os.fchmod(fd, FILE_MODE)  # the umask must not hide a shared kernel from other users
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def _clean_leftovers(folder: Path, parent_fd: int) -> None:
    """Remove what a run killed midway left: staging folders, temporary kernel.json files.

    Called under the lock, so no other run is using them.
    """
    try:
        staging = _open_dir(STAGING, parent_fd)
    except OSError:
        staging = -1
    if staging >= 0:
        try:
            for entry in os.listdir(staging):
                with contextlib.suppress(OSError):
                    _rmtree_at(staging, entry)
        finally:
            os.close(staging)
        with contextlib.suppress(OSError):
            os.rmdir(STAGING, dir_fd=parent_fd)
    try:
        entries = os.scandir(folder)
    except OSError:
        return
    with entries:
        for kernel in entries:
            if kernel.name.startswith(".") or not kernel.is_dir(follow_symlinks=False):
                continue
            try:
                names = os.listdir(kernel.path)
            except OSError:
                continue
            for name in names:
                if _TMP_RE.match(name):
                    with contextlib.suppress(OSError):
                        if stat.S_ISREG(os.lstat(os.path.join(kernel.path, name)).st_mode):
                            os.unlink(os.path.join(kernel.path, name))


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold the kernels folder's lock: two runs at once cannot interleave their writes.

    Holding it, the run first removes what an interrupted run left behind.
    """
    shared = is_shared(folder)
    try:
        _makedirs(folder, shared)
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
    parent_fd = _open_dir(folder.parent, follow=True)
    try:
        try:
            # O_NONBLOCK: a FIFO planted at the lock's name must not hang the run.
            flags = os.O_RDWR | os.O_CREAT | _NOFOLLOW | _CLOEXEC | getattr(os, "O_NONBLOCK", 0)
            fd = os.open(LOCK_FILE, flags, FILE_MODE, dir_fd=parent_fd)
        except PermissionError as e:
            raise UserError(f"cannot write in {folder.parent}: permission denied", hint="use --scope user") from e
        except OSError as e:
            if e.errno != errno.ELOOP:
                raise
            raise UserError(
                f"{lock_path} is a symbolic link; kernelkeeper does not follow it",
                hint=f"someone placed it there: check where it points, remove it (`rm {lock_path}`), run again",
            ) from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise UserError(
                    f"{lock_path} is not a regular file", hint=f"remove it (`rm {lock_path}`) and run again"
                )
            if sys.platform != "win32":
                import fcntl

                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as e:
                    if e.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                    print(f"kernelkeeper: waiting for another kernelkeeper run ({lock_path})", file=sys.stderr)
                    fcntl.flock(fd, fcntl.LOCK_EX)
            _clean_leftovers(folder, parent_fd)
            yield
            # A finished run leaves no staging folder behind (only an empty one would be left).
            with contextlib.suppress(OSError):
                os.rmdir(STAGING, dir_fd=parent_fd)
        finally:
            os.close(fd)
    finally:
        os.close(parent_fd)


def write_kernelspec(folder: Path, name: str, spec: dict[str, Any], files: dict[str, Path] | None = None) -> Path:
    """Create or replace ``folder/name`` atomically. Caller holds `locked(folder)`."""
    check_name(name)
    shared = is_shared(folder)
    target = folder / name
    payload = (json.dumps(spec, indent=1, ensure_ascii=False) + "\n").encode("utf-8")
    folder_fd = _open_dir(folder, follow=True)
    try:
        try:
            target_fd = _open_dir(name, folder_fd)
        except (FileNotFoundError, NotADirectoryError):
            target_fd = -1
        except OSError as e:
            if e.errno != errno.ELOOP:
                raise
            target_fd = -1  # a symlinked kernel folder: replaced below, like a missing one
        if target_fd >= 0:
            try:
                _update(target_fd, payload, files or {}, shared)
            finally:
                os.close(target_fd)
            return target
        _create(folder, folder_fd, name, payload, files or {}, shared)
    finally:
        os.close(folder_fd)
    return target


def _update(target_fd: int, payload: bytes, files: dict[str, Path], shared: bool) -> None:
    """Swap kernel.json whole: the folder never vanishes, a reader sees the old or the new file.

    The logos in ``files`` are swapped the same way first, each only when its bytes differ.
    """
    from .safeio import read_bytes

    for dest, src in files.items():
        if os.sep in dest or dest in ("", ".", "..", "kernel.json") or not dest.startswith("logo-"):
            continue
        with contextlib.suppress(OSError):
            data = read_bytes(src)
            with contextlib.suppress(OSError, ValueError):
                if _read_at(target_fd, dest) == data:
                    continue
            tmp = _random_name(".kernel.json.")  # a leftover is cleaned like kernel.json's
            _write_file(target_fd, tmp, data, shared)
            try:
                os.replace(tmp, dest, src_dir_fd=target_fd, dst_dir_fd=target_fd)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp, dir_fd=target_fd)
                raise
    tmp = _random_name(".kernel.json.")
    _write_file(target_fd, tmp, payload, shared)
    try:
        # The rename is what makes it atomic for readers and against a killed process.
        os.replace(tmp, "kernel.json", src_dir_fd=target_fd, dst_dir_fd=target_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=target_fd)
        raise
    if shared:
        # A folder an older version made with a restrictive umask becomes readable too.
        with contextlib.suppress(OSError):
            os.fchmod(target_fd, DIR_MODE)


def _create(folder: Path, folder_fd: int, name: str, payload: bytes, files: dict[str, Path], shared: bool) -> None:
    """Build the kernel in the staging folder, then rename it into place."""
    from .safeio import read_bytes

    parent_fd = _open_dir(folder.parent, follow=True)
    try:
        staging_fd = _staging_fd(parent_fd, folder.parent, shared)
    finally:
        os.close(parent_fd)
    try:
        build = _random_name("build.")  # not the kernel's name: a long name must fit once, not twice
        os.mkdir(build, DIR_MODE, dir_fd=staging_fd)
        try:
            build_fd = _open_dir(build, staging_fd)
            try:
                if shared:
                    os.fchmod(build_fd, DIR_MODE)
                for dest, src in files.items():
                    # logos from the environment: a missing or odd one is skipped, never fatal
                    if os.sep in dest or dest in ("", ".", "..", "kernel.json"):
                        continue
                    with contextlib.suppress(OSError):
                        _write_file(build_fd, dest, read_bytes(src), shared)
                _write_file(build_fd, "kernel.json", payload, shared)
            finally:
                os.close(build_fd)
            os.rename(build, name, src_dir_fd=staging_fd, dst_dir_fd=folder_fd)
        except BaseException:
            with contextlib.suppress(OSError):
                _rmtree_at(staging_fd, build)
            raise
    finally:
        os.close(staging_fd)


def remove_kernelspec(path: Path) -> None:
    """Remove a kernelspec folder; a symlinked one loses only the link."""
    if path.is_symlink():
        path.unlink()
        return
    # Rename first so Jupyter never sees a half-deleted kernel.
    parent_fd = _open_dir(path.parent.parent, follow=True)
    try:
        staging_fd = _staging_fd(parent_fd, path.parent.parent, is_shared(path.parent))
    finally:
        os.close(parent_fd)
    try:
        doomed = _random_name("removed.")
        folder_fd = _open_dir(path.parent, follow=True)
        try:
            os.rename(path.name, doomed, src_dir_fd=folder_fd, dst_dir_fd=staging_fd)
        finally:
            os.close(folder_fd)
        with contextlib.suppress(OSError):
            _rmtree_at(staging_fd, doomed)
    finally:
        os.close(staging_fd)
