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


# --- the notebook's own declaration (PEP 723 in a code cell, juv's format) ------------------------

#: PEP 723's reference regex, as juv uses it: ``# /// script`` ... ``# ///``, every line a comment.
SCRIPT_RE = r"(?m)^# /// (?P<type>[a-zA-Z0-9-]+)$\s(?P<content>(^#(| .*)$\s)+)^# ///$"
NOTEBOOK_LIMIT = 64 << 20  # notebooks with outputs grow large; the declaration check reads them whole
SCAN_LIMIT = 200  # notebooks read in one folder when nothing names the notebook
BUILT = "built.json"  # written last by the builder: the environment is complete
FAILED = "failed.json"  # the last build's error, shown once as the kernel's first output
REQUEST = "request.json"  # what the launcher asks the builder to build
UV_PLACES = (".local/bin/uv", ".cargo/bin/uv", "/usr/local/bin/uv", "/opt/homebrew/bin/uv", "/usr/bin/uv")
UV_HINT = (
    "install uv (https://docs.astral.sh/uv/getting-started/installation/: `curl -LsSf "
    "https://astral.sh/uv/install.sh | sh`, or `pipx install uv`, or `pip install uv` into kernelkeeper's "
    "environment), then restart the kernel"
)


class Declaration:
    """A notebook's PEP 723 block: the block's text, juv's lock (notebook metadata ``uv.lock``), the cache key."""

    __slots__ = ("block", "key", "lock", "notebook")

    def __init__(self, notebook: str, block: str, lock: str | None) -> None:
        import json

        self.notebook = notebook
        self.block = block
        self.lock = lock
        body = "".join(line[2:] if line.startswith("# ") else line[1:] for line in block.splitlines(True)[1:-1])
        canonical: object = _toml(body)
        if canonical is None:  # Python < 3.11 and more than the simple subset: the text, as written
            canonical = [line.rstrip() for line in block.splitlines()]
        machine = os.uname().machine if hasattr(os, "uname") else ""
        what = {"v": 1, "declared": canonical, "lock": lock, "platform": f"{sys.platform}-{machine}"}
        self.key = _sha256(json.dumps(what, sort_keys=True).encode())[:20]


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _toml(body: str) -> dict[str, object] | None:
    """``body`` as tomllib reads it; None on Python < 3.11 (uv parses it then, and says what is wrong).

    Raises ``ValueError`` (tomllib's ``TOMLDecodeError``, or too deep for it) when it is not TOML.
    """
    try:
        import tomllib  # type: ignore[import-not-found,unused-ignore]  # 3.11+
    except ImportError:
        return None
    try:
        return dict(tomllib.loads(body))
    except RecursionError:  # `a = [[[[...` a thousand deep: tomllib recurses; a first output, not a dead kernel
        raise ValueError("arrays or tables nested too deeply") from None


def declaration(notebook: str, data: bytes | None = None) -> Declaration | str | None:
    """The notebook's declaration, None when it has none, or a string saying why it cannot be read.

    The block is looked for in the first code cell that has one (juv's rule: ``juv add`` keeps it in
    a hidden first cell, but a person may move a markdown cell above it).
    """
    if data is None:
        got = read_file(notebook, NOTEBOOK_LIMIT)
        if got is None:
            return None
        data = got[0]
    if b"# /// script" not in data:  # the common case costs no JSON parse
        return None
    import json
    import re

    try:
        nb = json.loads(data.decode("utf-8"))
        cells = nb.get("cells") or []
    except (ValueError, AttributeError, RecursionError) as e:
        return f"{notebook} is not a notebook JSON file ({e})"
    for cell in cells if isinstance(cells, list) else []:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        blocks = [m for m in re.finditer(SCRIPT_RE, source.strip() + "\n") if m.group("type") == "script"]
        if not blocks:
            if "# /// script" in source:
                return (
                    "its `# /// script` block does not parse: every line up to a closing `# ///` must start with "
                    "`#` (PEP 723)"
                )
            continue
        if len(blocks) > 1:
            return "its code cell has more than one `# /// script` block"
        block = blocks[0].group(0)
        body = "".join(
            line[2:] if line.startswith("# ") else line[1:] for line in blocks[0].group("content").splitlines(True)
        )
        problem = _check_toml(body)
        if problem:
            return f"its `# /// script` block does not parse: {problem}"
        meta = nb.get("metadata") if isinstance(nb, dict) else None
        lock = meta.get("uv.lock") if isinstance(meta, dict) else None
        return Declaration(notebook, block + "\n", lock if isinstance(lock, str) and lock.strip() else None)
    return None


def _check_toml(body: str) -> str | None:
    try:
        data = _toml(body)
    except ValueError as e:  # tomllib.TOMLDecodeError
        return str(e)
    if data is None:  # Python < 3.11 runs the launcher: uv parses it and says what is wrong
        return None
    deps = data.get("dependencies", [])
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        return "`dependencies` must be a list of strings"
    if not isinstance(data.get("requires-python", ""), str):
        return "`requires-python` must be a string"
    if not isinstance(data.get("tool", {}), dict):
        return "`tool` must be a table"
    return None


def _parent_notebooks() -> list[str]:
    """Notebooks named on the command line of the process that started the kernel (papermill, jupyter execute)."""
    ppid = os.getppid()
    got = read_file(f"/proc/{ppid}/cmdline", 1 << 20)
    if got is None:
        return []
    try:
        pcwd = os.readlink(f"/proc/{ppid}/cwd")
    except OSError:
        return []
    out = []
    for arg in got[0].decode("utf-8", errors="replace").split("\0"):
        if arg.endswith(".ipynb"):
            out.append(os.path.normpath(os.path.join(pcwd, arg)))
    return out


def which_notebook(cwd: str, session: str | None) -> tuple[Declaration | str | None, str | None]:
    """(the declaration of the notebook this kernel is for, or why it cannot be read; a notice when unsure).

    jupyter_server names the notebook in ``JPY_SESSION_NAME`` (absolute when the client names it,
    else relative to the server's root, and the kernel starts in the notebook's folder). Without it
    (nbclient, papermill): a notebook on the starting process's command line that is in the working
    directory, else the working directory's only notebook with a declaration.
    """
    if session and session.endswith(".ipynb"):
        path = session if os.path.isabs(session) else os.path.join(cwd, os.path.basename(session))
        if os.path.isfile(path):
            return declaration(path), None
    try:
        names = sorted(n for n in os.listdir(cwd) if n.endswith(".ipynb"))[:SCAN_LIMIT]
    except OSError:
        return None, None
    if not names:
        return None, None
    found: dict[str, Declaration | str] = {}
    for name in names:
        got = declaration(os.path.join(cwd, name))
        if got is not None:
            found[os.path.join(cwd, name)] = got
    if len(found) <= 1:
        return next(iter(found.values()), None), None
    named = [p for p in _parent_notebooks() if p in found]
    if named:
        return found[named[0]], None
    listed = ", ".join(os.path.basename(p) for p in found)
    return None, (
        f"kernelkeeper: several notebooks in {cwd} declare their own dependencies ({listed}) and nothing told "
        f"this kernel which one it runs for, so it runs {sys.executable}. Open the notebook in Jupyter (which names "
        f"it), run it with papermill or `jupyter execute` naming it, or give the kernel JPY_SESSION_NAME=<the "
        f"notebook's path> (nbclient: client.execute(env=...))."
    )


def envs_root() -> str:
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(home(), ".cache")
    return os.environ.get("KERNELKEEPER_NOTEBOOK_ENVS") or os.path.join(cache, "kernelkeeper", "notebook-envs")


def find_uv(path: str | None = None) -> str | None:
    """uv on ``path`` (default: PATH), else next to kernelkeeper's Python, else where its installers put it.

    A script named uv (pyenv's or asdf's shim: bash that finds the real uv, 150-250 ms per
    call here) is taken only when no uv binary is found in any of those places.
    """
    search = os.environ.get("PATH", "") if path is None else path
    places = [os.path.join(p, "uv") for p in search.split(os.pathsep) if p]
    places.append(os.path.join(os.path.dirname(sys.executable), "uv"))
    places += [p if os.path.isabs(p) else os.path.join(home(), p) for p in UV_PLACES]
    script = None
    for path in places:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            if not _is_script(path):
                return path
            script = script or path
    return script


def _is_script(path: str) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return False
    try:
        return os.read(fd, 2) == b"#!"
    except OSError:
        return False
    finally:
        os.close(fd)


def _json(path: str) -> dict[str, object] | None:
    got = read_file(path)
    if got is None:
        return None
    import json

    try:
        data = json.loads(got[0].decode("utf-8"))
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def _record_use(folder: str, notebook: str) -> None:
    """``used/<hash>`` holds the notebook's path; its mtime is when it last started this environment."""
    used = os.path.join(folder, "used")
    try:
        os.makedirs(used, exist_ok=True)
        path = os.path.join(used, _sha256(notebook.encode())[:16])
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        try:
            os.write(fd, notebook.encode())
        finally:
            os.close(fd)
    except OSError:
        pass  # a read-only cache still runs the kernel


class _Builder:
    """The forked builder, as much of ``subprocess.Popen`` as the wait needs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def _reaped(self, status: int) -> int:
        self.returncode = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status)
        return self.returncode

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self._reaped(status)
        return self.returncode

    def wait(self) -> int:
        if self.returncode is None:
            return self._reaped(os.waitpid(self.pid, 0)[1])
        return self.returncode


def _spawn_builder(folder: str, decl: Declaration) -> tuple[str, _Builder, int]:
    """Start the detached builder (it outlives this kernel's start); return its log, the process, a pipe.

    The builder is a fork of this launcher (standard library only, already loaded): the common
    build is one ``uv sync``, and starting a Python that imports kernelkeeper for it cost more
    than the sync. It holds the pipe's write end until it exits, so the launcher waits on the
    pipe, not by polling.
    """
    import json

    os.makedirs(folder, exist_ok=True)
    request = {"notebook": decl.notebook, "block": decl.block, "lock": decl.lock, "key": decl.key}
    tmp = os.path.join(folder, f".{REQUEST}.{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(request, f)
    os.replace(tmp, os.path.join(folder, REQUEST))
    log = os.path.join(folder, "build.log")
    import select  # noqa: F401 - for the launcher's wait and the builder's (loaded once, before the fork)

    done_r, done_w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the builder: its own session, output into the log, in the environment's folder
        code = 1
        try:
            os.setsid()
            os.close(done_r)
            out = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            os.dup2(null, 0)
            os.dup2(out, 1)
            os.dup2(out, 2)
            os.chdir(folder)
            for name in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT"):
                os.environ.pop(name, None)
            code = fast_build(folder, done_w)
        except BaseException as e:  # whatever it is: into the log, and never back into the caller
            os.write(2, f"the builder failed: {e!r}\n".encode())
        finally:
            os._exit(code)
    os.close(done_w)
    return log, _Builder(pid), done_r


def fast_build(folder: str, done: int | None = None) -> int:
    """The common first build, standard library only: ``uv sync`` into ``folder/env``, then ``built.json``.

    Anything else — a failed sync (the full builder tries offline and writes uv's message into
    ``failed.json``), no overlay for the environment's Python (the full builder makes it), no
    request, no uv — replaces this process with ``python -I -m kernelkeeper.notebookenv build``,
    which starts again from nothing under the same lock. ``done``, the launcher's pipe, is not
    inherited by uv (its exit alone ends the wait) and is inherited by the full builder.
    """
    import fcntl
    import json
    import time

    started = time.monotonic()
    prefix = os.path.join(folder, "env")
    fd = os.open(os.path.join(folder, ".lock"), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # one builder per environment; a second one waits, then finds it built
        if os.path.exists(os.path.join(folder, BUILT)) and _overlay(prefix) is not None:
            return 0
        request = _json(os.path.join(folder, REQUEST))
        uv = find_uv()
        if request is not None and uv is not None and not os.path.lexists(prefix):
            script = os.path.join(folder, "script.py")
            with open(script, "w", encoding="utf-8") as f:
                f.write(str(request.get("block", "")))
            lock = os.path.join(folder, "script.py.lock")
            if request.get("lock"):
                with open(lock, "w", encoding="utf-8") as f:
                    f.write(str(request["lock"]))
            elif os.path.exists(lock):
                os.unlink(lock)
            cmd = [uv, "sync", "--script", script, "--active", "--no-progress"]
            print("$ " + " ".join(cmd), flush=True)
            drop = ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "PYTHONPATH")
            env = {**{k: v for k, v in os.environ.items() if k not in drop}, "VIRTUAL_ENV": prefix}
            code = _run_uv(cmd, env)  # in folder: the builder's working directory
            overlay = _overlay(prefix) if code == 0 else None
            if overlay is not None:
                seconds = round(time.monotonic() - started, 2)
                info = {
                    "key": request.get("key"),
                    "notebook": request.get("notebook"),
                    "python": os.path.join(prefix, "bin", "python"),
                    "overlay": overlay,
                    "locked": bool(request.get("lock")),
                    "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "seconds": seconds,
                }
                try:  # noqa: SIM105 - contextlib is one more import
                    os.unlink(os.path.join(folder, FAILED))
                except OSError:
                    pass
                tmp = os.path.join(folder, f".{BUILT}.{os.getpid()}")
                with open(tmp, "w", encoding="utf-8") as f:
                    json.dump(info, f, indent=1)
                os.replace(tmp, os.path.join(folder, BUILT))
                print(f"ready: {prefix} ({seconds} s)", flush=True)
                return 0
    finally:
        os.close(fd)
    print("handing over to the full builder", flush=True)
    sys.stdout.flush()
    if done is not None:
        os.set_inheritable(done, True)
    os.execv(sys.executable, [sys.executable, "-I", "-m", "kernelkeeper.notebookenv", "build", folder])
    return 1  # not reached


def _run_uv(cmd: list[str], env: dict[str, str], timeout: int = 3600) -> int:
    """Run ``cmd`` here, with this process's stdin and output; its exit code (killed after ``timeout``).

    A blocking wait: ``subprocess.call(timeout=...)`` polls with sleeps growing to 50 ms, and
    noticed uv's exit 20-35 ms late (a fifth of a whole build). On Linux the timeout is a
    ``select`` on a pidfd (``select`` is already loaded: importing ``signal`` costs ~1 ms here),
    elsewhere an alarm.
    """
    pid = os.posix_spawn(cmd[0], cmd, env)
    if hasattr(os, "pidfd_open"):
        import select

        try:
            fd = os.pidfd_open(pid)
        except OSError:  # a kernel before 5.3
            fd = None
        if fd is not None:
            try:
                exited = select.select([fd], [], [], timeout)[0]
            finally:
                os.close(fd)
            if not exited:
                os.kill(pid, 9)  # SIGKILL
                os.waitpid(pid, 0)
                raise TimeoutError(f"{cmd[0]} ran for more than {timeout} s")
            return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    import signal

    def expired(signum: int, frame: object) -> None:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise TimeoutError(f"{cmd[0]} ran for more than {timeout} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(timeout)
    try:
        _, status = os.waitpid(pid, 0)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    return os.waitstatus_to_exitcode(status)


def _wait_for_build(folder: str, log: str, proc: _Builder, seconds: float, done: int) -> bool:
    """Wait up to ``seconds`` for the build, relaying its log to stderr (the server log); True when built.

    ``done`` is a pipe's read end whose write end only the builder holds: it reads end-of-file the
    moment the builder exits. A builder that exits without a result (it could not even start)
    leaves ``failed.json`` with its log.
    """
    import select
    import time

    deadline = time.monotonic() + seconds
    shown = 0
    try:
        while True:
            got = read_file(log, 16 << 20)
            if got and len(got[0]) > shown:
                for line in got[0][shown:].decode("utf-8", errors="replace").splitlines():
                    print(f"kernelkeeper build: {line}", file=sys.stderr)
                shown = len(got[0])
            if os.path.exists(os.path.join(folder, BUILT)):
                return True
            left = deadline - time.monotonic()
            if os.path.exists(os.path.join(folder, FAILED)) or left <= 0:
                return False
            if proc.poll() is not None:
                if not os.path.exists(os.path.join(folder, FAILED)):
                    import json

                    tail = (got[0][-2000:] if got else b"").decode("utf-8", errors="replace")
                    message = f"the builder exited with code {proc.returncode}:\n{tail}"
                    with open(os.path.join(folder, FAILED), "w", encoding="utf-8") as f:
                        json.dump({"message": message, "hint": ""}, f)
                return False
            # Wake at the builder's exit (end of file), else every second to relay its log.
            if select.select([done], [], [], min(1.0, left))[0] and not os.read(done, 1):
                proc.wait()  # end of file: it is exiting (its children do not hold the pipe)
    finally:
        os.close(done)


BUILDING_HOOK = (
    "def _kk_notice(*args, _said=[]):\n"
    "    import os\n"
    "    if not _said:\n"
    "        _said.append(1)\n"
    "        print({message!r})\n"
    "    elif 'done' not in _said and os.path.exists({built!r}):\n"
    "        _said.append('done')\n"
    "        print('kernelkeeper: the notebook\\'s environment is ready: restart the kernel to use it.')\n"
    "    elif 'done' not in _said and os.path.exists({failed!r}):\n"
    "        _said.append('done')\n"
    "        print('kernelkeeper: building the notebook\\'s environment failed; restart the kernel to see why.')\n"
    "get_ipython().events.register('pre_run_cell', _kk_notice)\n"
)


def _notebook_trust(decl: Declaration) -> str | None:
    """A refusal when someone else could have written the declaration (building runs what it names)."""
    if not hasattr(os, "geteuid"):
        return None
    checker = Checker()
    real = os.path.realpath(decl.notebook)
    found = [checker.path(real, sticky_ok=False), checker.above(os.path.dirname(real))]
    problems = list(dict.fromkeys(p for p in found if p))
    if not problems:
        return None
    folder = os.path.dirname(real)
    trusted, notes = trusted_by([real])
    if trusted:
        return None
    shown = "; ".join(problems[:3])
    extra = "".join(f" ({n})" for n in notes)
    return (
        f"kernelkeeper: did not build or run the environment {decl.notebook} declares: {shown}. Building it installs "
        f"and runs the packages the notebook names, and someone other than you could have written that, so this "
        f"kernel runs {sys.executable} instead, without the notebook's folder on sys.path.{extra} If you trust "
        f"{folder}: `kernelkeeper trust {_quote(folder)}`, then restart the kernel."
    )


def declared_plan(decl: Declaration, argv: list[str]) -> tuple[str, list[str], dict[str, str], str | None]:
    """Run the environment the notebook declares: from the cache, or built now (or in the background)."""
    refused = _notebook_trust(decl)
    if refused:
        return _fallback(refused, argv)
    folder = os.path.join(envs_root(), decl.key)
    prefix = os.path.join(folder, "env")
    name = os.path.basename(decl.notebook)
    ready = os.path.exists(os.path.join(folder, BUILT)) and _python(prefix) is not None
    if ready and _overlay(prefix) is None:
        ready = False  # the overlay for its Python was removed: the builder makes it again
    if not ready:
        failed = _json(os.path.join(folder, FAILED))
        if failed is not None:
            try:  # noqa: SIM105 - contextlib is one more import in the launcher
                os.unlink(os.path.join(folder, FAILED))  # shown once; the next start tries again
            except OSError:
                pass
            return _fallback(
                f"kernelkeeper: could not build the environment {name} declares, so this kernel runs "
                f"{sys.executable}.\n{failed.get('message', '')}\n{failed.get('hint', '')} "
                f"(build log: {os.path.join(folder, 'build.log')})",
                argv,
            )
        if find_uv() is None:
            return _fallback(
                f"kernelkeeper: {name} declares its own dependencies (a `# /// script` block), and they are installed "
                f"with uv, which is not on this machine (looked on PATH, next to {sys.executable}, and in "
                f"~/.local/bin, ~/.cargo/bin, /usr/local/bin). This kernel runs {sys.executable} instead. Fix: "
                + UV_HINT,
                argv,
            )
        print(
            f"kernelkeeper: building the environment {name} declares in {folder} (uv; log: {folder}/build.log)",
            file=sys.stderr,
        )
        log, proc, done = _spawn_builder(folder, decl)
        try:
            wait = float(os.environ.get("KERNELKEEPER_BUILD_WAIT", "30"))
        except ValueError:
            wait = 30.0
        if not _wait_for_build(folder, log, proc, wait, done):
            failed = _json(os.path.join(folder, FAILED))
            if failed is not None:
                return declared_plan(decl, argv)  # shows the failure
            notice = (
                f"kernelkeeper: the environment {name} declares is still being built (log: {log}); until it is ready "
                f"this kernel runs {sys.executable}. Restart the kernel when it is done — this notebook will say so "
                f"when you next run a cell."
            )
            code = NOTICE.format(
                code=BUILDING_HOOK.format(
                    message=notice, built=os.path.join(folder, BUILT), failed=os.path.join(folder, FAILED)
                )
            )
            return sys.executable, [sys.executable, "-I", "-c", code, *argv], dict(os.environ), notice
    python = _python(prefix)
    overlay = _overlay(prefix)
    if python is None or overlay is None:
        return _fallback(
            f"kernelkeeper: the environment built for {name} in {prefix} is incomplete; "
            f"run `kernelkeeper cache remove {decl.key}` and restart the kernel.",
            argv,
        )
    problems = env_problems(prefix, python, overlay) if hasattr(os, "geteuid") else []
    if problems and not trusted_by([prefix])[0]:
        return _fallback(refusal(prefix, None, problems, []), argv)
    _record_use(folder, decl.notebook)
    code = (
        f"import site, sys; site.addsitedir({overlay!r}); sys.path[0] == '' and sys.path.pop(0); "
        "from ipykernel import kernelapp as app; app.launch_new_instance()"
    )
    env = activation(prefix, python)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["KERNELKEEPER_NOTEBOOK"] = decl.notebook
    return python, [python, "-c", code, *argv], env, None


def plan(
    cwd: str, argv: list[str], session: str | None = None, start: str | None = None
) -> tuple[str, list[str], dict[str, str], str | None]:
    """(executable, argv, environment, notice) — what the kernel process becomes.

    In order: the notebook's own declaration (``cwd`` is the kernel's working directory,
    ``session`` jupyter_server's ``JPY_SESSION_NAME``), then the project's environment above
    ``start`` (the notebook's folder; default ``cwd``), then the explaining fallback.
    """
    decl, unsure = which_notebook(cwd, session)
    if isinstance(decl, Declaration):
        return declared_plan(decl, argv)
    if isinstance(decl, str):
        return _fallback(
            f"kernelkeeper: this notebook's declared environment cannot be read: {decl}. This kernel runs "
            f"{sys.executable} instead. Fix the `# /// script` block in the first code cell (PEP 723: TOML in `# ` "
            f'comment lines, e.g. `# dependencies = ["packaging"]`) and restart the kernel.',
            argv,
        )
    if unsure:
        return _fallback(unsure, argv)
    cwd = start or cwd
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
    session = os.environ.get("JPY_SESSION_NAME")
    executable, argv, env, notice = plan(cwd, sys.argv[1:], session, notebook_folder(cwd, session))
    if notice:
        print(notice, file=sys.stderr)
    os.execve(executable, argv, env)


if __name__ == "__main__":
    main()
