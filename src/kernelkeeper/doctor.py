"""doctor: explain the machine's Jupyters, Pythons and kernels, and say how to fix each problem.

``diagnose`` returns findings, each with a stable ``code``, a severity, the
subject it is about and the exact command that fixes it. It reads files only
(shebangs, dist-info folders, kernel.json) and runs nothing.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from . import safeio
from .context import Context
from .discovery import Discovery
from .environments import Environment, has_dist
from .install import install_ipykernel
from .kernelspecs import KernelList, KernelSpecInfo, kernel_dirs
from .packaged import packaged_kernels
from .plan import Filters, display_mismatch, env_of_kernel, is_env_kernel, overlay_note, packaged_note

SECTIONS = ("jupyters", "folders", "kernels", "environments")
SEVERITIES = ("error", "warning", "info")


@dataclass(frozen=True)
class Finding:
    code: str
    severity: str  # error | warning | info
    section: str
    subject: str
    message: str
    fix: str | None = None
    needs_yes: bool = False  # the fix removes a kernel kernelkeeper did not make
    # Advice only: `--fix` never applies it; the person decides (`kernelkeeper remove NAME`).
    advice: bool = False
    notebooks: tuple[str, ...] = ()  # notebooks under the scanned folders that use the kernel's name

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity,
            "section": self.section,
            "subject": self.subject,
            "message": self.message,
            "fix": self.fix,
            "needs_yes": self.needs_yes,
            "advice": self.advice,
            "notebooks": list(self.notebooks),
        }


@dataclass(frozen=True)
class Report:
    findings: tuple[Finding, ...]
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def problems(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity != "info")

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": not self.problems,
            "facts": self.facts,
            "findings": [f.to_json() for f in self.findings],
        }


def q(path: object) -> str:
    return shlex.quote(str(path))


# --- Jupyters and Pythons -------------------------------------------------------------


def shebang_python(script: Path) -> Path | None:
    """The interpreter a console script (``jupyter``) runs, from its first line."""
    try:
        # A FIFO named jupyter on PATH would block open() for good; a binary needs only its head.
        lines = safeio.read_head(script, 1536).split(b"\n", 2)
    except OSError:
        return None
    first = lines[0][:512].decode("utf-8", "replace").strip()
    if first.startswith("#!/bin/sh"):
        # pip's trampoline for long paths: '#!/bin/sh\n'''exec' /path/python "$0" "$@"
        second = lines[1].decode("utf-8", "replace") if len(lines) > 1 else ""
        m = re.search(r"exec'?\s+'?([^'\s]+)", second)
        return Path(m.group(1)) if m else None
    if not first.startswith("#!"):
        return None
    parts = first[2:].split()
    if not parts:
        return None
    if os.path.basename(parts[0]) == "env" and len(parts) > 1:
        found = shutil.which(parts[1])
        return Path(found) if found else None
    return Path(parts[0])


def pyenv_selected(ctx: Context) -> Path | None:
    """What a pyenv shim runs: PYENV_VERSION, a .python-version up the tree, or the global version file."""
    root = ctx.path_var("PYENV_ROOT") or ctx.home / ".pyenv"
    version = ctx.env.get("PYENV_VERSION")
    if not version:
        for folder in (ctx.cwd, *ctx.cwd.parents):
            candidate = folder / ".python-version"
            if candidate.is_file():
                try:
                    words = safeio.read_text(candidate).split()
                except OSError:
                    words = []
                version = words[0] if words else None
                break
    if not version:
        try:
            version = safeio.read_text(root / "version").split()[0]
        except (OSError, IndexError):
            version = None
    if not version or version == "system":
        return None
    return root / "versions" / version / "bin" / "python"


def first_on_path(ctx: Context, name: str) -> Path | None:
    found = shutil.which(name, path=ctx.env.get("PATH", ""))
    return Path(found) if found else None


def resolve_python(ctx: Context, python: Path | None) -> Path | None:
    """Follow pyenv's shims to the interpreter they run."""
    if python is None:
        return None
    if "shims" in python.parts:
        return pyenv_selected(ctx) or python
    return python


def jupyters_on_path(ctx: Context) -> list[tuple[Path, Path | None]]:
    """Every ``jupyter`` on PATH, in order, with the Python it runs."""
    out: list[tuple[Path, Path | None]] = []
    seen: set[str] = set()
    for folder in ctx.env.get("PATH", "").split(os.pathsep):
        script = Path(folder) / "jupyter"
        if not folder or not os.access(script, os.X_OK) or str(script) in seen:
            continue
        seen.add(str(script))
        python = resolve_python(ctx, shebang_python(script) if "shims" not in script.parts else script)
        out.append((script, python))
    return out


def _user_site(ctx: Context, env: Environment) -> Path | None:
    if env.minor is None or (env.prefix / "pyvenv.cfg").exists():
        return None
    return ctx.home / ".local" / "lib" / f"python{env.minor}" / "site-packages"


def has_package(ctx: Context, env: Environment, name: str) -> bool:
    return has_dist(env.site_packages, name) or has_dist(_user_site(ctx, env), name)


def dist_version(site: Path | None, name: str) -> str | None:
    if site is None:
        return None
    try:
        for entry in os.listdir(site):
            low = entry.lower()
            if low.startswith(name + "-") and low.endswith(".dist-info"):
                return entry[len(name) + 1 : -len(".dist-info")]
    except OSError:
        return None
    return None


BASE_KINDS = ("system", "pyenv", "uv-python")


def owner_of(python: Path | None, envs: tuple[Environment, ...]) -> Environment | None:
    """The environment an interpreter path belongs to: by its folder, never by what its links resolve to
    (every venv's python links to some base interpreter), except for base installs themselves."""
    if python is None:
        return None
    norm = os.path.normpath(str(python))
    for env in envs:
        if env.python is not None and os.path.normpath(str(env.python)) == norm:
            return env
    for env in envs:
        if norm.startswith(str(env.prefix) + os.sep) and os.path.dirname(norm) in (
            str(env.prefix / "bin"),
            str(env.prefix / "Scripts"),
            str(env.prefix),
        ):
            return env
    from .kernelspecs import env_prefix_of

    prefix = env_prefix_of(python)
    if prefix is not None and ((prefix / "pyvenv.cfg").exists() or (prefix / "conda-meta").exists()):
        return None  # an environment discovery did not see; the caller may describe it
    real = os.path.realpath(python)
    for env in envs:
        if set(env.kinds) & set(BASE_KINDS) and env.python is not None and os.path.realpath(env.python) == real:
            return env
    return None


# --- the diagnosis: one small function per check ----------------------------------------
#
# Each check takes the one ``Machine`` (what discovery and the kernel list found, read once) and
# returns its findings. ``CHECKS`` is the report's order; adding a check is one function here,
# one entry in CHECKS and one test (tests/test_doctor.py), the way `brew doctor` and pre-commit
# hooks are each a unit.


@dataclass(frozen=True)
class Machine:
    """What every check reads: the context, the environments, the kernels Jupyter sees."""

    ctx: Context
    envs: tuple[Environment, ...]
    kernels: KernelList
    server_python: Path | None = None
    filters: Filters = field(default_factory=Filters)

    @cached_property
    def python(self) -> Path | None:
        return resolve_python(self.ctx, first_on_path(self.ctx, "python") or first_on_path(self.ctx, "python3"))

    @cached_property
    def jupyters(self) -> list[tuple[Path, Path | None]]:
        return jupyters_on_path(self.ctx)

    @cached_property
    def installs(self) -> list[Environment]:
        jupyter = ("jupyter_server", "notebook")
        return [e for e in self.envs if any(has_package(self.ctx, e, name) for name in jupyter)]

    @cached_property
    def packaged(self) -> dict[str, str]:
        return packaged_kernels(self.kernels.kernels)

    @cached_property
    def duplicates(self) -> dict[str, KernelSpecInfo]:
        """Duplicate kernel name -> the kernel to keep: same interpreter, same arguments, same variables.

        Two kernels of one interpreter that differ in argv or env (a GPU variant, "Python (this
        project)") are two different kernels.
        """
        same: dict[tuple[str, tuple[str, ...], tuple[tuple[str, str], ...]], list[KernelSpecInfo]] = defaultdict(list)
        for k in self.kernels.kernels:
            if k.interpreter is not None and k.status in ("ok", "no-ipykernel") and is_env_kernel(k):
                same[(os.path.normpath(str(k.interpreter)), k.argv[1:], tuple(sorted(k.env.items())))].append(k)
        extras: dict[str, KernelSpecInfo] = {}
        for group in same.values():
            if len(group) > 1:
                keep = next((k for k in group if k.managed), next((k for k in group if not k.builtin), group[0]))
                extras.update({k.name: keep for k in group if k is not keep and not k.builtin})
        return {name: keep for name, keep in extras.items() if self._package_of(name) is None}

    @cached_property
    def _notebooks(self) -> dict[str, list[str]]:
        return notebooks_using_kernels(self.ctx)

    def _package_of(self, name: str) -> str | None:
        k = next((k for k in self.kernels.kernels if k.name == name), None)
        return None if k is None else self.packaged.get(str(k.resource_dir))

    def used_by(self, name: str) -> tuple[tuple[str, ...], str]:
        """The notebooks whose metadata names the kernel, and a sentence saying so (read on first use)."""
        books = tuple(self._notebooks.get(name, ()))
        if not books:
            return books, f"no notebook under the scanned folders uses the name {name!r}"
        shown = ", ".join(books[:5]) + (f" and {len(books) - 5} more" if len(books) > 5 else "")
        return books, f"notebooks that use {name!r}: {shown}"

    def startable(self) -> list[KernelSpecInfo]:
        """Kernels that may start (ok or lost ipykernel): the ones the kernel checks look into."""
        return [k for k in self.kernels.kernels if k.status in ("ok", "no-ipykernel")]

    def judged(self) -> list[KernelSpecInfo]:
        """Startable kernels that are not a duplicate: a duplicate's finding says all there is to say."""
        return [k for k in self.startable() if k.name not in self.duplicates]


def facts_of(m: Machine) -> dict[str, Any]:
    return {
        "python": str(m.python) if m.python else None,
        "jupyters_on_path": [{"jupyter": str(j), "python": str(p) if p else None} for j, p in m.jupyters],
        "jupyter_installs": [str(e.prefix) for e in m.installs],
        "dirs": _jupyter_dirs(),
        "kernel_dirs": [{"path": str(d), "writable": _writable(d)} for d in kernel_dirs()],
    }


def _jupyter_dirs() -> dict[str, str]:
    from jupyter_core import paths

    return {
        "data": paths.jupyter_data_dir(),
        "config": paths.jupyter_config_dir(),
        "runtime": paths.jupyter_runtime_dir(),
    }


# Jupyters and Pythons.


def check_first_python(m: Machine) -> list[Finding]:
    python = m.python
    message = f"`python` on PATH runs {python}" if python else "no `python` on PATH"
    return [Finding("first-python", "info", "jupyters", str(python) if python else "python", message)]


def check_jupyters_on_path(m: Machine) -> list[Finding]:
    out = []
    for i, (script, runs) in enumerate(m.jupyters):
        owner = owner_of(runs, m.envs)
        where = f"{owner.name} ({owner.kind}, {owner.prefix})" if owner else str(runs)
        out.append(
            Finding(
                "jupyter-on-path" if i == 0 else "jupyter-shadowed-on-path",
                "info",
                "jupyters",
                str(script),
                f"{'first' if i == 0 else 'also'} `jupyter` on PATH: {script} runs {where}",
            )
        )
    return out


def check_jupyter_python_mismatch(m: Machine) -> list[Finding]:
    if not m.jupyters or m.python is None:
        return []
    script, runs = m.jupyters[0]
    if runs is None or os.path.realpath(runs) == os.path.realpath(m.python):
        return []
    return [
        Finding(
            "jupyter-python-mismatch",
            "info",
            "jupyters",
            str(script),
            f"`jupyter` runs {runs} but `python` is {m.python}: a kernel started from "
            "this Jupyter's default python3 kernel does not see the packages of `python`",
            "kernelkeeper sync   # every environment gets its own kernel",
        )
    ]


def check_jupyter_installs(m: Machine) -> list[Finding]:
    out = []
    for inst in m.installs:
        version = dist_version(inst.site_packages, "jupyter_client") or dist_version(
            _user_site(m.ctx, inst), "jupyter_client"
        )
        out.append(
            Finding(
                "jupyter-install",
                "info",
                "jupyters",
                str(inst.prefix),
                f"a Jupyter is installed in {inst.name} ({inst.kind}, Python {inst.version or '?'})"
                + (f", jupyter_client {version}" if version else ""),
            )
        )
        if version and _major(version) < 7:
            out.append(
                Finding(
                    "jupyter-client-too-old",
                    "warning",
                    "jupyters",
                    str(inst.prefix),
                    f"jupyter_client {version} in {inst.prefix} does not substitute ${{PATH}} in a kernel's env: "
                    "kernels started from it get a literal PATH",
                    f"{q(inst.python)} -m pip install 'jupyter_client>=7'",
                )
            )
    return out


def check_config_breaks_jupyter(m: Machine) -> list[Finding]:
    return config_breaks_jupyter(m.ctx, m.envs)


# Jupyter's folders.


def check_jupyter_dirs(m: Machine) -> list[Finding]:
    out = [
        Finding(f"{label}-dir", "info", "folders", folder, f"Jupyter's {label} folder: {folder}")
        for label, folder in _jupyter_dirs().items()
    ]
    for i, folder in enumerate(kernel_dirs()):
        writable = _writable(folder)
        out.append(
            Finding(
                "kernel-dir",
                "info",
                "folders",
                str(folder),
                f"kernels folder #{i + 1}: {folder}" + ("" if writable else " (not writable by you)"),
            )
        )
    return out


def check_user_kernel_dir_writable(m: Machine) -> list[Finding]:
    from jupyter_core import paths

    user_kernels = Path(paths.jupyter_data_dir()) / "kernels"
    if _writable(str(user_kernels)):
        return []
    return [
        Finding(
            "user-kernel-dir-unwritable",
            "error",
            "folders",
            str(user_kernels),
            f"you cannot write your own kernels folder {user_kernels}",
            f"sudo chown -R {os.environ.get('USER', '$USER')} {q(user_kernels)}",
        )
    ]


def check_unreadable_kernel_dirs(m: Machine) -> list[Finding]:
    return [
        Finding("kernel-dir-unreadable", "warning", "folders", str(folder), f"{folder}: {reason}")
        for folder, reason in m.kernels.problems
    ]


# Kernels.


def check_invalid_kernels(m: Machine) -> list[Finding]:
    return [
        Finding(
            "invalid-kernel",
            "warning",
            "kernels",
            k.name,
            f"{k.resource_dir}: {k.reason} — it cannot start",
            f"rm -r {q(k.resource_dir)}",
            needs_yes=True,
        )
        for k in m.kernels.kernels
        if k.status == "invalid"
    ]


def check_shadowed_kernels(m: Machine) -> list[Finding]:
    out = []
    for k in m.kernels.kernels:
        if k.status != "shadowed":
            continue
        books, said = m.used_by(k.name)
        out.append(
            Finding(
                "shadowed-kernel",
                "warning",
                "kernels",
                k.name,
                f"{k.resource_dir} is hidden while {k.reason}; it is the one Jupyter uses when that folder "
                f"is no longer in its path (JUPYTER_PATH unset) — {said}",
                f"rm -r {q(k.resource_dir)}   # only if you no longer need it",
                advice=True,
                notebooks=books,
            )
        )
    return out


def check_overlay_missing(m: Machine) -> list[Finding]:
    return [
        Finding(
            "kernel-overlay-missing",
            "error",
            "kernels",
            k.name,
            overlay_note(k) + " (`kernelkeeper sync` rebuilds it from the local cache when it can)",
            f"kernelkeeper overlay build {q(k.marker.get('prefix') or k.env_prefix or 'ENV')}",
        )
        for k in m.kernels.kernels
        if k.status == "no-overlay"
    ]


def check_stale_kernels(m: Machine) -> list[Finding]:
    return [
        Finding(
            "stale-kernel",
            "error",
            "kernels",
            k.name,
            f"{k.name} ({k.resource_dir}): {k.reason} — it cannot start",
            "kernelkeeper sync" if k.managed else f"kernelkeeper remove {k.name}",
            needs_yes=not k.managed,
        )
        for k in m.kernels.kernels
        if k.status == "stale"
    ]


def check_unreachable_kernels(m: Machine) -> list[Finding]:
    """A kernel whose interpreter is there but out of this user's reach: it may start for its owner,
    so nothing here removes it; saying so explains why it is not in this user's kernel list."""
    return [
        Finding(
            "unreachable-kernel",
            "info",
            "kernels",
            k.name,
            f"{k.name} ({k.resource_dir}): {k.reason} (it may start for the user who owns that Python); "
            "nothing removes it",
        )
        for k in m.kernels.kernels
        if k.status == "unreachable"
    ]


def check_packaged_kernels(m: Machine) -> list[Finding]:
    out = []
    for k in m.startable():
        package = m.packaged.get(str(k.resource_dir))
        if package is not None:
            # The same words as sync's note: neither proposes to rewrite a file a package owns.
            out.append(Finding("packaged-kernel", "info", "kernels", k.name, packaged_note(k, package)))
    return out


def check_lost_ipykernel(m: Machine) -> list[Finding]:
    out = []
    for k in m.kernels.kernels:
        if k.status != "no-ipykernel":
            continue
        kenv = env_of_kernel(k, m.envs)
        target = kenv.python if kenv is not None else k.interpreter
        out.append(
            Finding(
                "kernel-lost-ipykernel",
                "error",
                "kernels",
                k.name,
                f"{k.name} runs {k.interpreter}, whose environment no longer has ipykernel",
                f"{q(target)} -m pip install ipykernel",
            )
        )
    return out


def check_duplicate_kernels(m: Machine) -> list[Finding]:
    out = []
    for k in m.startable():
        keep = m.duplicates.get(k.name)
        if keep is None:
            continue
        books, said = m.used_by(k.name)
        out.append(
            Finding(
                "duplicate-kernel",
                "warning",
                "kernels",
                k.name,
                f"{k.name} and {keep.name} both run {k.interpreter} with the same arguments and variables — " + said,
                f"kernelkeeper remove {k.name}   # if you no longer need it",
                advice=True,
                notebooks=books,
            )
        )
    return out


def check_python3_is_server_python(m: Machine) -> list[Finding]:
    out = []
    for k in m.judged():
        is_native = k.name == "python3" and (k.resource_dir.name == "resources" or not k.managed)
        kenv = env_of_kernel(k, m.envs)
        if not is_native or k.interpreter is None or kenv is None or kenv.project:
            continue
        same_as_server = m.server_python is not None and os.path.realpath(k.interpreter) == os.path.realpath(
            m.server_python
        )
        if same_as_server or "system" in kenv.kinds or "pyenv" in kenv.kinds:
            out.append(
                Finding(
                    "python3-is-server-python",
                    "info",
                    "kernels",
                    "python3",
                    f"the default `python3` kernel runs {k.interpreter} — the Python Jupyter itself runs on, "
                    "not a project's environment: `!pip install` there changes Jupyter's own Python",
                    "kernelkeeper sync   # then pick the project's kernel in the notebook",
                )
            )
    return out


def check_kernel_without_activation(m: Machine) -> list[Finding]:
    out = []
    for k in m.judged():
        if k.managed or k.builtin or str(k.resource_dir) in m.packaged:
            continue  # a package's file: nothing to adopt
        kenv = env_of_kernel(k, m.envs)
        if kenv is not None and _uses_ipykernel(k) and not _activates(k, kenv):
            out.append(
                Finding(
                    "kernel-without-activation",
                    "warning",
                    "kernels",
                    k.name,
                    f"{k.name} runs {kenv.name} ({kenv.prefix}) without activating it: `!pip install` and "
                    "`!python` in a notebook reach another Python",
                    f"kernelkeeper adopt {k.name}",
                )
            )
    return out


def check_display_name_version(m: Machine) -> list[Finding]:
    out = []
    for k in m.judged():
        if str(k.resource_dir) in m.packaged:
            continue  # a package's file: nothing to rename
        kenv = env_of_kernel(k, m.envs)
        if kenv is not None and display_mismatch(k, kenv):
            out.append(
                Finding(
                    "display-name-version-mismatch",
                    "warning",
                    "kernels",
                    k.name,
                    f"{k.name} is shown as {k.display_name!r} but runs Python {kenv.version}",
                    "kernelkeeper sync" if k.managed else f"kernelkeeper adopt {k.name}",
                )
            )
    return out


# Environments.


def _covered(m: Machine) -> set[str]:
    env_kernels = [k for k in m.kernels.kernels if is_env_kernel(k)]
    covered = {os.path.normpath(str(k.interpreter)) for k in env_kernels if k.interpreter is not None}
    return covered | {str(k.marker.get("prefix")) for k in env_kernels if k.managed}


def _healthy_envs(m: Machine) -> list[Environment]:
    return [e for e in m.envs if e.healthy and e.python is not None]


def check_env_without_kernel(m: Machine) -> list[Finding]:
    covered = _covered(m)
    return [
        Finding(
            "env-without-kernel",
            "warning",
            "environments",
            str(env.prefix),
            f"{env.name} ({env.kind}) has ipykernel but no kernel",
            f"kernelkeeper add {q(env.prefix)}",
        )
        for env in _healthy_envs(m)
        if env.has_ipykernel
        and not (os.path.normpath(str(env.python)) in covered or str(env.prefix) in covered)
        and m.filters.admits(env)
    ]


def check_overlay_clash(m: Machine) -> list[Finding]:
    out = []
    for env in _healthy_envs(m):
        if env.project is None or env.has_ipykernel:
            continue
        found_clashes = overlay_clashes(m.ctx, env)
        if found_clashes:
            out.append(
                Finding(
                    "overlay-clash",
                    "warning",
                    "environments",
                    str(env.prefix),
                    f"{env.name}: a kernel on the ipykernel overlay would die at start: "
                    + "; ".join(str(c) for c in found_clashes),
                    f"{q(env.python)} -m pip install --upgrade "
                    + " ".join(q(f"{c.package}{c.needed}") for c in found_clashes),
                )
            )
    return out


def check_project_env_without_ipykernel(m: Machine) -> list[Finding]:
    out = []
    for env in _healthy_envs(m):
        if env.project is None or env.has_ipykernel or overlay_clashes(m.ctx, env):
            continue  # a clash has its own finding
        command = " ".join(q(c) for c in install_ipykernel(env, m.ctx.env)[0])
        out.append(
            Finding(
                "project-env-without-ipykernel",
                "info",
                "environments",
                str(env.prefix),
                f"project {env.project.name} has an environment ({env.kind}) without ipykernel, so no kernel",
                f"kernelkeeper add {q(env.project)}   # on the ipykernel overlay, the env untouched "
                f"(or --install-ipykernel, which runs: {command})",
            )
        )
    return out


Check = Callable[[Machine], list[Finding]]

# The report's order: sections top to bottom, and within a section the order a person reads.
CHECKS: tuple[Check, ...] = (
    check_first_python,
    check_jupyters_on_path,
    check_jupyter_python_mismatch,
    check_jupyter_installs,
    check_config_breaks_jupyter,
    check_jupyter_dirs,
    check_user_kernel_dir_writable,
    check_unreadable_kernel_dirs,
    check_invalid_kernels,
    check_shadowed_kernels,
    check_overlay_missing,
    check_stale_kernels,
    check_unreachable_kernels,
    check_packaged_kernels,
    check_lost_ipykernel,
    check_duplicate_kernels,
    check_python3_is_server_python,
    check_kernel_without_activation,
    check_display_name_version,
    check_env_without_kernel,
    check_overlay_clash,
    check_project_env_without_ipykernel,
)


def diagnose(
    ctx: Context,
    found: Discovery,
    kernels: KernelList,
    server_python: Path | None = None,
    filters: Filters | None = None,
) -> Report:
    """Every check's findings, in ``CHECKS`` order, and the facts they rest on."""
    m = Machine(ctx, found.environments, kernels, server_python, filters or Filters())
    findings = [finding for check in CHECKS for finding in check(m)]
    return Report(tuple(findings), facts_of(m))


def config_breaks_jupyter(ctx: Context, envs: tuple[Environment, ...]) -> list[Finding]:
    """A Jupyter that a kernelkeeper setting stops: the legacy ``kernel_spec_manager_class`` key naming
    the provider wins in a config folder it reads, and its Python cannot import kernelkeeper."""
    from .jupyter_config import Outcome, find_jupyters, fix_for, status

    out = []
    for view in status(find_jupyters(ctx, envs)).jupyters:
        if view.outcome is Outcome.FAILS and view.setting is not None:
            out.append(
                Finding(
                    "config-breaks-jupyter",
                    "error",
                    "jupyters",
                    str(view.setting.path),
                    f"{view.message} (its Jupyter refuses to start: 'Bad config encountered during initialization')",
                    fix_for(view.setting),
                )
            )
    return out


# Bounds for the notebook scan: a home with years of notebooks must not make doctor slow.
NOTEBOOK_LIMIT = 2_000  # notebooks read
NOTEBOOK_BYTES = 16 << 20  # a larger notebook is skipped
NOTEBOOK_DEPTH = 2  # folder levels below where discovery looks for projects
_SKIP_DIRS = frozenset({"node_modules", "__pycache__", "site-packages", ".ipynb_checkpoints"})


def notebooks_using_kernels(ctx: Context) -> dict[str, list[str]]:
    """Kernel name -> the notebooks under discovery's project roots whose metadata names it.

    Each root is walked a little deeper than discovery looks for projects (notebooks sit in
    project subfolders), skipping hidden folders, environments and links; at most
    ``NOTEBOOK_LIMIT`` notebooks are read, each as the server's short list reads them
    (``notebook_kernels.notebook_kernel``: through safeio, regular files only, the tail where
    nbformat writes the metadata, else whole up to ``NOTEBOOK_BYTES``). A notebook that cannot
    be read or parsed is skipped.
    """
    from .notebook_kernels import notebook_kernel
    from .projects import is_env_dir, scan_roots

    out: dict[str, list[str]] = defaultdict(list)
    budget = {"notebooks": NOTEBOOK_LIMIT, "dirs": ctx.max_dirs}
    seen: set[str] = set()

    def read(path: str) -> None:
        budget["notebooks"] -= 1
        name = notebook_kernel(path, full_limit=NOTEBOOK_BYTES)
        if name is not None:
            out[name.lower()].append(path)

    def walk(folder: str, levels: int) -> None:
        real = os.path.realpath(folder)
        if real in seen or budget["dirs"] <= 0 or budget["notebooks"] <= 0:
            return
        seen.add(real)
        budget["dirs"] -= 1
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            return
        subdirs: list[str] = []
        for entry in entries:
            if budget["notebooks"] <= 0:
                return
            try:
                if entry.name.endswith(".ipynb") and entry.is_file(follow_symlinks=False):
                    read(entry.path)
                elif (
                    levels > 0
                    and not entry.name.startswith(".")
                    and entry.name not in _SKIP_DIRS
                    and entry.is_dir(follow_symlinks=False)
                    and not is_env_dir(entry.path)
                ):
                    subdirs.append(entry.path)
            except OSError:
                continue
        for sub in subdirs:
            walk(sub, levels - 1)

    for root, depth in scan_roots(ctx):
        walk(str(root), depth + NOTEBOOK_DEPTH if depth > 0 else 0)
    return {name: sorted(paths) for name, paths in out.items()}


def overlay_clashes(ctx: Context, env: Environment) -> list[Any]:
    """Clashes between an environment and the built overlay for its Python (none when no overlay)."""
    from .overlay import clashes, find_overlay, key_of

    key = key_of(env)
    overlay = find_overlay(ctx, key) if key else None
    return clashes(env, overlay) if overlay is not None else []


def _major(version: str) -> int:
    try:
        return int(version.split(".")[0])
    except ValueError:
        return 0


def _writable(folder: str | Path) -> bool:
    path = Path(folder)
    while not path.exists() and path != path.parent:
        path = path.parent
    return os.access(path, os.W_OK)


def _uses_ipykernel(k: KernelSpecInfo) -> bool:
    return any(a in ("ipykernel_launcher", "ipykernel") for a in k.argv)


def _activates(k: KernelSpecInfo, env: Environment) -> bool:
    """Whether the kernelspec puts the environment's bin folder first on PATH."""
    path = k.env.get("PATH", "")
    if env.python is None:
        return False
    from .kernelspecs import env_value  # a `$` in the path is written `$$`

    return env_value(path).split(os.pathsep)[0] == str(env.python.parent)


def server_python() -> Path | None:
    """The Python this kernelkeeper runs on (when installed beside Jupyter, the server's)."""
    return Path(sys.executable)
