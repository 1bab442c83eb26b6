"""Plan: desired kernels vs the kernelspecs present -> a list of actions. Pure.

``plan_sync`` decides what ``sync`` does; ``apply`` (in apply.py) is the only
writer. Rules, each with its reason in the plan:

* add a kernel for every healthy environment with ipykernel that passes the
  filters and has no kernel yet (neither kernelkeeper's nor a hand-made one
  running the same interpreter);
* update kernelkeeper's kernel of an environment whose kernel.json would now
  differ (a new Python version, a moved interpreter), keeping its name;
* remove kernelkeeper's kernels whose environment is gone (interpreter missing);
* keep a kernel whose ipykernel overlay was removed (the environment is not gone):
  a note says which command brings the overlay back;
* never touch a kernelspec without kernelkeeper's marker, nor one a package
  installed (listed in a dist-info RECORD: it belongs to that package);
* at most one action per kernel (`Plan` refuses two).
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .environments import Environment
from .kernel import DISPLAY_FORMAT, display_name, kernel_json, kernel_name, logo_files
from .kernelspecs import MARKER, KernelList, KernelSpecInfo
from .overlay import Overlay


@dataclass(frozen=True)
class Filters:
    """Which environments ``sync`` gives a kernel (globs for names and paths)."""

    include_kinds: tuple[str, ...] = ()
    exclude_kinds: tuple[str, ...] = ()
    include_names: tuple[str, ...] = ()
    exclude_names: tuple[str, ...] = ()
    exclude_paths: tuple[str, ...] = ()

    def admits(self, env: Environment) -> bool:
        if self.include_kinds and not set(env.kinds) & set(self.include_kinds):
            return False
        if set(env.kinds) & set(self.exclude_kinds):
            return False
        if self.include_names and not any(fnmatch.fnmatch(env.name, g) for g in self.include_names):
            return False
        if any(fnmatch.fnmatch(env.name, g) for g in self.exclude_names):
            return False
        return not any(fnmatch.fnmatch(str(env.prefix), os.path.expanduser(g)) for g in self.exclude_paths)


@dataclass(frozen=True)
class Action:
    action: str  # add | update | remove
    kernel: str
    folder: Path
    reason: str
    env: Path | None = None
    spec: dict[str, Any] | None = field(default=None, compare=False)
    files: dict[str, Path] = field(default_factory=dict, compare=False)

    @property
    def path(self) -> Path:
        return self.folder / self.kernel

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "kernel": self.kernel,
            "env": str(self.env) if self.env else None,
            "reason": self.reason,
            "path": str(self.path),
        }


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...] = ()
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Two actions on one kernel (say "update" then "remove") undo each other: a plan that holds them is a bug.
        seen: set[tuple[Path, str]] = set()
        for a in self.actions:
            key = (a.folder, a.kernel)
            if key in seen:
                raise AssertionError(f"a plan holds two actions for the kernel {a.kernel} in {a.folder}")
            seen.add(key)

    def to_json(self) -> dict[str, Any]:
        return {"actions": [a.to_json() for a in self.actions], "notes": list(self.notes)}

    def __bool__(self) -> bool:
        return bool(self.actions)


def _comparable(spec: dict[str, Any]) -> dict[str, Any]:
    """A kernel.json without the fields that change with every kernelkeeper release."""
    out = dict(spec)
    metadata = dict(out.get("metadata") or {})
    marker = dict(metadata.get(MARKER) or {})
    for informational in ("tool_version", "project", "python"):
        marker.pop(informational, None)
    metadata[MARKER] = marker
    out["metadata"] = metadata
    return out


def spec_changes(old: KernelSpecInfo, new: dict[str, Any]) -> str | None:
    """Why an existing kernelspec differs from what it should be, or None when it doesn't."""
    old_spec = {
        "argv": list(old.argv),
        "display_name": old.display_name,
        "language": old.language,
        "interrupt_mode": new.get("interrupt_mode"),
        "env": old.env,
        "metadata": old.metadata,
    }
    if _comparable(old_spec) == _comparable(new):
        return None
    old_version = old.marker.get("python_version")
    new_version = new["metadata"][MARKER].get("python_version")
    if old_version != new_version:
        return f"Python {old_version} → {new_version}"
    if list(old.argv) != new["argv"]:
        return f"interpreter {old.argv[0] if old.argv else '?'} → {new['argv'][0]}"
    if old.display_name != new["display_name"]:
        return f"display name {old.display_name!r} → {new['display_name']!r}"
    return "kernel.json differs from what the environment needs"


class Taken:
    """Names a new kernel must not use: every kernel's in Jupyter's path and in the target folder,
    except a kernel of the same environment in another scope (it is the same kernel).

    Built once per plan; a membership test costs O(1), so planning 10,000 adds stays linear.
    """

    def __init__(self, present: KernelList, folder: Path) -> None:
        self.in_folder: set[str] = set()
        self.elsewhere: dict[str, set[str]] = {}  # name -> prefixes of kernelkeeper kernels with that name
        self.foreign: set[str] = set()
        for k in present.kernels:
            self.add(k, folder)

    def add(self, k: KernelSpecInfo, folder: Path) -> None:
        if k.resource_dir.parent == folder:
            self.in_folder.add(k.name)
        elif k.managed:
            self.elsewhere.setdefault(k.name, set()).add(str(k.marker.get("prefix")))
        else:
            self.foreign.add(k.name)

    def for_prefix(self, prefix: Path) -> _TakenFor:
        return _TakenFor(self, str(prefix))


class _TakenFor:
    def __init__(self, taken: Taken, prefix: str) -> None:
        self.taken = taken
        self.prefix = prefix

    def __contains__(self, name: object) -> bool:
        t = self.taken
        if name in t.in_folder or name in t.foreign:
            return True
        owners = t.elsewhere.get(str(name))
        return bool(owners) and owners != {self.prefix}


def taken_names(present: KernelList, folder: Path, prefix: Path) -> _TakenFor:
    """Names a new kernel for ``prefix`` must not use (see `Taken`)."""
    return Taken(present, folder).for_prefix(prefix)


BASE_KINDS = ("system", "pyenv", "uv-python")


def runs_ipykernel(argv: Iterable[str], marker: Mapping[str, Any] | None = None) -> bool:
    """Whether a kernel runs ipykernel in the interpreter of its argv (directly or on an overlay).

    Only such a kernel is *the* kernel of that interpreter's environment. "Python
    (this project)" runs a launcher with kernelkeeper's Python that picks another
    environment at start: it is no environment's kernel, and covers none.
    """
    if marker is not None and marker.get("kind") == "this-project":
        return False
    args = list(argv)[1:]
    if any(a in ("ipykernel_launcher", "ipykernel") for a in args):
        return True
    return "-c" in args and any("ipykernel" in a and "addsitedir" in a for a in args)


def is_env_kernel(k: KernelSpecInfo) -> bool:
    """`runs_ipykernel` for a read kernelspec."""
    return runs_ipykernel(k.argv, k.marker)


def packaged_note(k: KernelSpecInfo, owner: str) -> str:
    """What sync and doctor both say about a kernelspec a package installed (the same words in both)."""
    return (
        f"{k.name} ({k.resource_dir}) was installed by {owner}: it belongs to that package, "
        "so kernelkeeper leaves it as it is (never rewritten, adopted or removed)"
    )


def overlay_note(k: KernelSpecInfo) -> str:
    """What sync and doctor both say about a kernel whose ipykernel overlay was removed."""
    prefix = k.marker.get("prefix") or (str(k.env_prefix) if k.env_prefix else "ENV")
    key = k.overlay or k.marker.get("overlay") or "its"
    return (
        f"{k.name} runs {prefix} on the {key} ipykernel overlay, which was removed: the kernel is kept "
        f"(the environment is still there); `kernelkeeper overlay build {prefix}` brings it back"
    )


def overlay_for(env: Environment, overlays: Mapping[str, Overlay]) -> Overlay | None:
    """The overlay an environment without ipykernel runs on, or None (it gets no kernel then).

    Base interpreters (system, pyenv, uv's) are not projects: they get no overlay kernel unasked.
    """
    from .overlay import clashes, key_of

    if env.has_ipykernel or set(env.kinds) & set(BASE_KINDS):
        return None
    key = key_of(env)
    overlay = overlays.get(key) if key else None
    if overlay is None or clashes(env, overlay):
        return None
    return overlay


def plan_sync(
    environments: Iterable[Environment],
    present: KernelList,
    folder: Path,
    filters: Filters = Filters(),
    overlays: Mapping[str, Overlay] | None = None,
    packaged: Mapping[str, str] | None = None,
    display_format: str = DISPLAY_FORMAT,
) -> Plan:
    """What ``sync`` must do to make ``folder``'s kernels match the environments.

    ``display_format``: the display name of new kernels; a kernel already written keeps its own.

    ``overlays``: built ipykernel overlays by key; environments without
    ipykernel whose Python has one get a kernel that runs on it.
    ``packaged``: kernelspecs a package installed (`packaged.packaged_kernels`), left alone.
    """
    overlays = overlays or {}
    packaged = packaged or {}
    on_overlay = {
        str(e.prefix): o
        for e in environments
        if e.healthy and filters.admits(e) and (o := overlay_for(e, overlays)) is not None
    }
    envs = [
        e for e in environments if e.healthy and filters.admits(e) and (e.has_ipykernel or str(e.prefix) in on_overlay)
    ]
    taken = Taken(present, folder)
    # Only a kernel that runs ipykernel in an interpreter is that environment's kernel (see `runs_ipykernel`).
    visible = [k for k in present.visible().values() if is_env_kernel(k)]
    by_prefix = {str(k.marker.get("prefix")): k for k in visible if k.status in ("ok", "no-overlay") and k.managed}
    by_interpreter = {
        os.path.normpath(str(k.interpreter)): k for k in visible if k.status == "ok" and k.interpreter is not None
    }
    mine: dict[str, KernelSpecInfo] = {}
    for k in present.in_dir(folder):
        if k.managed and k.status != "invalid" and is_env_kernel(k) and str(k.resource_dir) not in packaged:
            mine.setdefault(str(k.marker.get("prefix")), k)
    actions: list[Action] = []
    notes: list[str] = []
    handled: set[str] = set()  # kernels that got their one action (or were found up to date)
    for env in envs:
        existing = mine.get(str(env.prefix))
        overlay = on_overlay.get(str(env.prefix))
        if existing is not None:
            handled.add(existing.name)
            spec = merged_spec(existing, env, overlay=overlay, display_format=display_format)
            why = spec_changes(existing, spec)
            if why:
                actions.append(Action("update", existing.name, folder, why, env.prefix, spec, logo_files(env)))
            continue
        other = by_prefix.get(str(env.prefix)) or (
            by_interpreter.get(os.path.normpath(str(env.python))) if env.python is not None else None
        )
        if other is not None:  # one interpreter, one kernel
            owner = packaged.get(str(other.resource_dir))
            if owner is not None:
                notes.append(f"{env.name} ({env.prefix}) already has a kernel: {packaged_note(other, owner)}")
            elif other.managed:
                notes.append(f"{env.name} ({env.prefix}) already has kernelkeeper's kernel {other.resource_dir}")
            else:
                notes.append(
                    f"{env.name} ({env.prefix}) already has the kernel {other.name!r} made by hand; "
                    f"left as it is (`kernelkeeper adopt {other.name}` makes it kernelkeeper's)"
                )
            continue
        spec = kernel_json(env, display=display_name(env, display_format), overlay=overlay)
        name = kernel_name(env, taken.for_prefix(env.prefix))
        taken.in_folder.add(name)
        why = (
            f"no kernel yet; runs on the {overlay.key} overlay"
            if overlay
            else "environment has ipykernel and no kernel"
        )
        actions.append(Action("add", name, folder, why, env.prefix, spec, logo_files(env)))
    for prefix, k in mine.items():
        if k.name in handled:
            continue  # updated above (a moved interpreter): one action per kernel
        if k.status == "stale":
            actions.append(Action("remove", k.name, folder, f"environment is gone: {k.reason}", Path(prefix)))
        elif k.status == "no-overlay":
            notes.append(overlay_note(k))
    return Plan(tuple(actions), tuple(notes))


# --- adopt: a hand-made kernel becomes kernelkeeper's, in place -----------------------------

_VERSION_IN_NAME = re.compile(r"Python\s*(\d+\.\d+)")


def env_of_kernel(kernel: KernelSpecInfo, environments: Iterable[Environment]) -> Environment | None:
    """The discovered environment a kernelspec's interpreter belongs to."""
    if kernel.interpreter is None:
        return None
    interpreter = os.path.normpath(str(kernel.interpreter))
    for env in environments:
        if env.python is not None and os.path.normpath(str(env.python)) == interpreter:
            return env
    if kernel.env_prefix is not None:
        for env in environments:
            if env.prefix == kernel.env_prefix or str(env.prefix) == os.path.realpath(kernel.env_prefix):
                return env
    return None


def display_mismatch(kernel: KernelSpecInfo, env: Environment) -> str | None:
    """``"Python 3.8"`` in a display name whose interpreter is now 3.11: the old minor, else None."""
    m = _VERSION_IN_NAME.search(kernel.display_name or "")
    if m and env.minor and m.group(1) != env.minor:
        return m.group(1)
    return None


def merged_spec(
    kernel: KernelSpecInfo,
    env: Environment,
    *,
    adopted: bool = False,
    overlay: Overlay | None = None,
    display_format: str = DISPLAY_FORMAT,
) -> dict[str, Any]:
    """The kernel.json an existing kernel should have now.

    What the person chose is kept — the display name (unless it names a Python
    version the environment no longer has), extra variables, other metadata —
    and what the environment dictates is set: interpreter, activation, marker.
    """
    chosen_display, chosen_env = choices(kernel)
    if chosen_display is not None:
        display: str | None = chosen_display
    else:  # a kernel written before choices were recorded: keep its name unless it states a wrong version
        # (one that does gets a new one in the current format).
        display = kernel.display_name if kernel.display_name and not display_mismatch(kernel, env) else None
    display = display or display_name(env, display_format)
    spec = kernel_json(env, display=display, overlay=overlay, extra_env=chosen_env or None)
    ours = set(spec["env"])
    spec["env"] = {**{k: v for k, v in kernel.env.items() if k not in ours}, **spec["env"]}
    metadata = {k: v for k, v in kernel.metadata.items() if k != MARKER}
    spec["metadata"] = {**metadata, **spec["metadata"]}
    record_choices(spec, chosen_display, chosen_env)
    if adopted or kernel.marker.get("adopted"):
        spec["metadata"][MARKER]["adopted"] = True
    return spec


def choices(kernel: KernelSpecInfo) -> tuple[str | None, dict[str, str]]:
    """The display name and variables the person gave `add` (recorded in the marker), if any."""
    display = kernel.marker.get("display_name")
    env = kernel.marker.get("env")
    chosen_env = {str(k): str(v) for k, v in env.items()} if isinstance(env, dict) else {}
    return (display if isinstance(display, str) and display else None), chosen_env


def record_choices(spec: dict[str, Any], display: str | None, env: Mapping[str, str] | None) -> None:
    """Write what the person chose into the marker, so every later update keeps it."""
    marker = spec["metadata"][MARKER]
    if display:
        marker["display_name"] = display
    if env:
        marker["env"] = dict(env)


def adopt_spec(kernel: KernelSpecInfo, env: Environment) -> dict[str, Any]:
    """kernelkeeper's kernel.json for a hand-made kernel: its name, display name and extra variables kept."""
    return merged_spec(kernel, env, adopted=True)


def adopt_refusal(kernel: KernelSpecInfo, env: Environment | None, packaged: str | None = None) -> str | None:
    """Why a kernelspec cannot be adopted, or None. ``packaged``: the package that installed it."""
    if packaged is not None:
        return f"it was installed by {packaged} and belongs to that package"
    if kernel.managed:
        return "already kernelkeeper's"
    if kernel.builtin:
        return "it is ipykernel's built-in python3, not a kernelspec folder (`kernelkeeper sync` gives envs their own)"
    if kernel.status in ("invalid", "stale"):
        return f"it is {kernel.status}: {kernel.reason}"
    if kernel.resource_dir.is_symlink():
        return f"its folder is a link to {os.path.realpath(kernel.resource_dir)}; adopt the folder it points at"
    if not any(a in ("ipykernel_launcher", "ipykernel") for a in kernel.argv):
        return "it does not run ipykernel (not a Python kernel kernelkeeper can rewrite)"
    if env is None:
        return f"its interpreter {kernel.interpreter} belongs to no environment kernelkeeper can find"
    if not env.healthy:
        return f"its environment {env.prefix} is broken: {'; '.join(env.problems)}"
    return None


def plan_adopt(
    kernels: Iterable[KernelSpecInfo],
    environments: Iterable[Environment],
    packaged: Mapping[str, str] | None = None,
) -> tuple[Plan, list[tuple[str, str]]]:
    """Adopt each kernel that can be; the others come back as (name, reason)."""
    envs = list(environments)
    packaged = packaged or {}
    actions: list[Action] = []
    refused: list[tuple[str, str]] = []
    for kernel in kernels:
        env = env_of_kernel(kernel, envs)
        why = adopt_refusal(kernel, env, packaged.get(str(kernel.resource_dir)))
        if why is not None or env is None:
            refused.append((kernel.name, why or "no environment"))
            continue
        reason = f"runs {env.prefix} ({env.kind}); activation and marker added, name kept"
        actions.append(
            Action("update", kernel.name, kernel.resource_dir.parent, reason, env.prefix, adopt_spec(kernel, env))
        )
    return Plan(tuple(actions)), refused
