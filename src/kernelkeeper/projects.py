"""Find project folders and the environments that live inside them.

A bounded walk: at most ``depth`` levels below each root and ``max_dirs``
folders per root, never into an environment, a VCS folder or node_modules,
following symlinked folders only once (a loop is reported, not followed).
What it could not read or chose not to enter is returned as `Skipped`.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from . import safeio
from .context import CODE_FOLDERS, Context
from .environments import PyvenvCfgs, as_path

_LIBPY_RE = re.compile(r"^(python|pypy)\d+\.\d+$")
_SEP = os.sep
# A path ending with one of these is joined without another separator (os.path.join's rule).
_SEPS = (os.sep, os.altsep) if os.altsep else (os.sep,)
# Folders inside a project that hold its environment.
ENV_FOLDERS = (".venv", "venv", "env", ".env")
PROJECT_FILES = frozenset(
    {
        "pyproject.toml",
        "setup.py",
        "setup.cfg",
        "requirements.txt",
        "Pipfile",
        "poetry.lock",
        "pdm.lock",
        "uv.lock",
        "pixi.toml",
        "environment.yml",
        "hatch.toml",
        "poetry.toml",
    }
)
# Files in a walked folder that discovery reads: project markers, and what makes it an environment.
_READ_FILES = PROJECT_FILES | {"pyvenv.cfg"}
# Of those, the ones whose content discovery reads (the tool a project uses, where poetry puts
# its envs, an environment's own settings); the others count by their presence alone. Code that
# starts reading another marker file must add it here, or the provider would not see it change.
CONTENT_FILES = frozenset({"pyproject.toml", "poetry.toml", "pyvenv.cfg"})
# Never descended into: they are big and hold no projects of their own.
_PRUNE = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "node_modules",
        "__pycache__",
        "site-packages",
        ".tox",
        ".nox",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".cache",
        "build",
        "dist",
        ".ipynb_checkpoints",
    }
)


@dataclass(frozen=True)
class Skipped:
    path: Path
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"path": str(self.path), "reason": self.reason}


class Project:
    """A folder that looks like a project: its marker files and env folders.

    Paths are kept as strings (the walk meets thousands of folders); ``path`` is the
    `Path` callers see, made once, when first asked for.
    """

    __slots__ = ("_path", "_pyproject", "envs", "files", "folder", "pixi_envs")

    def __init__(self, folder: str, files: frozenset[str]) -> None:
        self.folder = folder
        self.files = files
        self.envs: list[str] = []
        self.pixi_envs: list[str] = []
        self._path: Path | None = None
        self._pyproject: str | None = None

    def __repr__(self) -> str:
        return f"Project({self.folder!r}, {sorted(self.files)!r})"

    @property
    def path(self) -> Path:
        if self._path is None:
            self._path = as_path(self.folder)
        return self._path

    @property
    def name(self) -> str:
        return os.path.basename(self.folder)

    def pyproject_text(self) -> str:
        if self._pyproject is None:
            try:
                self._pyproject = safeio.read_text(os.path.join(self.folder, "pyproject.toml"))
            except (OSError, ValueError):
                self._pyproject = ""
        return self._pyproject

    def uses(self, tool: str) -> bool:
        """Whether the project is managed by poetry, pdm, uv, hatch or pipenv (by its files)."""
        lock = _LOCKS.get(tool)
        if lock in self.files:
            return True
        if tool == "pipenv" or "pyproject.toml" not in self.files:
            return False
        if tool == "hatch" and "hatch.toml" in self.files:
            return True
        text = self.pyproject_text()
        if f"[tool.{tool}" in text:
            return True
        return tool == "hatch" and "hatchling" in text and "[tool.hatch" in text


_LOCKS = {"poetry": "poetry.lock", "pdm": "pdm.lock", "uv": "uv.lock", "pipenv": "Pipfile"}


class RealPaths:
    """``os.path.realpath`` that remembers what it resolved, for one scan.

    Thousands of environments share a few parent folders: each new path costs one
    lstat (is its last part a link?) instead of one per part of the path, and none
    when the folder listing that found it already said it is no link (`note`).
    """

    def __init__(self) -> None:
        self._memo: dict[str, str] = {}

    def __call__(self, path: str) -> str:
        hit = self._memo.get(path)
        if hit is not None:
            return hit
        if not os.path.isabs(path) or os.path.normpath(path) != path:
            return os.path.realpath(path)  # "..", "." or "//": leave those to the library
        parent, name = os.path.split(path)
        if not name:
            return path  # the root
        candidate = os.path.join(self(parent), name)
        result = os.path.realpath(candidate) if os.path.islink(candidate) else candidate
        self._memo[path] = result
        return result

    def note(self, path: str, real: str) -> None:
        """Remember ``real`` as ``path``'s realpath, learnt while listing its parent."""
        self._memo[path] = real

    def child(self, parent: str, entry: os.DirEntry[str]) -> None:
        """Remember where a listed entry that is no symlink resolves: inside its parent's realpath."""
        self.children(parent, (entry,))

    def children(self, parent: str, entries: Iterable[os.DirEntry[str]]) -> None:
        """`child` for several entries of one listing: the parent is resolved once."""
        base = self(parent)
        if not base.endswith(_SEPS):
            base += _SEP  # what os.path.join puts between them
        memo = self._memo
        for entry in entries:
            try:
                if entry.is_symlink():
                    continue
            except OSError:  # no d_type from this filesystem, and the lstat failed: leave it to __call__
                continue
            memo[entry.path] = base + entry.name


@dataclass
class ProjectScan:
    projects: list[Project] = field(default_factory=list)
    # Environments met while walking that belong to no project (``~/code/myenv``).
    loose_envs: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    # Every folder listed: a new or deleted project or env changes one of their mtimes.
    visited: list[str] = field(default_factory=list)
    # What the walk read in each of them (see `signature`), when it listed them.
    signatures: dict[str, Signature] = field(default_factory=dict)
    # The files whose content discovery reads where no listing would see them change: the walked
    # folders' `CONTENT_FILES` (an editor or ``poetry add`` rewrites them in place) and the
    # locators' reads (an env's ``.project``). Discovery watches them too.
    content_files: list[str] = field(default_factory=list)
    # realpath for this scan, remembering the folders it resolved.
    realpath: RealPaths = field(default_factory=RealPaths)
    # pyvenv.cfg for this scan: the locators and merge read the same files.
    cfgs: PyvenvCfgs = field(default_factory=PyvenvCfgs)
    _by_hash: dict[str, Project] | None = None

    def by_path_hash(self) -> dict[str, Project]:
        """Projects keyed by the 8-character path hash poetry and pipenv put in env names."""
        if self._by_hash is None:
            # poetry hashes the resolved path, hatch the path as given: index both.
            by_hash: dict[str, Project] = {}
            for p in self.projects:
                real = os.path.normcase(self.realpath(p.folder))
                by_hash[_hash8(real)] = p
                if real != p.folder:  # else the same hash, just set
                    by_hash.setdefault(_hash8(p.folder), p)
            self._by_hash = by_hash
        return self._by_hash


Signature = tuple[tuple[str, int], ...]


def signature(entries: Iterable[os.DirEntry[str]]) -> Signature:
    """What discovery reads in a walked folder: its subfolders (name, inode) and marker files.

    A marker file whose content discovery reads (`CONTENT_FILES`) is recorded with its
    mtime; any other (a lock file, requirements.txt, setup.py...) counts only by being
    there, so it is recorded with 0 and costs no stat. Saving a notebook in a project
    folder, or ``poetry lock`` rewriting poetry.lock, moves the folder's mtime but not its
    signature, so the provider need not scan again; a new, deleted or recreated
    subfolder, a new or deleted marker file, or a changed pyproject.toml changes it.
    """
    out: list[tuple[str, int]] = []
    for entry in entries:
        name = entry.name
        try:
            if name in _READ_FILES:
                out.append((name, entry.stat().st_mtime_ns if name in CONTENT_FILES else 0))
            elif entry.is_dir():
                out.append((name, entry.inode()))
        except OSError:
            continue
    return tuple(sorted(out))


def folder_signature(folder: str) -> Signature | None:
    """`signature` of a folder as it is now (None when it cannot be listed)."""
    try:
        with os.scandir(folder) as it:
            return signature(it)
    except OSError:
        return None


def _hash8(text: str) -> str:
    # The first 6 bytes make exactly the first 8 characters of the whole digest's encoding.
    return base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()[:6]).decode()


def path_hash(path: Path, *, resolve: bool = True, real: Callable[[str], str] = os.path.realpath) -> str:
    """``urlsafe_b64(sha256(realpath))[:8]`` — poetry's env-name hash (hatch's: ``resolve=False``)."""
    return _hash8(os.path.normcase(real(str(path))) if resolve else str(path))


def is_env_dir(path: str, cfgs: PyvenvCfgs | None = None) -> bool:
    """A folder is an environment when it holds pyvenv.cfg or conda-meta/ (or is an old virtualenv).

    With ``cfgs`` (a scan's), pyvenv.cfg is read and conda-meta/ listed rather than stat'ed:
    the scan reads them next anyway.
    """
    if cfgs is not None:
        if cfgs.has_cfg(path) or cfgs.conda_meta(path) is not None:
            return True
        return is_legacy_virtualenv(path)
    return _has_env_marker(path) or is_legacy_virtualenv(path)


def _lists_env_marker(entries: list[os.DirEntry[str]]) -> bool:
    """``_has_env_marker`` from a folder's listing (no extra stat unless a marker name is there)."""
    for entry in entries:
        try:
            if entry.name == "pyvenv.cfg" and entry.is_file():
                return True
            if entry.name == "conda-meta" and entry.is_dir():
                return True
        except OSError:
            continue
    return False


def _has_env_marker(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "pyvenv.cfg")) or os.path.isdir(os.path.join(path, "conda-meta"))


def is_legacy_virtualenv(path: str | os.PathLike[str]) -> bool:
    """An environment made by virtualenv before 20, which wrote no pyvenv.cfg.

    Its mark is ``lib/pythonX.Y/orig-prefix.txt`` (the base Python's prefix), beside
    ``no-global-site-packages.txt`` and links into the base's standard library.
    """
    lib = os.path.join(path, "lib")
    try:
        names = os.listdir(lib)
    except OSError:
        return False
    return any(_LIBPY_RE.match(n) and os.path.isfile(os.path.join(lib, n, "orig-prefix.txt")) for n in names)


def scan_roots(ctx: Context) -> list[tuple[Path, int]]:
    """(folder, depth) pairs: cwd and its parents (depth 0), --root folders, code folders."""
    # Deep roots first: a folder is walked once, by the first root that reaches it.
    roots: list[tuple[Path, int]] = [(root, ctx.depth) for root in ctx.roots]
    if ctx.default_roots:
        for name in CODE_FOLDERS:
            folder = ctx.home / name
            if folder.is_dir():
                roots.append((folder, ctx.depth))
    roots.extend((parent, 0) for parent in (ctx.cwd, *ctx.cwd.parents))
    if ctx.default_roots:
        roots.append((ctx.home, 0))
    return roots


def scan_projects(ctx: Context) -> ProjectScan:
    scan = ProjectScan()
    seen: set[str] = set()
    for root, depth in scan_roots(ctx):
        if not root.is_dir():
            if root in ctx.roots:
                scan.skipped.append(Skipped(root, "not a folder"))
            continue
        _Walker(scan, seen, depth, ctx.max_dirs).walk(root)
    return scan


_ENV_MARKERS = frozenset({"pyvenv.cfg", "conda-meta"})
# Names that make a listed folder more than a folder to walk: marker files, env folders.
_MARKED_NAMES = _READ_FILES | frozenset(ENV_FOLDERS) | {".pixi"}
# A listing with none of these names is a plain folder: only its subfolders count.
_SPECIAL = _MARKED_NAMES | _ENV_MARKERS | {"lib"}
# What a name in a project's listing is to the walk (absent: a plain name); compared by
# identity, as the values are these four objects.
_CONTENT, _PRESENCE, _ENV_FOLDER, _PIXI = "content", "presence", "env folder", "pixi"
_ROLES: dict[str, str] = {
    **dict.fromkeys(_READ_FILES - CONTENT_FILES, _PRESENCE),
    **dict.fromkeys(CONTENT_FILES, _CONTENT),
    **dict.fromkeys(ENV_FOLDERS, _ENV_FOLDER),
    ".pixi": _PIXI,
}


class _Walker:
    """The walk. Runs once per folder under the roots (thousands): it works on the strings
    and DirEntry values os.scandir gives, and reads each listing in one pass."""

    def __init__(self, scan: ProjectScan, seen: set[str], depth: int, max_dirs: int) -> None:
        self.scan = scan
        self.seen = seen
        self.depth = depth
        self.budget = max_dirs
        self.root: Path | None = None

    def walk(self, root: Path) -> None:
        self.root = root
        real = os.path.realpath(root)
        if real in self.seen:
            return
        self.seen.add(real)
        # Depth first, in listing order, as a recursion would go; a loop rather than a call per
        # folder (no recursion limit on a deep tree), with what each folder needs bound once.
        scan, seen, depth, skipped = self.scan, self.seen, self.depth, self.scan.skipped
        visited, signatures, prune, special = scan.visited, scan.signatures, _PRUNE, _SPECIAL
        scandir, realpath, join = os.scandir, os.path.realpath, os.path.join
        budget = self.budget
        # The folders being walked, innermost last: (its subfolders not entered yet, its realpath,
        # its level, the realpaths from the root to it, whether its path is its realpath).
        stack: list[tuple[Iterator[os.DirEntry[str]], str, int, tuple[str, ...], bool]] = []
        folder, level = str(root), 0
        ancestors: tuple[str, ...] = (real,)
        while True:
            subdirs: list[os.DirEntry[str]] | None = None
            try:
                # list() closes the listing when it ends or fails (os.scandir's documented contract).
                entries = list(scandir(folder))
            except PermissionError:
                visited.append(folder)
                skipped.append(Skipped(Path(folder), "permission denied"))
            except OSError as e:
                visited.append(folder)
                skipped.append(Skipped(Path(folder), e.strerror or str(e)))
            else:
                # Most folders hold no marker file, env folder, env marker or lib/: only their
                # subfolders count. One pass over the listing learns that, their signature (see
                # `signature`) and subfolders; the first special name, or an entry that cannot
                # be read, hands the whole listing to the careful pass instead.
                sig: list[tuple[str, int]] = []
                subdirs = []
                plain = True
                try:
                    for entry in entries:
                        name = entry.name
                        if name in special:
                            plain = False
                            break
                        if entry.is_dir():  # follows symlinks
                            sig.append((name, entry.inode()))
                            if name not in prune and name[0] != ".":
                                subdirs.append(entry)
                except OSError:
                    plain = False
                if plain:
                    visited.append(folder)
                    if len(sig) > 1:
                        sig.sort()
                    signatures[folder] = tuple(sig)
                else:
                    subdirs = self._listed(folder, real, level, entries)
                    if subdirs is None:
                        budget += 1  # an environment is not a folder walked
            if subdirs and level < depth:
                stack.append((iter(subdirs), real, level, ancestors, folder == real))
            # The next folder to enter: the next subfolder of the innermost folder that passes the checks.
            while stack:
                todo, parent, parent_level, parent_ancestors, same = stack[-1]
                for entry in todo:
                    path = entry.path
                    if entry.is_symlink():
                        real = realpath(path)
                        if real in parent_ancestors:
                            skipped.append(Skipped(Path(path), "symlink loop"))
                            continue
                    elif same:
                        # No symlink from the root down: entry.path, made by scandir, is its realpath.
                        real = path
                    else:
                        real = join(parent, entry.name) if parent.endswith(_SEPS) else f"{parent}{_SEP}{entry.name}"
                    if real in seen:
                        continue
                    seen.add(real)
                    if budget <= 0:
                        # Past the budget a folder is not listed: only a direct look says whether it is an env.
                        if _has_env_marker(path):
                            scan.loose_envs.append(path)
                        continue
                    budget -= 1
                    if budget == 0:
                        skipped.append(
                            Skipped(
                                self.root or Path(path),
                                "stopped scanning: too many folders (raise [discovery] max_dirs "
                                "or point --root at a narrower folder)",
                            )
                        )
                    break
                else:
                    stack.pop()  # all its subfolders walked
                    continue
                folder, level, ancestors = path, parent_level + 1, (*parent_ancestors, real)
                break
            else:
                self.budget = budget
                return

    def _listed(
        self, folder: str, real: str, level: int, entries: list[os.DirEntry[str]]
    ) -> list[os.DirEntry[str]] | None:
        """A listing with a special name in it: an environment (None), an old virtualenv, or a project."""
        scan = self.scan
        names = {e.name for e in entries}
        if level > 0 and not names.isdisjoint(_ENV_MARKERS) and _lists_env_marker(entries):
            # A folder met below a root that is an environment itself (``~/code/myenv``): its
            # own listing says so, which spares every other folder two stats before it is entered.
            scan.loose_envs.append(folder)
            scan.realpath.note(folder, real)
            return None
        scan.visited.append(folder)
        if level > 0 and "lib" in names and is_legacy_virtualenv(folder):
            # An old virtualenv (no pyvenv.cfg): known only once listed, so checked here
            # rather than costing every folder a look into lib/ before it is entered.
            scan.signatures[folder] = signature(entries)
            scan.loose_envs.append(folder)
            scan.realpath.note(folder, real)
            return []
        return self._read_listing(folder, level, real, entries, names)

    def _read_listing(
        self, folder: str, level: int, real: str, entries: list[os.DirEntry[str]], names: set[str]
    ) -> list[os.DirEntry[str]]:
        """A listed folder's signature, project and env folders; returns the subfolders to enter."""
        scan = self.scan
        files = PROJECT_FILES & names  # a frozenset, as the left operand is
        project: Project | None = None
        # One pass: the folder's signature (see `signature`) and what to do with each subfolder.
        sig: list[tuple[str, int]] = []
        subdirs: list[os.DirEntry[str]] = []
        descend = level < self.depth
        for entry in entries:
            name = entry.name
            role = _ROLES.get(name)  # one look-up tells the few names that are more than a folder
            try:
                if role is None or role is _ENV_FOLDER or role is _PIXI:
                    if not entry.is_dir():  # follows symlinks
                        continue
                    sig.append((name, entry.inode()))
                elif role is _CONTENT:
                    sig.append((name, entry.stat().st_mtime_ns))
                    scan.content_files.append(entry.path)
                    if not entry.is_dir():
                        continue
                else:
                    sig.append((name, 0))
                    if not entry.is_dir():
                        continue
            except OSError:
                continue
            if role is _ENV_FOLDER and is_env_dir(entry.path, scan.cfgs):
                project = project or self._project(folder, files, real)
                project.envs.append(entry.path)
                if not entry.is_symlink():
                    scan.realpath.note(entry.path, os.path.join(real, name))
            elif role is _PIXI:
                pixi_envs = self._pixi_envs(entry.path)
                if pixi_envs:
                    project = project or self._project(folder, files, real)
                    project.pixi_envs.extend(pixi_envs)
            elif descend and name not in _PRUNE and name[0] != ".":
                subdirs.append(entry)
        if len(sig) > 1:
            sig.sort()
        scan.signatures[folder] = tuple(sig)
        if project is None and files:
            self._project(folder, files, real)
        return subdirs

    def _project(self, folder: str, files: frozenset[str], real: str) -> Project:
        project = Project(folder, files)
        self.scan.projects.append(project)
        self.scan.realpath.note(folder, real)
        return project

    def _pixi_envs(self, pixi_dir: str) -> list[str]:
        envs_dir = os.path.join(pixi_dir, "envs")
        # Watched like a walked folder: `pixi install -e test` adds an env there and nowhere else.
        self.scan.visited.append(envs_dir)
        try:
            names = os.listdir(envs_dir)
        except OSError:
            return []
        return [
            os.path.join(envs_dir, n) for n in sorted(names) if os.path.isdir(os.path.join(envs_dir, n, "conda-meta"))
        ]


def env_dirs(parent: str, scan: ProjectScan | None = None) -> list[str]:
    """The environments directly inside a folder of environments (``envs/``, ``virtualenvs/``), sorted.

    ``parent`` is a normalised path (``str`` of a `Path`). With ``scan``, its resolver learns
    where each of them resolves from the listing (no lstat later), and its pyvenv.cfg reader
    reads the files that make them environments (no stat first).
    """
    cfgs = scan.cfgs if scan is not None else None
    try:
        with os.scandir(parent) as it:
            entries = sorted(it, key=_entry_name)
    except (OSError, ValueError):  # ValueError: a NUL byte in a path read from a config file
        return []
    envs: list[os.DirEntry[str]] = []
    for entry in entries:
        name = entry.name
        if name[0] == "." and name != ".venv":
            continue
        try:
            if entry.is_dir() and is_env_dir(entry.path, cfgs):
                envs.append(entry)
        except OSError:
            continue
    if scan is not None and envs:
        scan.realpath.children(parent, envs)
    return [entry.path for entry in envs]


def normal(path: str) -> str:
    """``str(Path(path))`` without the parse when the string is normal already."""
    return path if os.path.normpath(path) == path else str(Path(path))


def _entry_name(entry: os.DirEntry[str]) -> str:
    return entry.name


def iter_env_dirs(parent: Path) -> Iterator[Path]:
    """The environments directly inside a folder of environments (``envs/``, ``virtualenvs/``)."""
    return iter([Path(p) for p in env_dirs(str(parent))])
