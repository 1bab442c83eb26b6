"""Turn kernelkeeper's dynamic provider on and off in Jupyter's config, and say who wins.

The provider is used when ``ServerApp.kernel_spec_manager_class`` (jupyter_server:
JupyterLab, Notebook 7, JupyterHub single-user servers) or, for classic
Notebook 6, ``NotebookApp.kernel_spec_manager_class`` names it. A
``jupyter_server_config.d/*.json`` drop-in only enables server extensions and is
ignored for this setting, so ``enable`` merges the key into
``jupyter_server_config.json`` (and ``jupyter_notebook_config.json``) of one
scope's config folder, atomically, leaving every other setting as it was.

Which file wins follows traitlets/jupyter_core exactly (checked against
``jupyter server --show-config`` in the tests):

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

The last load that sets the key wins. The folder list is the one this Python
sees: a Jupyter server running from another prefix has another sys-prefix folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import safeio
from .errors import UserError

PROVIDER = "kernelkeeper.provider.KernelKeeperSpecManager"
KEY = "kernel_spec_manager_class"
SCOPES = ("user", "sys-prefix", "system")
PY_NOTE = "set in a Python config file, value not evaluated"

# (app, traitlets section, app-specific config file base name)
SERVER = ("jupyter_server", "ServerApp", "jupyter_server_config")
NOTEBOOK6 = ("notebook6", "NotebookApp", "jupyter_notebook_config")
BASE_CONFIG = "jupyter_config"

# `c.ServerApp.kernel_spec_manager_class = ...` or `c.ServerApp["kernel_spec_manager_class"] = ...`
_PY_ASSIGN = re.compile(
    r"^[ \t]*c\.(?P<section>\w+)"
    r"""(?:\.kernel_spec_manager_class|\[\s*(['"])kernel_spec_manager_class\2\s*\])"""
    r"[ \t]*=(?!=)",
    re.MULTILINE,
)

if TYPE_CHECKING:
    from typing import TypeAlias

    # What a JSON file holds, or None for a missing (or, in a preview, removed) file.
    _Overlay: TypeAlias = Mapping[Path, "dict[str, Any] | None"]


# --- results -------------------------------------------------------------------


class State(str, Enum):
    """Which kernel spec manager a Jupyter app ends up with."""

    ENABLED = "enabled"  # kernelkeeper's provider wins
    DEFAULT = "default"  # nothing sets the key: jupyter_client's KernelSpecManager
    OTHER = "other"  # another class wins
    UNKNOWN = "unknown"  # a Python config file wins; its value is not evaluated


class Change(str, Enum):
    """What enable/disable did (or would do) to one key in one file."""

    SET = "set"  # key added
    REPLACED = "replaced"  # key held another class; now kernelkeeper's
    ALREADY = "already-enabled"
    REMOVED = "removed"
    NOT_SET = "not-set"
    FOREIGN = "foreign"  # disable: the key holds another class, left alone


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
class JupyterConfigStatus:
    """Where ``kernel_spec_manager_class`` is set across Jupyter's config folders, and what wins."""

    provider: str
    config_dirs: tuple[ConfigDir, ...]  # jupyter_config_path() order: highest priority first
    apps: tuple[AppStatus, ...]  # jupyter_server first, then classic Notebook 6
    problems: tuple[str, ...] = ()  # config files Jupyter cannot read (and so ignores)

    @property
    def server(self) -> AppStatus:
        return self.apps[0]

    @property
    def notebook6(self) -> AppStatus:
        return self.apps[1]

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "config_dirs": [d.to_json() for d in self.config_dirs],
            "apps": [a.to_json() for a in self.apps],
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

    @property
    def modifies(self) -> bool:
        return self.change in (Change.SET, Change.REPLACED, Change.REMOVED)

    @property
    def message(self) -> str:
        where = f"{self.section}.{KEY} in {self.path}"
        if self.change is Change.SET:
            return f"set {where}" + (" (new file)" if self.file_created else "")
        if self.change is Change.REPLACED:
            return f"set {where}, replacing {self.before}"
        if self.change is Change.ALREADY:
            return f"already enabled: {where}"
        if self.change is Change.REMOVED:
            return f"removed {where}" + (" (file removed: nothing else in it)" if self.file_removed else "")
        if self.change is Change.FOREIGN:
            return f"left {where} alone: it holds {self.before}, not kernelkeeper's provider"
        return f"not set: {where}"

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "section": self.section,
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

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "scope": self.scope,
            "config_dir": str(self.config_dir),
            "dry_run": self.dry_run,
            "changed": self.changed,
            "changes": [c.to_json() for c in self.changes],
            "warnings": list(self.warnings),
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


# --- status --------------------------------------------------------------------


def status() -> JupyterConfigStatus:
    """Every config file that sets ``kernel_spec_manager_class``, in load order, and which one wins."""
    return _status({})


def _status(overlay: _Overlay) -> JupyterConfigStatus:
    dirs = config_dirs()
    problems: list[str] = []
    apps = tuple(_app_status(app, dirs, overlay, problems) for app in (SERVER, NOTEBOOK6))
    return JupyterConfigStatus(PROVIDER, dirs, apps, tuple(dict.fromkeys(problems)))


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
            try:
                data = _read_json(js, overlay)
            except UserError as e:
                problems.append(f"{e} (Jupyter ignores this file)")
                continue
            table = data.get(section) if data else None
            if isinstance(table, dict) and KEY in table:
                value = table[KEY]
                settings.append(Setting(js, cdir.scope, section, value if isinstance(value, str) else repr(value)))
    return AppStatus(name, section, tuple(settings))


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


# --- enable / disable ----------------------------------------------------------


def enable(scope: str = "user", *, notebook6: bool | None = None, dry_run: bool = False) -> ToggleResult:
    """Set kernelkeeper's provider as ``ServerApp.kernel_spec_manager_class`` in the scope's config folder.

    Merges into ``jupyter_server_config.json`` (and, when ``notebook6`` is true or, if None, classic
    Notebook 6 is installed, ``NotebookApp`` in ``jupyter_notebook_config.json``), keeping every other
    setting. A second run changes nothing. ``dry_run`` reports the changes without writing.
    """
    folder = scope_config_dir(scope)
    if notebook6 is None:
        notebook6 = classic_notebook_installed()
    targets = [(folder / f"{SERVER[2]}.json", SERVER[1])]
    if notebook6:
        targets.append((folder / f"{NOTEBOOK6[2]}.json", NOTEBOOK6[1]))
    changes: list[FileChange] = []
    overlay: dict[Path, dict[str, Any] | None] = {}
    for path, section in targets:
        change, new_data = _plan_enable(path, section)
        changes.append(change)
        if change.modifies:
            overlay[path] = new_data
    if not dry_run:
        _write_all(overlay)
    after = _status(overlay)
    warnings = _enable_warnings(after, targets)
    return ToggleResult("enable", scope, folder, dry_run, tuple(changes), after, warnings)


def disable(scope: str = "user", *, dry_run: bool = False) -> ToggleResult:
    """Remove kernelkeeper's provider from the scope's config folder, and nothing else.

    Removes the key from ``jupyter_server_config.json`` (and ``jupyter_notebook_config.json``,
    ``jupyter_config.json`` where it names kernelkeeper's provider), drops a section the removal
    emptied, and removes a file only when nothing else is left in it. A key holding another class is
    left alone and reported as ``Change.FOREIGN``.
    """
    folder = scope_config_dir(scope)
    targets = [
        (folder / f"{SERVER[2]}.json", SERVER[1], True),
        (folder / f"{NOTEBOOK6[2]}.json", NOTEBOOK6[1], False),
        (folder / f"{BASE_CONFIG}.json", SERVER[1], False),
        (folder / f"{BASE_CONFIG}.json", NOTEBOOK6[1], False),
    ]
    changes: list[FileChange] = []
    skipped: list[str] = []
    overlay: dict[Path, dict[str, Any] | None] = {}
    for path, section, primary in targets:
        try:
            change, new_data = _plan_disable(path, section, overlay)
        except UserError as e:
            if primary:
                raise
            skipped.append(f"{e}: left untouched")  # not the file enable writes: don't let it block disable
            continue
        if change.modifies:
            overlay[path] = new_data
        if primary or change.change is not Change.NOT_SET:
            changes.append(change)
    if not dry_run:
        _write_all(overlay)
    after = _status(overlay)
    warnings = tuple(dict.fromkeys(skipped)) + _disable_warnings(after)
    return ToggleResult("disable", scope, folder, dry_run, tuple(changes), after, warnings)


def classic_notebook_installed() -> bool:
    """Whether this Python has classic Notebook (< 7), which reads ``NotebookApp`` config."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        major = version("notebook").split(".")[0]
    except PackageNotFoundError:
        return False
    return major.isdigit() and int(major) < 7


def _plan_enable(path: Path, section: str) -> tuple[FileChange, dict[str, Any]]:
    current = _read_json(path, {})
    data: dict[str, Any] = dict(current) if current is not None else {}
    table = data.get(section, {})
    if not isinstance(table, dict):
        raise UserError(
            f"{path}: {section!r} is not a JSON object, so kernelkeeper cannot add its setting",
            hint=f"fix or remove the {section!r} entry in {path}",
        )
    before = table.get(KEY)
    before_text = None if before is None else str(before)
    if before == PROVIDER:
        return FileChange(path, section, Change.ALREADY, before_text), data
    data[section] = {**table, KEY: PROVIDER}
    change = Change.SET if KEY not in table else Change.REPLACED
    return FileChange(path, section, change, before_text, file_created=current is None, content=_dump(data)), data


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


def _enable_warnings(after: JupyterConfigStatus, targets: list[tuple[Path, str]]) -> tuple[str, ...]:
    out = []
    for app in after.apps:
        mine = [path for path, section in targets if section == app.section]
        if not mine:
            continue
        ours = [s for s in app.settings if s.is_kernelkeeper and _same_file(s.path, mine)]
        winner = app.effective
        if not ours:
            out.append(
                f"{mine[0].parent} is not one of the folders Jupyter reads config from (jupyter --paths): "
                f"{app.section} will not see the setting"
            )
        elif winner is not None and not app.enabled:
            what = PY_NOTE if winner.value is None else f"sets {winner.value}"
            out.append(
                f"{winner.path} ({winner.scope}) has higher priority and {what}: "
                f"{app.section} will not use kernelkeeper's provider"
            )
    return tuple(out)


def _disable_warnings(after: JupyterConfigStatus) -> tuple[str, ...]:
    out = []
    for app in after.apps:
        winner = app.effective
        if app.enabled and winner is not None:
            out.append(f"{app.section} still uses kernelkeeper's provider: {winner.path} ({winner.scope}) sets it")
        elif app.state is State.UNKNOWN and winner is not None:
            out.append(f"{winner.path} ({winner.scope}) sets {app.section}.{KEY} in Python; check it by hand")
    return tuple(out)


def _same_file(path: Path, candidates: list[Path]) -> bool:
    norm = os.path.normpath(os.path.abspath(path))
    return any(norm == os.path.normpath(os.path.abspath(c)) for c in candidates)


# --- files ---------------------------------------------------------------------


def _read_json(path: Path, overlay: _Overlay) -> dict[str, Any] | None:
    """A config file's object, None when it does not exist; UserError naming the file when unusable."""
    if path in overlay:
        return overlay[path]
    try:
        raw = safeio.read_bytes(path)  # a FIFO would block open() for good
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        raise UserError(f"cannot read {path}: {safeio.why(e)}") from e
    try:
        text = raw.decode("utf-8")
        if not text.strip():
            return {}  # an empty file (`touch`) holds no settings
        data = safeio.loads_json(text, "the file")
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
