"""What kernel an environment gets: its name, display name and kernel.json.

Pure functions of an `Environment`; the provider and `add`/`sync` share them
so a notebook saved against one opens with the other.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Container
from pathlib import Path
from typing import Any

from . import __version__, logos, safeio
from .environments import Environment, has_dist
from .kernelspecs import ARGV_TEMPLATE_RE, MARKER, NAME_MAX, PYTHON_VAR, SH_WRAPPER, env_literal, slug
from .overlay import Overlay, bootstrap_code

CONDA_KINDS = ("conda", "pixi")
# Set by the Jupyter server's own activation; they must not leak into a kernel of another env.
# An empty value is what Python and the tools treat as unset.
_LEAKS = ("PYTHONHOME", "PYTHONPATH", "PYTHONEXECUTABLE", "__PYVENV_LAUNCHER__")


NAME_FORMAT = "{kind}-{name}-py{minor}"
#: A generated name longer than this is cut and given the prefix's hash: a folder name
#: over 255 bytes cannot be written at all, and some filesystems (eCryptfs) stop at 143.
LONG_NAME = 128
#: What tells kernels apart comes first, so type-ahead in any picker finds a project by its
#: name and launcher tiles get distinct first lines: ``tango-papaya (uv · 3.11)``.
DISPLAY_FORMAT = "{name} ({kind} · {minor})"
#: The format before 0.2 (``Python 3.11 (tango-papaya · uv)``): set it as ``display_name_format``
#: to keep it (config.toml ``[kernels]``, or ``c.KernelKeeperSpecManager.display_name_format``).
OLD_DISPLAY_FORMAT = "Python {minor} ({name} · {kind})"
# Without a known Python minor, each format's fallback drops it rather than show an empty field.
_NO_MINOR = {DISPLAY_FORMAT: "{name} ({kind})", OLD_DISPLAY_FORMAT: "Python ({name} · {kind})"}


def _fields(env: Environment) -> dict[str, str]:
    return {
        "kind": env.kind,
        "name": env.name,
        "minor": env.minor or "",
        "version": env.version or "",
        "project": env.project.name if env.project else "",
    }


def base_name(env: Environment, fmt: str = NAME_FORMAT) -> str:
    """``poetry-api-py3.11``: kind, env or project name, Python minor — the same on every machine."""
    if env.minor is None and fmt == NAME_FORMAT:
        fmt = "{kind}-{name}"
    fields = {k: slug(v) for k, v in _fields(env).items()}
    return slug(fmt.format(**fields)) or "env"


def prefix_hash(prefix: Path) -> str:
    return hashlib.sha256(str(prefix).encode()).hexdigest()[:6]


def _with_hash(name: str, prefix: Path) -> str:
    tag = f"-{prefix_hash(prefix)}"
    if len(name) + len(tag) > LONG_NAME:
        name = name[: LONG_NAME - len(tag)].rstrip("-.")
    return name + tag


def kernel_name(env: Environment, taken: Container[str], fmt: str = NAME_FORMAT) -> str:
    """The stable name, or with a short hash of the prefix when another kernel has it (or it is too long)."""
    name = base_name(env, fmt)
    if len(name) > LONG_NAME or name in taken:
        name = _with_hash(name, env.prefix)
    assert len(name) <= NAME_MAX
    return name


def display_name(env: Environment, fmt: str = DISPLAY_FORMAT) -> str:
    """``api (poetry · 3.11)``: the project or environment name first, then kind and Python."""
    if env.minor is None:
        fmt = _NO_MINOR.get(fmt, fmt)
    return fmt.format(**_fields(env))


def conda_activate_exports(prefix: Path) -> dict[str, str]:
    """The plain ``export VAR=value`` lines of a conda env's ``etc/conda/activate.d/*.sh``.

    Lines that run commands or test conditions cannot be said statically and are skipped.
    """
    folder = prefix / "etc" / "conda" / "activate.d"
    try:
        scripts = sorted(p for p in folder.iterdir() if p.suffix == ".sh")
    except OSError:
        return {}
    exports: dict[str, str] = {}
    pattern = re.compile(
        r"""^\s*export\s+([A-Za-z_][A-Za-z0-9_]*)=(?:"([^"$`]*(?:\$\{?CONDA_PREFIX\}?[^"$`]*)*)"|'([^']*)'|([^\s"'$`;&|]*))\s*$"""
    )
    for script in scripts:
        try:
            # A FIFO here would block open() for good: on the provider's path, that is a dead server.
            lines = safeio.read_text(script).splitlines()
        except (OSError, ValueError):
            continue
        for line in lines:
            m = pattern.match(line)
            if m:
                value = next(v for v in m.groups()[1:] if v is not None)
                exports[m.group(1)] = re.sub(r"\$\{?CONDA_PREFIX\}?", str(prefix), value)
    return exports


def activation_env(env: Environment) -> dict[str, str]:
    """The variables that make the kernel behave like the activated environment."""
    bin_dir = env.python.parent if env.python is not None else env.prefix / "bin"
    # jupyter_client substitutes $NAME and ${NAME} in env values (string.Template): every `$` a
    # path or name holds is written `$$`, and `${PATH}` is the one substitution meant.
    lit = env_literal
    variables: dict[str, str] = {"PATH": f"{lit(str(bin_dir))}{os.pathsep}${{PATH}}"}
    if any(kind in CONDA_KINDS for kind in env.kinds):
        variables.update({k: lit(v) for k, v in conda_activate_exports(env.prefix).items()})
        variables["CONDA_PREFIX"] = lit(str(env.prefix))
        variables["CONDA_DEFAULT_ENV"] = lit(env.name)
        variables["VIRTUAL_ENV"] = ""
    elif (env.prefix / "pyvenv.cfg").is_file():
        variables["VIRTUAL_ENV"] = lit(str(env.prefix))
        variables["CONDA_PREFIX"] = ""
        variables["CONDA_DEFAULT_ENV"] = ""
    else:
        variables["VIRTUAL_ENV"] = ""
        variables["CONDA_PREFIX"] = ""
        variables["CONDA_DEFAULT_ENV"] = ""
    if env.python is not None and not has_dist(env.site_packages, "pip"):
        # `!pip install` runs the first pip on PATH: with none in the environment, another Python's.
        # PIP_PYTHON (pip >= 22.3) makes whichever pip that is install into this environment.
        variables["PIP_PYTHON"] = lit(str(env.python))
    for leak in _LEAKS:
        variables.setdefault(leak, "")
    return variables


def kernel_json(
    env: Environment,
    *,
    display: str | None = None,
    extra_env: dict[str, str] | None = None,
    overlay: Overlay | None = None,
) -> dict[str, Any]:
    """The kernel.json for an environment: its own interpreter, the env active.

    With ``overlay`` (for an env without ipykernel), ipykernel comes from the
    overlay, appended to sys.path after the env's own site-packages.
    """
    python = str(env.python if env.python is not None else env.prefix / "bin" / "python")
    variables = activation_env(env)
    if overlay is not None:
        # The environment stays byte-for-byte as it was: no __pycache__ written into it.
        variables["PYTHONDONTWRITEBYTECODE"] = "1"
    variables.update(extra_env or {})  # --env values are the person's: a `$` in them is meant
    args = ["-c", bootstrap_code(overlay.site_packages)] if overlay is not None else ["-m", "ipykernel_launcher"]
    if ARGV_TEMPLATE_RE.search(python):
        # A folder named like `{prefix}`: jupyter_client would rewrite the path in argv.
        variables[PYTHON_VAR] = env_literal(python)
        argv = [*SH_WRAPPER, *args, "-f", "{connection_file}"]
    else:
        argv = [python, *args, "-f", "{connection_file}"]
    marker: dict[str, Any] = {
        "prefix": str(env.prefix),
        "kind": env.kind,
        "name": env.name,
        "python_version": env.version,
        "tool_version": __version__,
    }
    # What a front end groups and explains kernels by (see listing.py); informational, so a
    # kernel written before these were recorded is not rewritten for them (plan._comparable).
    if env.project is not None:
        marker["project"] = str(env.project)
    if env.python is not None:
        marker["python"] = str(env.python)
    if overlay is not None:
        marker["overlay"] = overlay.key
    return {
        "argv": argv,
        "display_name": display or display_name(env),
        "language": "python",
        "interrupt_mode": "signal",
        "env": variables,
        "metadata": {"debugger": True, MARKER: marker},
    }


def logo_files(env: Environment) -> dict[str, Path]:
    """The environment kind's badge (kernelkeeper/logos), copied beside kernel.json as `ipykernel install`
    copies its logos: tiles of different kinds differ at a glance."""
    return logos.logo_files(env.kind)
