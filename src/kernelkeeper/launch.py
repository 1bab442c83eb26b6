"""The "Python (this project)" kernel: find the notebook's project at launch and run its environment.

Run as ``python -I -S .../kernelkeeper/launch.py -f {connection_file}`` with
the kernel's working directory set to the notebook's folder (Jupyter does
that). Standard library only and no ``site``, so it adds a few milliseconds:
it walks up from the working directory to the first project folder with an
environment — ``.venv``/``venv``/``env``, pixi's ``.pixi/envs/default``,
poetry's, pipenv's, hatch's or pdm's env for the folder, or the conda env
named in ``environment.yml`` — and replaces itself (``execve``) with that
environment's interpreter running ipykernel, the environment active. An
environment without ipykernel runs on the ipykernel overlay for its Python.

When nothing is found, or what is found is broken, the kernel still starts,
on the Python running this launcher, and the first cell's output says what was
looked for and the command that fixes it.

Trust (like sshd's StrictModes, sudo's path checks, direnv's ``allow``): an
environment runs only if the folders that decide what runs are owned by you or
root and writable by no one else — every folder walked from the notebook's
folder to the project folder, the environment's folder, ``bin``, ``lib``,
site-packages and ``pyvenv.cfg``, the interpreter and every link on its way,
and every folder above the environment and the interpreter up to ``/`` (a
root-owned sticky folder such as ``/tmp`` is fine above them; a group-writable
folder is fine when the group is your private group). Otherwise it runs only
when the project or the environment is at or below a folder recorded by
``kernelkeeper trust DIR`` in ``<data dir>/kernelkeeper/trusted.json``. A
refusal starts the kernel on the launcher's own Python, isolated from the
notebook's folder (``-I``), and the first output says what was refused and why.
"""

from __future__ import annotations

import os
import stat
import sys

# base64, hashlib and re are imported where needed: the common case (a .venv with ipykernel)
# needs none of them, and hashlib alone costs ~20 ms of the launcher's start.

ENV_DIRS = (".venv", "venv", "env")
READ_LIMIT = 1 << 20  # far above any pyproject.toml, Pipfile, environment.yml or trust file
TRUST_FILE = ("kernelkeeper", "trusted.json")  # below data_home()
UNLISTED = " (could not list it: permission denied)"
NOTICE = (
    "from traitlets.config import Config\n"
    "from ipykernel.kernelapp import IPKernelApp\n"
    "c = Config()\n"
    "c.IPKernelApp.exec_lines = [{code!r}]\n"
    "c.InteractiveShellApp.ignore_cwd = True\n"
    "IPKernelApp.launch_instance(config=c)\n"
)
HOOK = (
    "def _kk_notice(*args, _said=[]):\n"
    "    if not _said:\n"
    "        _said.append(1)\n"
    "        print({message!r})\n"
    "get_ipython().events.register('pre_run_cell', _kk_notice)\n"
)


def home() -> str:
    return os.environ.get("HOME") or os.path.expanduser("~")


def data_home() -> str:
    return os.environ.get("XDG_DATA_HOME") or os.path.join(home(), ".local", "share")


def _b64(digest: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(digest).decode()[:8]


def _is_env(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "pyvenv.cfg")) or os.path.isdir(os.path.join(path, "conda-meta"))


def read_file(path: str, limit: int = READ_LIMIT) -> tuple[bytes, os.stat_result] | None:
    """(content, fstat) of a regular file of at most ``limit`` bytes; None for anything else.

    The launcher's copy of ``safeio.read_bytes``: ``O_NONBLOCK`` so a FIFO planted as
    pyproject.toml never blocks the kernel's start, ``fstat`` on the open descriptor.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except (OSError, ValueError):
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
            return None
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
        return b"".join(chunks), st
    except OSError:
        return None
    finally:
        os.close(fd)


def _read(path: str) -> str:
    got = read_file(path)
    return got[0].decode("utf-8", errors="replace") if got else ""


def _poetry(folder: str, pyproject: str) -> str | None:
    import hashlib
    import re

    m = re.search(r'(?ms)^\[(?:tool\.poetry|project)\][^\[]*?^name\s*=\s*"([^"]+)"', pyproject)
    if not m:
        return None
    name = re.sub(r"[-_.]+", "-", m.group(1)).lower()
    name = re.sub(r'[ $`!*@"\\\r\n\t]', "_", name)[:42]
    digest = _b64(hashlib.sha256(os.path.normcase(os.path.realpath(folder)).encode()).digest())
    venvs = os.environ.get("POETRY_VIRTUALENVS_PATH") or os.path.join(
        os.environ.get("POETRY_CACHE_DIR")
        or os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.join(home(), ".cache"), "pypoetry"),
        "virtualenvs",
    )
    try:
        names = sorted(os.listdir(venvs), reverse=True)
    except OSError:
        return None
    for entry in names:
        if entry.startswith(f"{name}-{digest}-py") and _is_env(os.path.join(venvs, entry)):
            return os.path.join(venvs, entry)
    return None


def _pipenv(folder: str) -> str | None:
    workon = os.environ.get("WORKON_HOME") or os.path.join(data_home(), "virtualenvs")
    try:
        names = os.listdir(workon)
    except OSError:
        return None
    for entry in names:
        if _read(os.path.join(workon, entry, ".project")).strip() == folder:
            return os.path.join(workon, entry)
    return None


def _hatch(folder: str, pyproject: str) -> str | None:
    import hashlib
    import re

    m = re.search(r'(?ms)^\[project\][^\[]*?^name\s*=\s*"([^"]+)"', pyproject)
    if not m:
        return None
    name = re.sub(r"[-_.]+", "-", m.group(1)).lower()
    root = os.environ.get("HATCH_DATA_DIR") or os.path.join(data_home(), "hatch")
    env = os.path.join(root, "env", "virtual", name, _b64(hashlib.sha256(folder.encode()).digest()), name)
    return env if _is_env(env) else None


def _pdm(folder: str) -> str | None:
    import hashlib

    venvs = os.path.join(data_home(), "pdm", "venvs")
    key = f"{os.path.basename(folder)}-{_b64(hashlib.md5(folder.encode()).digest())}-"
    try:
        names = sorted(os.listdir(venvs), reverse=True)
    except OSError:
        return None
    for entry in names:
        if entry.startswith(key) and _is_env(os.path.join(venvs, entry)):
            return os.path.join(venvs, entry)
    return None


def _conda(folder: str) -> str | None:
    import re

    m = re.search(r"(?m)^name:\s*['\"]?([^'\"\s]+)", _read(os.path.join(folder, "environment.yml")))
    if not m:
        return None
    name = m.group(1)
    bases = ["miniconda3", "anaconda3", "miniforge3", "mambaforge", "micromamba", ".conda"]
    candidates = [os.path.join(home(), b, "envs", name) for b in bases]
    candidates += [line.strip() for line in _read(os.path.join(home(), ".conda", "environments.txt")).splitlines()]
    for prefix in candidates:
        if os.path.basename(prefix) == name and os.path.isdir(os.path.join(prefix, "conda-meta")):
            return prefix
    return None


def _project_env(folder: str, names: set[str], pyproject: str) -> str | None:
    """The environment a tool keeps outside the project folder, by the tool's own naming."""
    if "poetry" in pyproject or "poetry.lock" in names:
        found = _poetry(folder, pyproject)
        if found:
            return found
    if "Pipfile" in names:
        found = _pipenv(folder)
        if found:
            return found
    if "hatch" in pyproject:
        found = _hatch(folder, pyproject)
        if found:
            return found
    if "pdm" in pyproject or "pdm.lock" in names:
        found = _pdm(folder)
        if found:
            return found
    if "environment.yml" in names:
        return _conda(folder)
    return None


def find_env(start: str) -> tuple[str | None, str | None, list[str]]:
    """(prefix, project folder, what was looked for) for the first project above ``start``."""
    looked: list[str] = []
    folder = os.path.abspath(start)
    while True:
        for name in ENV_DIRS:
            candidate = os.path.join(folder, name)
            if _is_env(candidate):
                return candidate, folder, looked
        pixi = os.path.join(folder, ".pixi", "envs", "default")
        if os.path.isdir(os.path.join(pixi, "conda-meta")):
            return pixi, folder, looked
        try:
            names = set(os.listdir(folder))
            looked.append(folder)
        except PermissionError:
            # Not ours to list (another user's folder on the way up): nothing found here, go on.
            looked.append(folder + UNLISTED)
            names = set()
        except OSError:
            names = set()
            looked.append(folder)
        if names & {"pyproject.toml", "Pipfile", "environment.yml", "pixi.toml", "setup.py", "requirements.txt"}:
            prefix = _project_env(folder, names, _read(os.path.join(folder, "pyproject.toml")))
            if prefix:
                return prefix, folder, looked
            looked.append(f"{folder} is a project, but none of its environments exists")
            return None, folder, looked
        parent = os.path.dirname(folder)
        if parent == folder:
            return None, None, looked
        folder = parent


def _python(prefix: str) -> str | None:
    for name in ("bin/python", "bin/python3", "python.exe", "Scripts/python.exe"):
        path = os.path.join(prefix, name)
        if os.path.exists(path):
            return path
    return None


def _site_packages(prefix: str) -> list[str]:
    lib = os.path.join(prefix, "lib")
    try:
        return [os.path.join(lib, n, "site-packages") for n in os.listdir(lib) if n.startswith(("python", "pypy"))]
    except OSError:
        return []


def _has_dist(prefix: str, project: str) -> bool:
    for site in _site_packages(prefix):
        try:
            if any(n.lower().startswith(project + "-") and n.endswith(".dist-info") for n in os.listdir(site)):
                return True
        except OSError:
            continue
    return False


def _overlay(prefix: str) -> str | None:
    import re

    minor = None
    for site in _site_packages(prefix):
        m = re.search(r"(python|pypy)(\d+\.\d+)", site)
        if m:
            impl, minor = ("pypy" if m.group(1) == "pypy" else "cpython"), m.group(2)
            root = os.environ.get("KERNELKEEPER_OVERLAYS") or os.path.join(data_home(), "kernelkeeper", "overlays")
            path = os.path.join(root, f"{impl}-{minor}", "site-packages")
            if os.path.isdir(os.path.join(path, "ipykernel")):
                return path
    return None


def activation(prefix: str, python: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(python) + os.pathsep + env.get("PATH", "")
    for leak in ("PYTHONHOME", "PYTHONPATH", "VIRTUAL_ENV", "CONDA_PREFIX", "CONDA_DEFAULT_ENV", "PIP_PYTHON"):
        env.pop(leak, None)
    if not _has_dist(prefix, "pip"):
        env["PIP_PYTHON"] = python  # `!pip install` without a pip in the environment: into it all the same
    if os.path.isdir(os.path.join(prefix, "conda-meta")):
        env["CONDA_PREFIX"] = prefix
        env["CONDA_DEFAULT_ENV"] = os.path.basename(prefix)
    else:
        env["VIRTUAL_ENV"] = prefix
    return env


# --- trust: who could have changed what is about to run -------------------------------------------


def _owner(uid: int) -> str:
    try:
        import pwd

        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (ImportError, KeyError):
        return f"uid {uid}"


def _private_group(gid: int) -> bool:
    """True when every member of the group is you or root (a user-private group, umask 002).

    Debian's OpenSSH patch ``user-group-modes`` accepts the same: members by primary group
    (the passwd database) and by the group's member list. Looked up only when a folder is
    group-writable, so the common path imports neither module.
    """
    try:
        import grp
        import pwd

        members = {p.pw_uid for p in pwd.getpwall() if p.pw_gid == gid}
        for name in grp.getgrgid(gid).gr_mem:
            members.add(pwd.getpwnam(name).pw_uid)
    except (ImportError, KeyError, OSError):
        return False
    return bool(members) and members <= {os.geteuid(), 0}


def _group(gid: int) -> str:
    try:
        import grp

        return f"{grp.getgrgid(gid).gr_name} (gid {gid})"
    except (ImportError, KeyError):
        return f"gid {gid}"


def problem(path: str, st: os.stat_result, *, sticky_ok: bool) -> str | None:
    """Why someone other than you or root could change ``path`` (None: no one can).

    ``sticky_ok``: a root-owned sticky folder (``/tmp``) is fine as a folder *above* what runs —
    others may add entries there, but not replace yours — never as the environment itself.
    """
    me = os.geteuid()
    if st.st_uid not in (me, 0):
        return f"{path} is owned by {_owner(st.st_uid)}, not by you or root"
    if stat.S_ISLNK(st.st_mode) or not st.st_mode & 0o022:
        return None
    if sticky_ok and st.st_uid == 0 and st.st_mode & stat.S_ISVTX and stat.S_ISDIR(st.st_mode):
        return None
    mode = stat.filemode(st.st_mode)
    if st.st_mode & 0o002:
        return f"{path} is writable by everyone (mode {mode})"
    if _private_group(st.st_gid):
        return None
    return f"{path} is writable by the group {_group(st.st_gid)} (mode {mode})"


class Checker:
    """The ownership checks, each path stat'ed once (ancestors are shared)."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, bool, bool], str | None] = {}

    def path(self, path: str, *, sticky_ok: bool, follow: bool = True) -> str | None:
        key = (path, sticky_ok, follow)
        if key not in self.seen:
            try:
                st = os.stat(path) if follow else os.lstat(path)
            except OSError as e:
                self.seen[key] = f"{path} cannot be checked ({e.strerror or e})"
            else:
                self.seen[key] = problem(path, st, sticky_ok=sticky_ok)
        return self.seen[key]

    def above(self, folder: str) -> str | None:
        """The first problem in ``folder`` (a real path) and every folder above it, up to ``/``."""
        while True:
            found = self.path(folder, sticky_ok=True)
            if found:
                return found
            parent = os.path.dirname(folder)
            if parent == folder:
                return None
            folder = parent

    def interpreter(self, python: str) -> str | None:
        """The interpreter, every link on the way to it, and the folders holding each."""
        path = python
        for _ in range(40):
            found = self.above(os.path.realpath(os.path.dirname(path))) or self.path(
                path, sticky_ok=False, follow=False
            )
            if found:
                return found
            if not os.path.islink(path):
                return None
            target = os.readlink(path)
            path = os.path.join(os.path.dirname(path), target) if not os.path.isabs(target) else target
        return f"{python} is a chain of more than 40 links"


def walk_problems(start: str, project: str) -> list[str]:
    """Problems in the folders the walk read, from the notebook's folder up to the project folder."""
    checker = Checker()
    out: list[str] = []
    folder = os.path.abspath(start)
    project = os.path.abspath(project)
    while True:
        found = checker.path(folder, sticky_ok=True)
        if found:
            out.append(found)
        parent = os.path.dirname(folder)
        if folder == project or parent == folder:
            return out
        folder = parent


def env_problems(prefix: str, python: str, overlay: str | None = None) -> list[str]:
    """Problems in what decides the code the environment runs (strict for its own folders)."""
    checker = Checker()
    real = os.path.realpath(prefix)
    strict = [real, os.path.join(real, "bin" if os.path.isdir(os.path.join(real, "bin")) else "Scripts")]
    lib = os.path.join(real, "lib")
    if os.path.isdir(lib):
        strict.append(lib)
        for site in _site_packages(real):
            strict += [os.path.dirname(site), site]  # a .pth file in site-packages runs at start-up
    out = [checker.path(p, sticky_ok=False) for p in strict if os.path.exists(p)]
    cfg = os.path.join(real, "pyvenv.cfg")  # its `home` picks the standard library
    if os.path.exists(cfg):
        out.append(checker.path(cfg, sticky_ok=False))
    out.append(checker.above(os.path.dirname(real)))
    out.append(checker.interpreter(python))
    if overlay:
        out.append(checker.above(os.path.realpath(overlay)))
    problems: list[str] = []
    for p in out:
        if p and p not in problems:
            problems.append(p)
    return problems


def trust_path() -> str:
    return os.path.join(data_home(), *TRUST_FILE)


def trusted_by(paths: list[str]) -> tuple[str | None, list[str]]:
    """(the trusted folder covering one of ``paths``, notes on entries or a trust file not used).

    The trust file counts only as a regular file owned by you, writable by no one else, in
    folders no one else can change: otherwise whoever could write it could trust their folder.
    An entry counts only while its folder has the owner it had when trusted (a folder deleted
    and made again by someone else is not the folder you trusted).
    """
    notes: list[str] = []
    path = trust_path()
    got = read_file(path)
    if got is None:
        return None, notes
    data, st = got
    checker = Checker()
    bad = problem(path, st, sticky_ok=False)
    if not bad and st.st_uid != os.geteuid():
        bad = f"{path} is owned by {_owner(st.st_uid)}, not by you"
    bad = bad or checker.above(os.path.dirname(os.path.realpath(path)))
    if bad:
        return None, [f"the trust file is not used: {bad}"]
    import json

    try:
        entries = json.loads(data.decode("utf-8")).get("trusted", [])
    except (ValueError, AttributeError, RecursionError):
        return None, [f"the trust file {path} is not valid JSON; run `kernelkeeper trust --list`"]
    real = [os.path.realpath(p) for p in paths]
    for entry in entries if isinstance(entries, list) else []:
        folder = entry.get("path") if isinstance(entry, dict) else None
        if not isinstance(folder, str) or not os.path.isabs(folder):
            continue
        if not any(r == folder or r.startswith(folder.rstrip(os.sep) + os.sep) for r in real):
            continue
        try:
            owner = os.stat(folder).st_uid
        except OSError:
            continue
        if owner != entry.get("owner_uid"):
            notes.append(
                f"{folder} was trusted when it belonged to {_owner(entry.get('owner_uid', -1))}; it now belongs to "
                f"{_owner(owner)}, so that trust no longer counts"
            )
            continue
        return folder, notes
    return None, notes


def _quote(path: str) -> str:
    safe = all(c.isalnum() or c in "/._-+,:@%=" for c in path)
    return path if safe and path else "'" + path.replace("'", "'\\''") + "'"


def refusal(prefix: str, project: str | None, problems: list[str], notes: list[str]) -> str:
    """The notice for an environment that is not run, with the command that allows it."""
    folder = project or prefix
    shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
    extra = "".join(f" ({n})" for n in notes)
    return (
        f"kernelkeeper: did not run the environment {prefix} for this notebook: {shown}. Someone other than you "
        f"could have put code there that would run as you, so this kernel runs {sys.executable} instead, "
        f"without the notebook's folder on sys.path.{extra} If you trust {folder}: "
        f"`kernelkeeper trust {_quote(folder)}`, then restart the kernel."
    )


def notebook_folder(cwd: str, session: str | None) -> str:
    """The folder of the notebook the kernel is for.

    jupyter_server sets ``JPY_SESSION_NAME`` to the notebook's absolute path when the client
    names the notebook (JupyterLab and Notebook 7 do), else to its path relative to the
    server's root; it starts the kernel in the notebook's folder. An absolute path wins (the
    working directory can differ, e.g. with another contents manager); otherwise the working
    directory.
    """
    if session and os.path.isabs(session):
        folder = session if os.path.isdir(session) else os.path.dirname(session)
        if os.path.isdir(folder):
            return folder
    return cwd


def _fallback(notice: str, argv: list[str]) -> tuple[str, list[str], dict[str, str], str | None]:
    # -I: the notebook's folder (maybe the very folder that was refused) is not on sys.path, so a
    # traitlets.py or ipykernel/ planted there is not imported while the kernel starts.
    code = NOTICE.format(code=HOOK.format(message=notice))
    return sys.executable, [sys.executable, "-I", "-c", code, *argv], dict(os.environ), notice


def plan(cwd: str, argv: list[str]) -> tuple[str, list[str], dict[str, str], str | None]:
    """(executable, argv, environment, notice) — what the kernel process becomes."""
    prefix, project, looked = find_env(cwd)
    python = _python(prefix) if prefix else None
    if prefix and python:
        has_ipykernel = _has_dist(prefix, "ipykernel")
        overlay = None if has_ipykernel else _overlay(prefix)
        checks = hasattr(os, "geteuid")  # POSIX ownership; Windows has no such model here
        found = (walk_problems(cwd, project or prefix) + env_problems(prefix, python, overlay)) if checks else []
        problems = list(dict.fromkeys(found))
        if problems:
            trusted, notes = trusted_by([p for p in (project, prefix) if p])
            if not trusted:
                return _fallback(refusal(prefix, project, problems, notes), argv)
        if has_ipykernel:
            return python, [python, "-m", "ipykernel_launcher", *argv], activation(prefix, python), None
        if overlay:
            code = (
                f"import site, sys; site.addsitedir({overlay!r}); sys.path[0] == '' and sys.path.pop(0); "
                "from ipykernel import kernelapp as app; app.launch_new_instance()"
            )
            env = activation(prefix, python)
            env["PYTHONDONTWRITEBYTECODE"] = "1"  # the environment stays as it was
            return python, [python, "-c", code, *argv], env, None
        notice = (
            f"kernelkeeper: {prefix} has no ipykernel and no overlay is built for its Python, so this kernel "
            f"runs {sys.executable} instead. Fix: kernelkeeper overlay build {prefix}"
        )
    elif prefix:
        notice = (
            f"kernelkeeper: {prefix} has no working interpreter; running {sys.executable}. Recreate the environment."
        )
    else:
        where = f"the project {project}" if project else f"{cwd} or any folder above it"
        unlisted = [f[: -len(UNLISTED)] for f in looked if f.endswith(UNLISTED)]
        skipped = f" Could not list (permission denied): {', '.join(unlisted)}." if unlisted else ""
        notice = (
            f"kernelkeeper: no environment found for {where} (looked for .venv, venv, env, .pixi, and poetry, "
            f"pipenv, hatch, pdm and conda environments), so this kernel runs {sys.executable}.{skipped} "
            f"Fix: create the project's environment (e.g. `uv venv` in the project folder) and restart the kernel."
        )
    return _fallback(notice, argv)


def main() -> None:
    try:
        cwd = os.getcwd()
    except OSError:  # the folder was deleted under the server
        cwd = "/"
    executable, argv, env, notice = plan(notebook_folder(cwd, os.environ.get("JPY_SESSION_NAME")), sys.argv[1:])
    if notice:
        print(notice, file=sys.stderr)
    os.execve(executable, argv, env)


if __name__ == "__main__":
    main()
