"""The `Environment` value: one Python environment, described from its files.

Every locator reports `Found` records (a prefix and what the locator knows
about it); `describe` turns a prefix into an `Environment` by reading files
only, and `merge` folds the records of several locators for one prefix into
one value, the most specific kind first.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PosixPath
from typing import Any

from . import safeio

# Most specific first: a poetry env is also a virtualenv, a pyenv-virtualenv
# env is also a virtualenv; the first kind is the one people recognise.
KINDS: tuple[str, ...] = (
    "uv",
    "poetry",
    "pipenv",
    "hatch",
    "pdm",
    "pixi",
    "conda",
    "pyenv-virtualenv",
    "pyenv",
    "virtualenvwrapper",
    "virtualenv",
    "venv",
    "uv-python",
    "system",
)
_KIND_RANK = {kind: rank for rank, kind in enumerate(KINDS)}
# Tools that manage an environment someone else's code may have created.
MANAGERS = ("poetry", "pipenv", "hatch", "pdm", "pixi", "pyenv-virtualenv", "virtualenvwrapper")
_MANAGER_SET = frozenset(MANAGERS)


@dataclass(frozen=True)
class Found:
    """What one locator knows about one prefix.

    ``prefix`` is a `Path`, or a ``str`` the locators pass to spare thousands of
    `Path` parses a scan (it must then be normalised, as ``str(Path(...))`` is).
    """

    prefix: Path | str
    kind: str
    name: str | None = None
    project: Path | None = None
    python: Path | None = None  # set when the interpreter is not prefix/bin/python


@dataclass(frozen=True)
class Environment:
    """One Python environment. Unknown is ``None``; broken is a reason in ``problems``."""

    prefix: Path
    python: Path | None
    version: str | None
    kinds: tuple[str, ...]
    name: str
    project: Path | None = None
    has_ipykernel: bool = False
    problems: tuple[str, ...] = ()
    implementation: str | None = None
    site_packages: Path | None = field(default=None, compare=False)

    @property
    def kind(self) -> str:
        return self.kinds[0]

    @property
    def healthy(self) -> bool:
        return not self.problems

    @property
    def minor(self) -> str | None:
        """``"3.11"`` from ``"3.11.7"``, or None when the version is unknown."""
        if self.version is None:
            return None
        parts = self.version.split(".")
        return ".".join(parts[:2])

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "prefix": str(self.prefix),
            "python": str(self.python) if self.python else None,
            "version": self.version,
            "kinds": list(self.kinds),
            "kind": self.kind,
            "project": str(self.project) if self.project else None,
            "has_ipykernel": self.has_ipykernel,
            "healthy": self.healthy,
            "problems": list(self.problems),
            "implementation": self.implementation,
        }


# --- paths -------------------------------------------------------------------

if sys.version_info < (3, 12) and os.name == "posix":
    _from_parsed_parts = PosixPath._from_parsed_parts  # type: ignore[attr-defined]

    def as_path(path: str) -> Path:
        """``Path(path)``, made without pathlib's parse when ``path`` is a normal absolute path.

        Before Python 3.12 pathlib parses every path it is given (2-3 µs; a scan makes
        thousands, one per environment, interpreter and site-packages). The paths a scan
        makes are normal already: their parts are the pieces between the slashes. Any
        other string (relative, ``//``, ``.``, a trailing slash) goes to pathlib.
        """
        if path[:1] == "/" and path[-1] != "/" and "//" not in path and "/./" not in path and path[-2:] != "/.":
            parts = path.split("/")
            parts[0] = "/"
            made: Path = _from_parsed_parts("", "/", parts)
            made._str = path  # type: ignore[attr-defined]  # what str() would format from the parts
            return made
        return Path(path)

else:  # 3.12 and later parse lazily: Path is as cheap.
    as_path = Path


# --- reading files -----------------------------------------------------------
# Paths are plain strings here: describe() runs once per environment and a
# farm may hold thousands, so it stays on os.path (pathlib costs ~3x more).

_VERSION_RE = re.compile(r"^\d+\.\d+(\.\d+)?")
_LIBPY_RE = re.compile(r"^(python|pypy)(\d+\.\d+)t?$")
_MINOR_RE = re.compile(r"^python(\d+\.\d+)")
_join = os.path.join
_SEP = os.sep
# A path ending with one of these is joined without another separator (os.path.join's rule).
_SEPS = (os.sep, os.altsep) if os.altsep else (os.sep,)


def read_pyvenv_cfg(prefix: str | Path) -> dict[str, str] | None:
    """The key/value pairs of ``prefix/pyvenv.cfg``, or None when it has none."""
    try:
        text = safeio.read_text(_join(prefix, "pyvenv.cfg"))  # a FIFO would block open() for good
    except (OSError, ValueError):
        return None
    return _parse_cfg(text)


def _parse_cfg(text: str) -> dict[str, str]:
    cfg: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            cfg[key.strip().lower()] = value.strip()
    return cfg


class PyvenvCfgs:
    """``read_pyvenv_cfg`` that remembers, for one scan: locators and ``merge`` read the same file."""

    def __init__(self) -> None:
        self._memo: dict[str, dict[str, str] | None] = {}
        self._metas: dict[str, list[str] | None] = {}

    def __call__(self, prefix: str | Path) -> dict[str, str] | None:
        key = str(prefix)
        try:
            return self._memo[key]
        except KeyError:
            cfg = self._memo[key] = read_pyvenv_cfg(key)
            return cfg

    def has_cfg(self, prefix: str) -> bool:
        """``os.path.isfile(prefix/pyvenv.cfg)``, answered by reading the file, which is remembered.

        Every folder asked about is an environment the scan goes on to describe, which
        reads its pyvenv.cfg anyway: the read replaces the stat.
        """
        path = _join(prefix, "pyvenv.cfg") if prefix.endswith(_SEPS) else f"{prefix}{_SEP}pyvenv.cfg"
        if prefix in self._memo:
            return self._memo[prefix] is not None or os.path.isfile(path)
        try:
            text = safeio.read_text(path)
        except (FileNotFoundError, NotADirectoryError, safeio.NotARegularFile, ValueError):
            self._memo[prefix] = None
            return False
        except safeio.TooLarge:
            self._memo[prefix] = None
            return True
        except OSError:  # unreadable (EACCES), or stranger: it may be a file all the same
            self._memo[prefix] = None
            return os.path.isfile(path)
        self._memo[prefix] = _parse_cfg(text)
        return True

    def watch_at(self, prefix: str) -> tuple[str, ...]:
        """What discovery watches for ``prefix`` beyond the folders it listed.

        What this scan read to learn what ``prefix`` is, which can change with no listed folder
        changing: its pyvenv.cfg (``python -m venv --upgrade`` rewrites it in place) or its
        conda-meta/ (conda updating Python swaps a record in it). And the folder of the base
        interpreter its pyvenv.cfg names (``home``): uninstalling that Python breaks the
        environment, wherever the base lives.
        """
        cfg = self._memo.get(prefix)
        if cfg is not None:
            cfg_path = _join(prefix, "pyvenv.cfg")
            home = cfg.get("home")
            if home and os.path.isabs(home) and "\0" not in home:  # a path os.stat can take
                return cfg_path, os.path.normpath(home)
            return (cfg_path,)
        if self._metas.get(prefix) is not None:
            return (_join(prefix, "conda-meta"),)
        return ()

    def conda_meta(self, prefix: str) -> list[str] | None:
        """The names in ``prefix/conda-meta``, or None when that is no folder; listed once a scan.

        A conda prefix is asked about by the walk or ``env_dirs`` (is it an environment?), by the
        conda locator (does it hold Python?) and by describe (which Python?): one listing
        answers all three, where ``os.path.isdir`` took a stat for each of the first two.
        A folder that cannot be listed gives ``[]``: ``isdir``'s answer, and nothing in it.
        """
        try:
            return self._metas[prefix]
        except KeyError:
            pass
        path = _join(prefix, "conda-meta") if prefix.endswith(_SEPS) else f"{prefix}{_SEP}conda-meta"
        names: list[str] | None
        try:
            names = os.listdir(path)
        except (FileNotFoundError, NotADirectoryError, ValueError):
            names = None
        except OSError:  # unreadable (EACCES), a link loop: a folder or not, as isdir says
            names = [] if os.path.isdir(path) else None
        self._metas[prefix] = names
        return names


def _clean_version(text: str | None) -> str | None:
    if not text:
        return None
    m = _VERSION_RE.match(text.strip())
    return m.group(0) if m else None


def conda_python_version(prefix: str | Path, conda_meta: Callable[[str], list[str] | None] | None = None) -> str | None:
    """Python's version in a conda prefix, from ``conda-meta/python-X.Y.Z-build.json``.

    ``conda_meta``: a scan's memory of the listings (`PyvenvCfgs.conda_meta`).
    """
    if conda_meta is not None:
        names = conda_meta(str(prefix))
        if names is None:
            return None
    else:
        try:
            names = os.listdir(_join(prefix, "conda-meta"))
        except OSError:
            return None
    for name in names:
        if name.startswith("python-") and name.endswith(".json"):
            version = _clean_version(name[len("python-") :])
            if version:
                return version
    return None


def _patchlevel_version(prefix: str, minor: str) -> str | None:
    """Full version of a base install from ``include/pythonX.Y/patchlevel.h``.

    Pythons 3.7 and older name the folder with their ABI flags (``python3.7m``); an
    old virtualenv's ``include/`` links to its base's.
    """
    for folder in (f"python{minor}", f"python{minor}m"):
        try:
            text = safeio.read_text(_join(prefix, "include", folder, "patchlevel.h"), errors="strict")
        except FileNotFoundError:
            continue
        except (OSError, ValueError):
            return None
        for line in text.splitlines():
            if line.startswith("#define PY_VERSION "):
                parts = line.split('"')
                return _clean_version(parts[1]) if len(parts) > 1 else None
        return None
    return None


_DIST_SUFFIXES = (".dist-info", ".egg-info")


def _names_hold(names: list[str], prefix: str) -> bool:
    """Whether a site-packages listing holds ``<prefix>*.dist-info`` or ``.egg-info`` (``prefix`` lowercase)."""
    if prefix not in "/".join(names).lower():
        return False  # no name holds it: the common answer, without a look at each name
    for name in names:
        name = name.lower()
        if name.startswith(prefix) and name.endswith(_DIST_SUFFIXES):
            return True
    return False


def has_dist(site_packages: str | Path | None, project: str) -> bool:
    """Whether a distribution is installed, from its dist-info / egg-info folder."""
    if site_packages is None:
        return False
    try:
        names = os.listdir(site_packages)
    except OSError:
        return False
    return _names_hold(names, project + "-")


def _unreachable(python: str) -> str:
    """Why an interpreter that cannot be stat'ed cannot run: gone, or there but out of this user's reach."""
    if safeio.reach(python) == "out of reach":
        # Another user's Python (a venv made from ~root/.pyenv, run as someone else): not missing.
        return f"interpreter not reachable by this user (permission denied): {python} -> {os.path.realpath(python)}"
    if os.path.islink(python):
        return f"interpreter link dangles: {python} -> {os.path.realpath(python)}"
    return f"interpreter missing: {python}"


def _interpreter(prefix: str, minor: str | None) -> str | None:
    """The environment's interpreter (link or file), dangling or not."""
    first = _join(prefix, "bin", "python")
    if os.path.lexists(first):  # nearly every environment: one lstat
        return first
    names = ["python3"] + ([f"python{minor}"] if minor else [])
    for candidate in [_join(prefix, "bin", n) for n in names] + [
        _join(prefix, "Scripts", "python.exe"),
        _join(prefix, "python.exe"),
    ]:
        if os.path.lexists(candidate):
            return candidate
    return None


_UNREAD: Any = object()


def describe(
    found: Found,
    user_home: Path | None = None,
    cfg: dict[str, str] | None = _UNREAD,
) -> Environment:
    """Read a prefix's files and return what it is. Never runs its interpreter.

    ``cfg``: the prefix's pyvenv.cfg when the caller has read it already (None: it has none).
    """
    path = Path(found.prefix)
    prefix = str(path)
    if cfg is _UNREAD:
        cfg = read_pyvenv_cfg(prefix)
    home = str(user_home) if user_home is not None else None
    return _describe(prefix, path, found, None, home, cfg)


def _describe(
    prefix: str,
    prefix_path: Path,
    found: Found,
    records: list[Found] | None,
    user_home: str | None,
    cfg: dict[str, str] | None,
    extra_sites: dict[str, bool] | None = None,
    conda_meta: Callable[[str], list[str] | None] | None = None,
) -> Environment:
    """`describe` of ``found`` at ``prefix``, on strings: it runs once per environment a scan.

    ``records``: every locator's record of the prefix, most specific kind first (``found``
    is the first), whose names, projects and kinds `merge` folds in; None for ``found`` alone.
    ``conda_meta``: the scan's listing of ``prefix/conda-meta`` (see `PyvenvCfgs.conda_meta`).

    The common case (pyvenv.cfg, bin/python, one lib/pythonX.Y) is written out in this one
    function rather than in helpers: at 1,000 environments a call and a join per step are
    milliseconds, next to the few listings each environment needs.
    """
    kind, name, project, found_python = found.kind, found.name, found.project, found.python
    if records is not None and len(records) > 1:
        name = next((f.name for f in records if f.name), None)
        project = next((f.project for f in records if f.project), None)
        found_python = next((f.python for f in records if f.python), None)
    # What os.path.join(prefix, x) makes, without its call per join.
    base = prefix if prefix.endswith(_SEPS) else prefix + _SEP
    problems: list[str] = []
    version: str | None = None
    implementation: str | None = None
    if cfg is not None:
        version = _clean_version(cfg.get("version_info") or cfg.get("version"))
        impl = cfg.get("implementation")
        implementation = impl.lower() if impl else None
    if version is None:
        version = conda_python_version(prefix, conda_meta)
    # The minor version, implementation and site-packages, from lib/pythonX.Y.
    minor: str | None = None
    lib_impl: str | None = None
    site_packages: str | None = None
    lib = base + "lib"
    entries: Iterable[str]
    hint = None
    if found_python is not None:
        m = _MINOR_RE.match(found_python.name)
        hint = m.group(1) if m else None
    if hint is not None:
        entries = [f"python{hint}"] if os.path.isdir(f"{lib}{_SEP}python{hint}") else ()
    else:
        try:
            entries = os.listdir(lib)
        except OSError:
            entries = ()
    match = _LIBPY_RE.match
    chosen = None
    for entry in entries:
        m = match(entry)
        if m:
            if chosen is None:
                chosen = m
            # `python -m venv --upgrade` to another minor version adds lib/pythonX.Y beside the
            # old one: the one pyvenv.cfg names is the one its Python uses.
            if version is None or version.startswith(f"{m.group(2)}.") or version == m.group(2):
                chosen = m
                break
    if chosen is not None:
        minor = chosen.group(2)
        lib_impl = "pypy" if chosen.group(1) == "pypy" else "cpython"
        site_packages = f"{lib}{_SEP}{chosen.string}{_SEP}site-packages"
    else:
        windows = _join(prefix, "Lib", "site-packages")
        if os.path.isdir(windows):
            site_packages = windows
    minor = minor or hint
    implementation = implementation or lib_impl
    # virtualenv before 20 wrote no pyvenv.cfg; its lib/pythonX.Y names the base Python's prefix.
    legacy_base = _legacy_base(site_packages) if cfg is None and version is None else None
    legacy = legacy_base is not None
    if version is None and minor is not None:
        version = _patchlevel_version(prefix, minor) or _version_from_name(os.path.basename(prefix), minor) or minor
    if version is not None and minor is not None and not version.startswith(minor + ".") and version != minor:
        # pyvenv.cfg says one Python, lib/ holds another: the env was rebuilt or copied.
        problems.append(f"pyvenv.cfg says Python {version} but lib/ holds python{minor}")

    if legacy_base and not os.path.isdir(legacy_base):
        # Its interpreter is a copy that still runs the base's standard library and libpython.
        problems.append(f"base Python is gone: {legacy_base} (from lib/python{minor}/orig-prefix.txt)")

    python: str | None
    if found_python is not None:
        python = str(found_python)
        exists = os.path.exists(python)
    else:
        # Nearly every environment: bin/python is there and runs, which one stat says.
        python = f"{base}bin{_SEP}python"
        try:
            os.stat(python)
            exists = True
        except (OSError, ValueError):
            python = _interpreter(prefix, minor)
            exists = python is not None and os.path.exists(python)
    if python is None:
        problems.append("no Python interpreter in bin/")
    elif not exists:
        problems.append(_unreachable(python))
    # One listing answers both "is there a site-packages?" and "is ipykernel in it?" (`_names_hold`).
    has_ipykernel = False
    if site_packages is not None:
        try:
            names = os.listdir(site_packages)
        except OSError:
            site_packages = None
        else:
            has_ipykernel = _names_hold(names, "ipykernel-")
    if site_packages is None and kind != "system":
        problems.append("no site-packages folder")
    if not has_ipykernel and cfg is None and not legacy and minor is not None:
        # A base Python (system, pyenv, uv-python) also imports from Debian's
        # dist-packages and from the user site that `pip install --user` fills.
        extra = [
            _join(prefix, "lib", "python3", "dist-packages"),
            _join(prefix, "local", "lib", f"python{minor}", "dist-packages"),
        ]
        if user_home is not None:
            extra.append(_join(user_home, ".local", "lib", f"python{minor}", "site-packages"))
        for folder in extra:
            if extra_sites is None:
                has_ipykernel = has_dist(folder, "ipykernel")
            else:  # every base Python of one minor version shares a user site: looked at once a scan
                known = extra_sites.get(folder)
                if known is None:
                    known = extra_sites[folder] = has_dist(folder, "ipykernel")
                has_ipykernel = known
            if has_ipykernel:
                break

    kinds: tuple[str, ...] = (kind, "virtualenv") if legacy and kind != "virtualenv" else (kind,)
    # One record whose kind is the one pyvenv.cfg names, or without pyvenv.cfg: nothing to merge.
    if records is not None and (len(records) > 1 or legacy or (cfg is not None and cfg_kind(cfg) != kind)):
        kinds = _merged_kinds(records, cfg, kinds)
    return Environment(
        prefix_path,
        None if python is None else found_python if found_python is not None else as_path(python),
        version,
        kinds,
        name or os.path.basename(prefix),
        project,
        has_ipykernel,
        tuple(problems),
        implementation,
        as_path(site_packages) if site_packages is not None else None,
    )


def _legacy_base(site_packages: str | None) -> str | None:
    """The base prefix an old virtualenv (before 20) names in ``lib/pythonX.Y/orig-prefix.txt``.

    "" when the file is there but unreadable; None when the folder is no such env.
    """
    if site_packages is None:
        return None
    path = _join(os.path.dirname(site_packages), "orig-prefix.txt")
    if not os.path.isfile(path):
        return None
    try:
        return safeio.read_text(path, 4096).strip()
    except OSError:
        return ""


def _version_from_name(name: str, minor: str) -> str | None:
    """pyenv names a version folder by its full version: ``3.11.7``."""
    version = _clean_version(name)
    if version and version.startswith(minor + ".") and re.fullmatch(r"\d+\.\d+\.\d+\w*", name):
        return version
    # uv names its Pythons cpython-3.11.7-linux-x86_64-gnu.
    m = re.match(r"^(?:cpython|pypy|graalpy)-(\d+\.\d+\.\d+)", name)
    if m and m.group(1).startswith(minor + "."):
        return m.group(1)
    return None


def kind_rank(kind: str) -> int:
    return _KIND_RANK.get(kind, len(KINDS))


def cfg_kind(cfg: dict[str, str] | None) -> str | None:
    """uv, virtualenv or venv, from the pyvenv.cfg the creating tool wrote."""
    if cfg is None:
        return None
    if "uv" in cfg:
        return "uv"
    if "virtualenv" in cfg:
        return "virtualenv"
    return "venv"


def merge(
    records: Iterable[Found],
    user_home: Path | None = None,
    cfgs: Callable[[str | Path], dict[str, str] | None] = read_pyvenv_cfg,
    extra_sites: dict[str, bool] | None = None,
) -> Environment:
    """One environment from every locator's record of the same prefix.

    The kind that made the folder (from pyvenv.cfg) is always among the
    kinds, after the tool that manages it: a poetry env is poetry, virtualenv.
    ``cfgs`` reads pyvenv.cfg (a scan passes one that remembers what the locators read).
    """
    ordered = sorted(records, key=_found_rank)
    path = Path(ordered[0].prefix)
    home = str(user_home) if user_home is not None else None
    return merge_at(str(path), path, ordered, home, cfgs, extra_sites)


def _found_rank(found: Found) -> int:
    return _KIND_RANK.get(found.kind, len(KINDS))


def merge_at(
    prefix: str,
    path: Path,
    records: list[Found],
    user_home: str | None,
    cfgs: Callable[[str | Path], dict[str, str] | None] = read_pyvenv_cfg,
    extra_sites: dict[str, bool] | None = None,
) -> Environment:
    """`merge` of records already sorted by kind, for the prefix ``prefix`` (``path`` as a `Path`).

    Discovery calls it once per environment with the resolved prefix its records were
    grouped under, whatever path each locator reached it by. ``extra_sites``: whether
    ipykernel is in each folder outside a prefix that a base Python imports from
    (dist-packages, the user site), filled as the scan looks; discovery watches them.
    """
    conda_meta = cfgs.conda_meta if isinstance(cfgs, PyvenvCfgs) else None
    return _describe(prefix, path, records[0], records, user_home, cfgs(prefix), extra_sites, conda_meta)


def _merged_kinds(records: list[Found], cfg: dict[str, str] | None, described: tuple[str, ...]) -> tuple[str, ...]:
    """The kinds of a merged environment: every record's, and the one that made the folder."""
    # describe() adds "virtualenv" for an old virtualenv, which has no pyvenv.cfg to say so.
    base = cfg_kind(cfg) or ("virtualenv" if "virtualenv" in described else None)
    if len(records) == 1:
        kind = records[0].kind
        if base is None or base == kind:
            return described  # one record, no other kind to add
        # One record of a tool's env that another tool made (a poetry env virtualenv made): what
        # the general case below gives for two kinds, without its sort and sets.
        if kind in _MANAGER_SET or _KIND_RANK.get(kind, len(KINDS)) <= _KIND_RANK[base]:
            return (kind, base)
        return (base, kind)
    all_kinds = [f.kind for f in records]
    if base is not None and base not in all_kinds:
        all_kinds.append(base)
    kinds = tuple(sorted(dict.fromkeys(all_kinds), key=kind_rank))
    if base is not None and len(kinds) > 1 and set(kinds) & set(MANAGERS):
        # The tool that manages the env comes first, whatever made the folder: a hatch env
        # that hatch created with uv is ["hatch", "uv"], a poetry project's uv-made .venv too.
        kinds = (*(k for k in kinds if k != base), base)
    return kinds
