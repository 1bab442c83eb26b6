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
"""

from __future__ import annotations

import os
import sys

# base64, hashlib and re are imported where needed: the common case (a .venv with ipykernel)
# needs none of them, and hashlib alone costs ~20 ms of the launcher's start.

ENV_DIRS = (".venv", "venv", "env")
NOTICE = (
    "from traitlets.config import Config\n"
    "from ipykernel.kernelapp import IPKernelApp\n"
    "c = Config()\n"
    "c.IPKernelApp.exec_lines = [{code!r}]\n"
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


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


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
        names = set(os.listdir(folder)) if os.path.isdir(folder) else set()
        if names & {"pyproject.toml", "Pipfile", "environment.yml", "pixi.toml", "setup.py", "requirements.txt"}:
            prefix = _project_env(folder, names, _read(os.path.join(folder, "pyproject.toml")))
            if prefix:
                return prefix, folder, looked
            looked.append(f"{folder} is a project, but none of its environments exists")
            return None, folder, looked
        looked.append(folder)
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


def plan(cwd: str, argv: list[str]) -> tuple[str, list[str], dict[str, str], str | None]:
    """(executable, argv, environment, notice) — what the kernel process becomes."""
    prefix, project, _looked = find_env(cwd)
    python = _python(prefix) if prefix else None
    if prefix and python and _has_dist(prefix, "ipykernel"):
        return python, [python, "-m", "ipykernel_launcher", *argv], activation(prefix, python), None
    if prefix and python:
        overlay = _overlay(prefix)
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
        notice = (
            f"kernelkeeper: no environment found for {where} (looked for .venv, venv, env, .pixi, and poetry, "
            f"pipenv, hatch, pdm and conda environments), so this kernel runs {sys.executable}. "
            f"Fix: create the project's environment (e.g. `uv venv` in the project folder) and restart the kernel."
        )
    code = NOTICE.format(code=HOOK.format(message=notice))
    env = dict(os.environ)
    return sys.executable, [sys.executable, "-c", code, *argv], env, notice


def main() -> None:
    executable, argv, env, notice = plan(os.getcwd(), sys.argv[1:])
    if notice:
        print(notice, file=sys.stderr)
    os.execve(executable, argv, env)


if __name__ == "__main__":
    main()
