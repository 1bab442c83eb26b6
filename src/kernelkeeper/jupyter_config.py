"""Turn kernelkeeper's dynamic provider on and off in Jupyter's config, and say who wins.

**How it is turned on.** ``enable`` writes jupyter_server's standard extension enable
file ``<config dir>/jupyter_server_config.d/kernelkeeper.json`` =
``{"ServerApp": {"jpserver_extensions": {"kernelkeeper": true}}}``; at start-up the
extension (``server_extension.py``) sets ``ServerApp.kernel_spec_manager_class`` to the
provider unless the person chose a manager. A Jupyter whose Python cannot import
kernelkeeper logs a missing-extension warning and runs as before.

Earlier versions set ``ServerApp.kernel_spec_manager_class`` (and, with Notebook 6,
``NotebookApp.kernel_spec_manager_class``) in ``jupyter_server_config.json``: every
Jupyter reading that folder that cannot import kernelkeeper then refuses to start. That
*legacy key* is what ``enable`` removes (only where it names kernelkeeper's provider) and
what ``status``, ``enable`` and ``doctor`` report. Notebook 6 gets no setting: it loads
its extensions after it made its kernel spec manager, so nothing can switch it safely.

**Which file wins** for ``kernel_spec_manager_class`` follows traitlets/jupyter_core
exactly (checked against ``jupyter server --show-config`` in the tests):

* ``jupyter_config.*`` is loaded from *every* config folder first, and only then
  ``jupyter_server_config.*`` (or ``jupyter_notebook_config.*``) from every
  folder. So an app-specific file in the system folder overrides a
  ``jupyter_config.json`` in the user folder.
* For each file name, folders load from lowest to highest priority: reversed
  ``jupyter_config_path()``, whose first entries are the ``JUPYTER_CONFIG_PATH``
  folders, then the user folder, then sys-prefix, then system. The user and
  sys-prefix folders swap when ``JUPYTER_PREFER_ENV_PATH`` is set, or, without
  it, when Python runs from a virtualenv (or non-base conda env) the user owns:
  there a sys-prefix setting beats a user one (jupyter_core >= 5).
* In one folder, ``name.py`` loads before ``name.json``: the JSON file wins.

The last load that sets the key wins. For ``jpserver_extensions`` jupyter_server
merges key by key instead (``ServerApp.find_server_extensions``): per folder, from the
lowest priority up, ``jupyter_server_config.d/*.json`` in name order, then
``jupyter_server_config.json``; a name already in the traitlets-loaded
``ServerApp.jpserver_extensions`` (the last ``jupyter_config.json`` /
``jupyter_server_config.json`` that sets that dict) is not looked up there at all.
The folder list is the one this Python sees; another Jupyter is judged with its own
prefix's ``etc/jupyter`` as its sys-prefix folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import safeio
from .errors import UserError
from .server_extension import KEY, PROVIDER

SCOPES = ("user", "sys-prefix", "system")
PY_NOTE = "set in a Python config file, value not evaluated"

# (app, traitlets section, app-specific config file base name)
SERVER = ("jupyter_server", "ServerApp", "jupyter_server_config")
NOTEBOOK6 = ("notebook6", "NotebookApp", "jupyter_notebook_config")
BASE_CONFIG = "jupyter_config"

EXTENSION = "kernelkeeper"
EXT_KEY = "jpserver_extensions"
EXT_DIR = f"{SERVER[2]}.d"  # jupyter_server_config.d: read by jupyter_server for jpserver_extensions only
EXT_FILE = f"{EXTENSION}.json"

# `c.ServerApp.kernel_spec_manager_class = ...` or `c.ServerApp["kernel_spec_manager_class"] = ...`
_PY_ASSIGN = re.compile(
    r"^[ \t]*c\.(?P<section>\w+)"
    r"""(?:\.kernel_spec_manager_class|\[\s*(['"])kernel_spec_manager_class\2\s*\])"""
    r"[ \t]*=(?!=)",
    re.MULTILINE,
)

# `import __editable___kernelkeeper_0_1_0_finder; __editable___kernelkeeper_0_1_0_finder.install()`
_EDITABLE_HOOK = re.compile(r"import\s+(__editable___kernelkeeper_\w+)\s*(?:;|$)")

if TYPE_CHECKING:
    from typing import TypeAlias

    from .context import Context
    from .environments import Environment

    # What a JSON file holds, or None for a missing (or, in a preview, removed) file.
    _Overlay: TypeAlias = Mapping[Path, "dict[str, Any] | None"]


# --- results -------------------------------------------------------------------


class State(str, Enum):
    """Which kernel spec manager a Jupyter app's config files name."""

    ENABLED = "enabled"  # kernelkeeper's provider, by the legacy key
    DEFAULT = "default"  # nothing sets the key: jupyter_client's KernelSpecManager (or the extension's choice)
    OTHER = "other"  # another class wins
    UNKNOWN = "unknown"  # a Python config file wins; its value is not evaluated


class Change(str, Enum):
    """What enable/disable did (or would do) to one key in one file."""

    SET = "set"  # key added
    REPLACED = "replaced"  # key held another value; now kernelkeeper's
    ALREADY = "already-enabled"
    REMOVED = "removed"
    NOT_SET = "not-set"
    FOREIGN = "foreign"  # the key holds another class, left alone


class Outcome(str, Enum):
    """What one Jupyter on the machine does with the config as it is (or would be)."""

    PROVIDER = "uses-provider"
    AS_BEFORE = "runs-as-before"
    KEEPS_OTHER = "keeps-own-manager"
    FAILS = "will-not-start"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class ConfigDir:
    """One Jupyter config folder and the scope it stands for."""

    path: Path
    scope: str  # user | user-site | sys-prefix | system | JUPYTER_CONFIG_PATH | other

    def to_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "scope": self.scope}


@dataclass(frozen=True)
class Setting:
    """One config file that sets ``<section>.kernel_spec_manager_class``."""

    path: Path
    scope: str
    section: str
    value: str | None  # None: a Python config file, not evaluated
    line: int | None = None  # the assignment's line in a Python config file

    @property
    def evaluated(self) -> bool:
        return self.path.suffix != ".py"

    @property
    def is_kernelkeeper(self) -> bool | None:
        """True/False for a JSON file; None (unknown) for a Python file."""
        return None if self.value is None else self.value == PROVIDER

    @property
    def note(self) -> str | None:
        return None if self.evaluated else PY_NOTE

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "scope": self.scope,
            "section": self.section,
            "value": self.value,
            "evaluated": self.evaluated,
            "line": self.line,
            "is_kernelkeeper": self.is_kernelkeeper,
            "note": self.note,
        }


@dataclass(frozen=True)
class AppStatus:
    """The settings one Jupyter app loads, in load order (a later one overrides an earlier one)."""

    app: str  # jupyter_server | notebook6
    section: str  # ServerApp | NotebookApp
    settings: tuple[Setting, ...]

    @property
    def effective(self) -> Setting | None:
        """The setting that wins, or None when the app uses its default manager."""
        return self.settings[-1] if self.settings else None

    @property
    def state(self) -> State:
        winner = self.effective
        if winner is None:
            return State.DEFAULT
        if winner.value is None:
            return State.UNKNOWN
        return State.ENABLED if winner.value == PROVIDER else State.OTHER

    @property
    def enabled(self) -> bool:
        """Whether the legacy key (kernelkeeper's provider, set in a config file) wins."""
        return self.state is State.ENABLED

    @property
    def overridden(self) -> tuple[Setting, ...]:
        """kernelkeeper settings that lose to a higher-priority file setting something else."""
        if self.state is State.ENABLED:
            return ()
        return tuple(s for s in self.settings[:-1] if s.is_kernelkeeper)

    def to_json(self) -> dict[str, Any]:
        winner = self.effective
        return {
            "app": self.app,
            "section": self.section,
            "state": self.state.value,
            "enabled": self.enabled,
            "effective": winner.to_json() if winner else None,
            "overridden": [s.to_json() for s in self.overridden],
            "settings": [s.to_json() for s in self.settings],
        }


@dataclass(frozen=True)
class ExtensionSetting:
    """One config file that sets ``ServerApp.jpserver_extensions["kernelkeeper"]``."""

    path: Path
    scope: str
    value: Any  # true enables; jupyter_server takes anything else as not enabled (or fails on it)

    @property
    def enables(self) -> bool:
        return self.value is True

    def to_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "scope": self.scope, "value": self.value, "enables": self.enables}


@dataclass(frozen=True)
class ExtensionStatus:
    """Every file naming the kernelkeeper extension, in jupyter_server's merge order, and which one wins."""

    settings: tuple[ExtensionSetting, ...]
    effective: ExtensionSetting | None

    @property
    def enabled(self) -> bool:
        return self.effective is not None and self.effective.enables

    def to_json(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "effective": self.effective.to_json() if self.effective else None,
            "settings": [s.to_json() for s in self.settings],
        }


@dataclass(frozen=True)
class JupyterInstall:
    """A Jupyter found on the machine, described from its files (nothing is run)."""

    prefix: Path
    python: Path | None
    found_as: tuple[str, ...]  # how it was found: `jupyter` on PATH, a discovered environment, ...
    jupyter_server: str | None  # installed version, None when absent
    notebook: str | None
    imports_kernelkeeper: bool  # kernelkeeper is in its site-packages (a package, or a .pth pointing at one)

    @property
    def notebook6(self) -> bool:
        major = (self.notebook or "").split(".")[0]
        return major.isdigit() and int(major) < 7

    def to_json(self) -> dict[str, Any]:
        return {
            "prefix": str(self.prefix),
            "python": str(self.python) if self.python else None,
            "found_as": list(self.found_as),
            "jupyter_server": self.jupyter_server,
            "notebook": self.notebook,
            "imports_kernelkeeper": self.imports_kernelkeeper,
        }


@dataclass(frozen=True)
class JupyterView:
    """What one Jupyter app of one install does with the config."""

    install: JupyterInstall
    app: str  # jupyter_server | notebook6
    outcome: Outcome
    reason: str
    setting: Setting | None = None  # the config setting that decides, when one does

    @property
    def message(self) -> str:
        label = "jupyter_server" if self.app == SERVER[0] else "Notebook 6"
        return f"{label} in {self.install.prefix}: {self.reason}"

    def to_json(self) -> dict[str, Any]:
        return {
            **self.install.to_json(),
            "app": self.app,
            "outcome": self.outcome.value,
            "reason": self.reason,
            "message": self.message,
            "setting": self.setting.to_json() if self.setting else None,
        }


@dataclass(frozen=True)
class JupyterConfigStatus:
    """The kernelkeeper extension and ``kernel_spec_manager_class`` across Jupyter's config folders."""

    provider: str
    config_dirs: tuple[ConfigDir, ...]  # jupyter_config_path() order: highest priority first
    apps: tuple[AppStatus, ...]  # jupyter_server first, then classic Notebook 6
    problems: tuple[str, ...] = ()  # config files Jupyter cannot read (and so ignores)
    extension: ExtensionStatus = field(default_factory=lambda: ExtensionStatus((), None))
    jupyters: tuple[JupyterView, ...] = ()  # filled when the caller passed the installs it found

    @property
    def server(self) -> AppStatus:
        return self.apps[0]

    @property
    def notebook6(self) -> AppStatus:
        return self.apps[1]

    @property
    def legacy(self) -> tuple[Setting, ...]:
        """Legacy keys: config files naming kernelkeeper's provider as the manager (they stop other Jupyters)."""
        return tuple(s for app in self.apps for s in app.settings if s.is_kernelkeeper)

    @property
    def provider_active(self) -> bool:
        """Whether this Python's jupyter_server would use the provider (by the extension or a legacy key)."""
        return self.server.enabled or (self.extension.enabled and self.server.state is State.DEFAULT)

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "provider_active": self.provider_active,
            "extension": self.extension.to_json(),
            "legacy": [s.to_json() for s in self.legacy],
            "config_dirs": [d.to_json() for d in self.config_dirs],
            "apps": [a.to_json() for a in self.apps],
            "jupyters": [j.to_json() for j in self.jupyters],
            "problems": list(self.problems),
        }


@dataclass(frozen=True)
class FileChange:
    """One key in one config file: what enable/disable did, or would do on a dry run."""

    path: Path
    section: str
    change: Change
    before: str | None = None  # the key's value before
    file_created: bool = False
    file_removed: bool = False
    content: str | None = None  # the file's new text when it changes and is not removed
    key: str = KEY

    @property
    def modifies(self) -> bool:
        return self.change in (Change.SET, Change.REPLACED, Change.REMOVED)

    @property
    def legacy(self) -> bool:
        return self.key == KEY

    @property
    def message(self) -> str:
        where = f"{self.section}.{self.key} in {self.path}"
        if self.change is Change.SET:
            return f"set {where}" + (" (new file)" if self.file_created else "")
        if self.change is Change.REPLACED:
            return f"set {where}, replacing {self.before}"
        if self.change is Change.ALREADY:
            return f"already enabled: {where}"
        if self.change is Change.REMOVED:
            why = " (the old way to enable: it stops a Jupyter that cannot import kernelkeeper)" if self.legacy else ""
            return f"removed {where}" + (" (file removed: nothing else in it)" if self.file_removed else "") + why
        if self.change is Change.FOREIGN:
            return f"left {where} alone: it holds {self.before}, not kernelkeeper's provider"
        return f"not set: {where}"

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "section": self.section,
            "key": self.key,
            "change": self.change.value,
            "before": self.before,
            "file_created": self.file_created,
            "file_removed": self.file_removed,
            "message": self.message,
        }


@dataclass(frozen=True)
class ToggleResult:
    """What ``enable`` or ``disable`` changed in one scope, and the status after it."""

    action: str  # enable | disable
    scope: str
    config_dir: Path
    dry_run: bool
    changes: tuple[FileChange, ...]
    status: JupyterConfigStatus  # after the change (for a dry run: as it would be)
    warnings: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        """Whether a file was (or on a dry run would be) written or removed."""
        return any(c.modifies for c in self.changes)

    @property
    def jupyters(self) -> tuple[JupyterView, ...]:
        return self.status.jupyters

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "scope": self.scope,
            "config_dir": str(self.config_dir),
            "dry_run": self.dry_run,
            "changed": self.changed,
            "changes": [c.to_json() for c in self.changes],
            "warnings": list(self.warnings),
            "jupyters": [j.to_json() for j in self.jupyters],
            "status": self.status.to_json(),
        }


# --- folders -------------------------------------------------------------------


def scope_config_dir(scope: str) -> Path:
    """The config folder of a scope: user, sys-prefix or system (read from jupyter_core now)."""
    from jupyter_core import paths

    if scope == "user":
        return Path(paths.jupyter_config_dir())
    if scope == "sys-prefix":
        return Path(paths.ENV_CONFIG_PATH[0])
    if scope == "system":
        if not paths.SYSTEM_CONFIG_PATH:
            raise UserError("this platform has no system-wide Jupyter config folder", hint="use --sys-prefix or --user")
        return Path(paths.SYSTEM_CONFIG_PATH[0])
    raise UserError(f"unknown scope {scope!r}", hint="use --user, --sys-prefix or --system")


def extension_file(scope: str) -> Path:
    """The file ``enable`` writes: ``<scope's config folder>/jupyter_server_config.d/kernelkeeper.json``."""
    return scope_config_dir(scope) / EXT_DIR / EXT_FILE


def config_dirs() -> tuple[ConfigDir, ...]:
    """Jupyter's config folders in priority order (highest first), each with its scope."""
    from jupyter_core import paths

    def norm(p: str | Path) -> str:
        return os.path.normpath(os.path.abspath(os.fspath(p)))

    user = norm(paths.jupyter_config_dir())
    env = {norm(p) for p in paths.ENV_CONFIG_PATH}
    system = {norm(p) for p in paths.SYSTEM_CONFIG_PATH}
    from_var = {norm(p) for p in os.environ.get("JUPYTER_CONFIG_PATH", "").split(os.pathsep) if p}
    seen: set[str] = set()
    out: list[ConfigDir] = []
    for raw in paths.jupyter_config_path():
        key = norm(raw)
        if key in seen:  # a folder listed twice takes effect at its highest-priority position
            continue
        seen.add(key)
        if key == user:
            scope = "user"
        elif key in env:
            scope = "sys-prefix"
        elif key in system:
            scope = "system"
        elif key in from_var:
            scope = "JUPYTER_CONFIG_PATH"
        elif key.endswith(os.path.join("etc", "jupyter")):
            scope = "user-site"  # Python's user base, added by jupyter_core when user site-packages are on
        else:
            scope = "other"
        out.append(ConfigDir(Path(raw), scope))
    return tuple(out)


def dirs_for(install: JupyterInstall, dirs: tuple[ConfigDir, ...]) -> tuple[ConfigDir, ...]:
    """The config folders another Jupyter reads: ours, with its own prefix's etc/jupyter as sys-prefix."""
    if _same_path(install.prefix, Path(sys.prefix)):
        return dirs
    own = ConfigDir(install.prefix / "etc" / "jupyter", "sys-prefix")
    out: list[ConfigDir] = []
    for d in dirs:
        if d.scope == "sys-prefix":
            if own not in out:
                out.append(own)
        else:
            out.append(d)
    return tuple(out)


# --- status --------------------------------------------------------------------


def status(installs: Sequence[JupyterInstall] = ()) -> JupyterConfigStatus:
    """The extension and every ``kernel_spec_manager_class`` setting, in load order, and what wins.

    With ``installs`` (from ``find_jupyters``), also what each of those Jupyters does.
    """
    return _with_views(_status({}), installs, {})


def _status(overlay: _Overlay, dirs: tuple[ConfigDir, ...] | None = None) -> JupyterConfigStatus:
    dirs = config_dirs() if dirs is None else dirs
    problems: list[str] = []
    apps = tuple(_app_status(app, dirs, overlay, problems) for app in (SERVER, NOTEBOOK6))
    extension = _extension_status(dirs, overlay, problems)
    return JupyterConfigStatus(PROVIDER, dirs, apps, tuple(dict.fromkeys(problems)), extension)


def _with_views(st: JupyterConfigStatus, installs: Sequence[JupyterInstall], overlay: _Overlay) -> JupyterConfigStatus:
    views: list[JupyterView] = []
    for install in installs:
        theirs = dirs_for(install, st.config_dirs)
        views.extend(judge(install, st if theirs == st.config_dirs else _status(overlay, theirs)))
    return replace(st, jupyters=tuple(views))


def _app_status(
    app: tuple[str, str, str], dirs: tuple[ConfigDir, ...], overlay: _Overlay, problems: list[str]
) -> AppStatus:
    name, section, app_config = app
    settings: list[Setting] = []
    # jupyter_core's JupyterApp.load_config_file: jupyter_config.* from all folders, then <app>_config.*;
    # traitlets loads each name from the lowest-priority folder up, .py before .json.
    for base in (BASE_CONFIG, app_config):
        for cdir in reversed(dirs):
            py = cdir.path / f"{base}.py"
            line = _py_assignment_line(py, section)
            if line is not None:
                settings.append(Setting(py, cdir.scope, section, None, line))
            js = cdir.path / f"{base}.json"
            data = _read_or_note(js, overlay, problems)
            table = data.get(section) if data else None
            if isinstance(table, dict) and KEY in table:
                value = table[KEY]
                settings.append(Setting(js, cdir.scope, section, value if isinstance(value, str) else repr(value)))
    return AppStatus(name, section, tuple(settings))


def _extension_status(dirs: tuple[ConfigDir, ...], overlay: _Overlay, problems: list[str]) -> ExtensionStatus:
    # 1. The dict traitlets loads (the last jupyter_config.json / jupyter_server_config.json setting it);
    #    a name in it is never looked up in the merge below.
    loaded: ExtensionSetting | None = None
    for base in (BASE_CONFIG, SERVER[2]):
        for cdir in reversed(dirs):
            path = cdir.path / f"{base}.json"
            exts = _extensions_in(_read_or_note(path, overlay, problems))
            if exts is not None:
                loaded = ExtensionSetting(path, cdir.scope, exts[EXTENSION]) if EXTENSION in exts else None
    # 2. jupyter_server's merge: per folder from the lowest priority up, config.d/*.json, then the main file.
    merged: list[ExtensionSetting] = []
    for cdir in reversed(dirs):
        for path in (*_drop_ins(cdir.path / EXT_DIR, overlay), cdir.path / f"{SERVER[2]}.json"):
            exts = _extensions_in(_read_or_note(path, overlay, problems))
            if exts is not None and EXTENSION in exts:
                merged.append(ExtensionSetting(path, cdir.scope, exts[EXTENSION]))
    settings = list(merged)
    if loaded is not None and loaded not in settings:
        settings.append(loaded)  # a jupyter_config.json setting: not part of the merge, but it wins
    effective = loaded if loaded is not None else (merged[-1] if merged else None)
    return ExtensionStatus(tuple(settings), effective)


def _extensions_in(data: Mapping[str, Any] | None) -> dict[str, Any] | None:
    table = data.get(SERVER[1]) if data else None
    exts = table.get(EXT_KEY) if isinstance(table, dict) else None
    return exts if isinstance(exts, dict) else None


def _drop_ins(folder: Path, overlay: _Overlay) -> list[Path]:
    """``folder/*.json`` in name order (jupyter_server's ``sorted(glob(...))``), with a preview's files."""
    try:
        names = {n for n in os.listdir(folder) if n.endswith(".json")}
    except OSError:
        names = set()
    for path in overlay:
        if path.parent == folder:
            names.add(path.name)
    return [folder / n for n in sorted(names, key=lambda n: str(folder / n))]


def _read_or_note(path: Path, overlay: _Overlay, problems: list[str]) -> dict[str, Any] | None:
    try:
        return _read_json(path, overlay)
    except UserError as e:
        problems.append(f"{e} (Jupyter ignores this file)")
        return None


def _py_assignment_line(path: Path, section: str) -> int | None:
    """The line of the last ``c.<section>.kernel_spec_manager_class = ...`` in a Python config file."""
    try:
        text = safeio.read_text(path)
    except OSError:
        return None
    line = None
    for match in _PY_ASSIGN.finditer(text):
        if match.group("section") == section:
            line = text.count("\n", 0, match.start()) + 1
    return line


# --- the Jupyters on the machine -------------------------------------------------


def find_jupyters(ctx: Context, envs: Iterable[Environment]) -> tuple[JupyterInstall, ...]:
    """Every Jupyter kernelkeeper can see, from files: ``jupyter`` on PATH, discovered environments
    with jupyter_server or notebook, and the Python running kernelkeeper."""
    from .doctor import jupyters_on_path, owner_of
    from .kernelspecs import env_prefix_of

    envs = tuple(envs)
    found: dict[str, tuple[Path, Path | None, list[str]]] = {}

    def note(prefix: Path, python: Path | None, how: str) -> None:
        key = os.path.normcase(os.path.realpath(prefix))
        entry = found.setdefault(key, (prefix, python, []))
        if how not in entry[2]:
            entry[2].append(how)

    note(Path(sys.prefix), Path(sys.executable), "the Python running kernelkeeper")
    for script, python in jupyters_on_path(ctx):
        owner = owner_of(python, envs)
        prefix = owner.prefix if owner else (env_prefix_of(python) if python else None)
        if prefix is not None:
            note(prefix, python, f"`jupyter` on PATH: {script}")
    for env in envs:
        note(env.prefix, env.python, f"environment {env.name} ({env.kind})")
    out: list[JupyterInstall] = []
    for prefix, python, how in found.values():
        sites = site_dirs(prefix, ctx.home)
        server = _version_in(sites, "jupyter_server")
        notebook = _version_in(sites, "notebook")
        if server is None and notebook is None:
            continue
        out.append(JupyterInstall(prefix, python, tuple(how), server, notebook, imports_kernelkeeper(sites)))
    return tuple(out)


def site_dirs(prefix: Path, home: Path | None = None) -> tuple[Path, ...]:
    """The folders a prefix's Python imports from, as far as files tell (a venv's own; a base
    Python's also Debian's dist-packages and the user site)."""
    lib = prefix / "lib"
    try:
        minors = sorted(n for n in os.listdir(lib) if n.startswith(("python", "pypy")))
    except OSError:
        minors = []
    out = [lib / n / "site-packages" for n in minors] + [prefix / "Lib" / "site-packages"]
    if not (prefix / "pyvenv.cfg").is_file():
        out += [lib / "python3" / "dist-packages"]
        out += [prefix / "local" / "lib" / n / "dist-packages" for n in minors]
        if home is not None:
            out += [home / ".local" / "lib" / n / "site-packages" for n in minors]
    return tuple(p for p in out if p.is_dir())


def imports_kernelkeeper(sites: Iterable[Path]) -> bool:
    """Whether ``import kernelkeeper`` would work, from files: the package in a site folder, or a
    ``.pth`` file there (an editable install) naming a folder that holds it or an import hook for it."""
    for site in sites:
        if (site / "kernelkeeper" / "__init__.py").is_file():
            return True
        try:
            names = [n for n in os.listdir(site) if n.endswith(".pth")]
        except OSError:
            continue
        for name in names:
            try:
                text = safeio.read_text(site / name, limit=1 << 16)
            except OSError:
                continue
            for raw in text.splitlines():
                line = raw.strip()
                if not line or line.startswith("#"):
                    continue
                if line.startswith(("import ", "import\t")):
                    # setuptools' editable finder hook for this package, whose module sits beside the .pth
                    hook = _EDITABLE_HOOK.match(line)
                    if hook and (site / f"{hook.group(1)}.py").is_file():
                        return True
                    continue
                folder = Path(line) if os.path.isabs(line) else site / line
                if (folder / "kernelkeeper" / "__init__.py").is_file():
                    return True
    return False


def _version_in(sites: Iterable[Path], name: str) -> str | None:
    from .doctor import dist_version

    for site in sites:
        version = dist_version(site, name)
        if version is not None:
            return version
    return None


def judge(install: JupyterInstall, st: JupyterConfigStatus) -> tuple[JupyterView, ...]:
    """What each Jupyter app of an install does, given the config as it sees it."""
    views: list[JupyterView] = []
    apps = ([st.server] if install.jupyter_server else []) + ([st.notebook6] if install.notebook6 else [])
    for app in apps:
        winner = app.effective
        key = f"{app.section}.{KEY}"
        if app.state is State.UNKNOWN and winner is not None:
            views.append(
                JupyterView(
                    install,
                    app.app,
                    Outcome.UNKNOWN,
                    f"{winner.path} line {winner.line} sets {key} in Python; not evaluated",
                    winner,
                )
            )
        elif app.state is State.ENABLED and winner is not None:
            if install.imports_kernelkeeper:
                reason = f"uses the provider (set by the old key in {winner.path})"
                views.append(JupyterView(install, app.app, Outcome.PROVIDER, reason, winner))
            else:
                reason = (
                    f"will not start: {winner.path} sets {key} to kernelkeeper's provider, "
                    "which its Python cannot import"
                )
                views.append(JupyterView(install, app.app, Outcome.FAILS, reason, winner))
        elif app.state is State.OTHER and winner is not None:
            reason = f"keeps {winner.value}: set in {winner.path}"
            views.append(JupyterView(install, app.app, Outcome.KEEPS_OTHER, reason, winner))
        elif app.app != SERVER[0]:
            reason = "runs as before: Notebook 6 makes its kernel spec manager before loading extensions"
            views.append(JupyterView(install, app.app, Outcome.AS_BEFORE, reason))
        elif not st.extension.enabled:
            views.append(
                JupyterView(install, app.app, Outcome.AS_BEFORE, "runs as before: the extension is not enabled")
            )
        elif not install.imports_kernelkeeper:
            reason = "runs as before: its Python cannot import kernelkeeper"
            views.append(JupyterView(install, app.app, Outcome.AS_BEFORE, reason))
        else:
            views.append(JupyterView(install, app.app, Outcome.PROVIDER, "uses the provider"))
    return tuple(views)


def fix_for(setting: Setting) -> str:
    """The command that removes a legacy key: ``enable`` for one of our scopes, else by hand."""
    for scope in SCOPES:
        try:
            folder = scope_config_dir(scope)
        except UserError:
            continue
        if _same_path(setting.path.parent, folder):
            return "kernelkeeper jupyter enable" + ("" if scope == "user" else f" --{scope}")
    return f"remove {setting.section}.{KEY} from {setting.path} (or run kernelkeeper jupyter enable from that Python)"


# --- enable / disable ----------------------------------------------------------


def _legacy_targets(folder: Path) -> list[tuple[Path, str]]:
    return [
        (folder / f"{SERVER[2]}.json", SERVER[1]),
        (folder / f"{NOTEBOOK6[2]}.json", NOTEBOOK6[1]),
        (folder / f"{BASE_CONFIG}.json", SERVER[1]),
        (folder / f"{BASE_CONFIG}.json", NOTEBOOK6[1]),
    ]


def enable(scope: str = "user", *, dry_run: bool = False, installs: Sequence[JupyterInstall] = ()) -> ToggleResult:
    """Enable the kernelkeeper server extension in the scope's config folder, and remove legacy keys there.

    Writes ``jupyter_server_config.d/kernelkeeper.json`` (merged with what that file holds) and
    removes ``kernel_spec_manager_class`` where it names kernelkeeper's provider in the folder's
    ``jupyter_server_config.json``, ``jupyter_notebook_config.json`` and ``jupyter_config.json``;
    another manager's setting is left alone. A second run changes nothing. ``dry_run`` reports
    without writing. ``installs`` (from ``find_jupyters``) are judged against the result.
    """
    folder = scope_config_dir(scope)
    ext = folder / EXT_DIR / EXT_FILE
    overlay: dict[Path, dict[str, Any] | None] = {}
    change, data = _plan_extension(ext, enable=True)
    changes = [change]
    if change.modifies:
        overlay[ext] = data
    skipped = _plan_legacy_removal(folder, overlay, changes)
    if not dry_run:
        _write_all(overlay)
    after = _with_views(_status(overlay), installs, overlay)
    warnings = skipped + _enable_warnings(after, ext)
    return ToggleResult("enable", scope, folder, dry_run, tuple(changes), after, warnings)


def disable(scope: str = "user", *, dry_run: bool = False, installs: Sequence[JupyterInstall] = ()) -> ToggleResult:
    """Remove kernelkeeper from the scope's config folder, and nothing else.

    Removes the extension's enable (the ``kernelkeeper`` entry of ``jpserver_extensions`` in
    ``jupyter_server_config.d/kernelkeeper.json`` and ``jupyter_server_config.json``) and every
    legacy key naming kernelkeeper's provider, drops a section the removal emptied, and removes a
    file only when nothing else is left in it. A key holding another class is left alone.
    """
    folder = scope_config_dir(scope)
    ext = folder / EXT_DIR / EXT_FILE
    overlay: dict[Path, dict[str, Any] | None] = {}
    change, data = _plan_extension(ext, enable=False)
    changes = [change]
    if change.modifies:
        overlay[ext] = data
    skipped: list[str] = []
    main = folder / f"{SERVER[2]}.json"
    try:
        main_change, main_data = _plan_extension(main, enable=False, overlay=overlay)
    except UserError as e:
        skipped.append(f"{e}: left untouched")
    else:
        if main_change.modifies:
            overlay[main] = main_data
            changes.append(main_change)
    skipped_legacy = _plan_legacy_removal(folder, overlay, changes)
    if not dry_run:
        _write_all(overlay)
    after = _with_views(_status(overlay), installs, overlay)
    warnings = tuple(dict.fromkeys(skipped)) + skipped_legacy + _disable_warnings(after)
    return ToggleResult("disable", scope, folder, dry_run, tuple(changes), after, warnings)


def _plan_legacy_removal(
    folder: Path, overlay: dict[Path, dict[str, Any] | None], changes: list[FileChange]
) -> tuple[str, ...]:
    """Remove kernelkeeper's legacy keys in one folder (into ``overlay``); the files it had to skip."""
    skipped: list[str] = []
    for path, section in _legacy_targets(folder):
        try:
            change, new_data = _plan_disable(path, section, overlay)
        except UserError as e:
            skipped.append(f"{e}: left untouched")  # a file Jupyter ignores too: it cannot hold a working key
            continue
        if change.modifies:
            overlay[path] = new_data
        if change.change is not Change.NOT_SET:
            changes.append(change)
    return tuple(dict.fromkeys(skipped))


def classic_notebook_installed() -> bool:
    """Whether this Python has classic Notebook (< 7), which reads ``NotebookApp`` config."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        major = version("notebook").split(".")[0]
    except PackageNotFoundError:
        return False
    return major.isdigit() and int(major) < 7


def _plan_extension(
    path: Path, *, enable: bool, overlay: _Overlay | None = None
) -> tuple[FileChange, dict[str, Any] | None]:
    """Set (or remove) ``ServerApp.jpserver_extensions["kernelkeeper"]`` in one file, keeping the rest."""
    key = f"{EXT_KEY}.{EXTENSION}"
    section = SERVER[1]
    current = _read_json(path, overlay or {})
    data: dict[str, Any] = dict(current) if current is not None else {}
    table = data.get(section, {})
    exts = table.get(EXT_KEY, {}) if isinstance(table, dict) else None
    if not isinstance(table, dict) or not isinstance(exts, dict):
        if not enable and not isinstance(exts, dict):
            return FileChange(path, section, Change.NOT_SET, key=key), current
        raise UserError(
            f"{path}: {section}.{EXT_KEY} is not a JSON object, so kernelkeeper cannot enable its extension there",
            hint=f"fix or remove the {section!r} entry in {path}",
        )
    before = exts.get(EXTENSION, None)
    before_text = None if EXTENSION not in exts else json.dumps(before)
    if enable:
        if before is True:
            return FileChange(path, section, Change.ALREADY, before_text, key=key), data
        data[section] = {**table, EXT_KEY: {**exts, EXTENSION: True}}
        change = Change.SET if EXTENSION not in exts else Change.REPLACED
        created = current is None
        return FileChange(path, section, change, before_text, created, content=_dump(data), key=key), data
    if EXTENSION not in exts:
        return FileChange(path, section, Change.NOT_SET, key=key), current
    rest_exts = {k: v for k, v in exts.items() if k != EXTENSION}
    rest = {k: v for k, v in table.items() if k != EXT_KEY}
    if rest_exts:
        rest[EXT_KEY] = rest_exts
    if rest:
        data[section] = rest
    else:
        del data[section]
    if not data:
        return FileChange(path, section, Change.REMOVED, before_text, file_removed=True, key=key), None
    return FileChange(path, section, Change.REMOVED, before_text, content=_dump(data), key=key), data


def _plan_disable(path: Path, section: str, overlay: _Overlay) -> tuple[FileChange, dict[str, Any] | None]:
    current = _read_json(path, overlay)  # overlay: jupyter_config.json is visited once per section
    table = current.get(section) if current is not None else None
    if current is None or not isinstance(table, dict) or KEY not in table:
        return FileChange(path, section, Change.NOT_SET), current
    before = table[KEY]
    if before != PROVIDER:
        return FileChange(path, section, Change.FOREIGN, str(before)), current
    data = dict(current)
    rest = {k: v for k, v in table.items() if k != KEY}
    if rest:
        data[section] = rest
    else:
        del data[section]
    if not data:
        return FileChange(path, section, Change.REMOVED, before, file_removed=True), None
    return FileChange(path, section, Change.REMOVED, before, content=_dump(data)), data


def _enable_warnings(after: JupyterConfigStatus, ext: Path) -> tuple[str, ...]:
    out: list[str] = []
    ext_status = after.extension
    if not any(_same_path(s.path, ext) for s in ext_status.settings):
        out.append(
            f"{ext.parent.parent} is not one of the folders Jupyter reads config from (jupyter --paths): "
            "jupyter_server will not see the extension"
        )
    elif not ext_status.enabled and ext_status.effective is not None:
        winner = ext_status.effective
        out.append(
            f"{winner.path} ({winner.scope}) has higher priority and sets {EXT_KEY}.{EXTENSION} = "
            f"{json.dumps(winner.value)}: jupyter_server will not load kernelkeeper"
        )
    winner_setting = after.server.effective
    if after.server.state in (State.OTHER, State.UNKNOWN) and winner_setting is not None:
        what = PY_NOTE if winner_setting.value is None else f"sets {winner_setting.value}"
        out.append(
            f"{winner_setting.path} ({winner_setting.scope}) {what} as ServerApp.{KEY}: "
            "the extension leaves a manager you chose alone, so kernelkeeper's provider is not used"
        )
    for setting in after.legacy:
        out.append(
            f"{setting.path} ({setting.scope}) still sets {setting.section}.{KEY} to kernelkeeper's provider "
            f"(the old way): a Jupyter there that cannot import kernelkeeper will not start; fix: {fix_for(setting)}"
        )
    if classic_notebook_installed() or any(v.app == NOTEBOOK6[0] for v in after.jupyters):
        out.append("Notebook 6 does not use the provider (it loads extensions too late): use `kernelkeeper sync`")
    return tuple(dict.fromkeys(out))


def _disable_warnings(after: JupyterConfigStatus) -> tuple[str, ...]:
    out = []
    if after.extension.enabled and after.extension.effective is not None:
        ext = after.extension.effective
        out.append(f"jupyter_server still loads the kernelkeeper extension: {ext.path} ({ext.scope}) enables it")
    for app in after.apps:
        winner = app.effective
        if app.enabled and winner is not None:
            out.append(f"{app.section} still uses kernelkeeper's provider: {winner.path} ({winner.scope}) sets it")
        elif app.state is State.UNKNOWN and winner is not None:
            out.append(f"{winner.path} ({winner.scope}) sets {app.section}.{KEY} in Python; check it by hand")
    return tuple(out)


def _same_path(a: Path, b: Path) -> bool:
    return os.path.normpath(os.path.abspath(a)) == os.path.normpath(os.path.abspath(b))


# --- files ---------------------------------------------------------------------


def _read_json(path: Path, overlay: _Overlay) -> dict[str, Any] | None:
    """A config file's object, None when it does not exist; UserError naming the file when unusable."""
    if path in overlay:
        return overlay[path]
    try:
        raw = safeio.read_bytes(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        raise UserError(f"cannot read {path}: {safeio.why(e)}") from e
    try:
        text = raw.decode("utf-8")
        if not text.strip():
            return {}  # an empty file (`touch`) holds no settings
        data = safeio.loads_json(text, str(path))
    except (UnicodeDecodeError, ValueError) as e:
        raise UserError(
            f"{path} is not valid JSON: {e}",
            hint="fix the file (or move it away) and run again; kernelkeeper left it untouched",
        ) from e
    if not isinstance(data, dict):
        raise UserError(
            f"{path} does not hold a JSON object (found {type(data).__name__})",
            hint='a Jupyter config file is a JSON object like {"ServerApp": {...}}; fix it and run again',
        )
    return data


def _dump(data: Mapping[str, Any]) -> str:
    # ASCII escapes: traitlets reads config files with the locale's encoding.
    return json.dumps(data, indent=2) + "\n"


def _write_all(overlay: Mapping[Path, dict[str, Any] | None]) -> None:
    for path, data in overlay.items():
        try:
            if data is None:
                path.unlink()
            else:
                _write_atomic(path, _dump(data))
        except OSError as e:
            raise UserError(
                f"cannot write {path}: {e.strerror or e}",
                hint="the system and sys-prefix scopes may need administrator rights; or use --user",
            ) from e


def _write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` in one rename, keeping its permissions (a symlinked file is written through)."""
    target = path.resolve() if path.is_symlink() else path
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        mode = 0o644  # readable by everyone: a system-wide config must be readable by every user's server
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
