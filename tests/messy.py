"""A messy machine, built for real in a fake HOME: years of hand-made kernels and several Jupyters.

Environments are made by the real tools (python -m venv, virtualenv, uv) with
the machine's pyenv Pythons; ipykernel and jupyter_server come from PyPI
through `uv pip install`; kernels are registered the way people do it today,
`python -m ipykernel install --user --name ...`. Then one environment is
deleted and one kernel name is shadowed across JUPYTER_PATH.

Planted (kernel or env -> what doctor must say):
  alpha       kernel-without-activation, display-name-version-mismatch ("Python 3.8" on a 3.11 env)
  beta        kernel-without-activation
  beta-again  duplicate-kernel (a second kernel for beta's interpreter)
  gamma       stale-kernel (its virtualenv was deleted)
  shared      kernel-without-activation (the JUPYTER_PATH copy, tools' Python) + shadowed-kernel (the user copy)
  python3     python3-is-server-python (the built-in kernel of the first `jupyter` on PATH: tools' Python)
  tools, beta jupyter-install (jupyter_server in two environments)
  eta         env-without-kernel (uv venv with ipykernel, no kernel)
  epsilon     project-env-without-ipykernel (a project venv without ipykernel)
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Messy:
    base: Path
    home: Path
    env: dict[str, str]  # run kernelkeeper / jupyter with this
    envs: dict[str, Path]  # name -> prefix
    jupyter_path: Path
    data_dir: Path


def _run(cmd: list[str | Path], env: dict[str, str], timeout: float = 300) -> None:
    res = subprocess.run([str(c) for c in cmd], env=env, capture_output=True, text=True, timeout=timeout)
    if res.returncode != 0:
        raise RuntimeError(f"{cmd} failed ({res.returncode}):\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")


def build_messy(base: Path, tools_bin: Path, pythons: dict[str, tuple[str, Path]], build_env: dict[str, str]) -> Messy:
    home = base / "home"
    home.mkdir(parents=True)
    uv = tools_bin / "uv"
    py311 = pythons["3.11"][1]
    py312 = pythons.get("3.12", pythons["3.11"])[1]
    jupyter_path = base / "shared-prefix" / "share" / "jupyter"
    env = {
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / ".local/share"),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "JUPYTER_PATH": str(jupyter_path),
        "PYENV_ROOT": str(home / ".pyenv"),
        "PYTHONUSERBASE": str(home / ".local"),
        "LANG": "C.UTF-8",
    }
    tool_env = dict(build_env, **env, UV_CACHE_DIR=str(base / "uv-cache"), PATH=f"{tools_bin}:/usr/bin:/bin")
    tool_env.pop("UV_OFFLINE", None)
    tool_env.pop("JUPYTER_DATA_DIR", None)
    tool_env.pop("JUPYTER_CONFIG_DIR", None)
    projects = home / "projects"
    envs = {
        "alpha": projects / "alpha" / ".venv",
        "beta": projects / "beta" / ".venv",
        "gamma": home / ".virtualenvs" / "gamma",
        "tools": home / ".virtualenvs" / "tools",
        "eta": projects / "eta" / ".venv",
        "epsilon": projects / "epsilon" / ".venv",
    }
    for name in ("alpha", "beta", "eta", "epsilon"):
        envs[name].parent.mkdir(parents=True)
        (envs[name].parent / "pyproject.toml").write_text(f'[project]\nname = "{name}"\nversion = "0"\n')
    _run([py311, "-m", "venv", "--without-pip", envs["alpha"]], tool_env)
    _run([py312, "-m", "venv", "--without-pip", envs["beta"]], tool_env)
    _run([tools_bin / "virtualenv", "-q", "--no-seed", "-p", py311, envs["gamma"]], tool_env)
    _run([tools_bin / "virtualenv", "-q", "--no-seed", "-p", py311, envs["tools"]], tool_env)
    _run([uv, "venv", "-q", "--python", py311, envs["eta"]], tool_env)
    _run([py311, "-m", "venv", "--without-pip", envs["epsilon"]], tool_env)

    def install(name: str, *packages: str) -> None:
        _run([uv, "pip", "install", "-q", "--python", envs[name] / "bin" / "python", *packages], tool_env)

    for name in ("alpha", "gamma", "eta"):
        install(name, "ipykernel")
    install("beta", "ipykernel", "jupyter_server")
    install("tools", "ipykernel", "jupyter_server")

    def ipykernel_install(name: str, *args: str) -> None:
        _run([envs[name] / "bin" / "python", "-m", "ipykernel", "install", *args], tool_env)

    ipykernel_install("alpha", "--user", "--name", "alpha", "--display-name", "Python 3.8 (alpha)")
    ipykernel_install("beta", "--user", "--name", "beta")
    ipykernel_install("beta", "--user", "--name", "beta-again")
    ipykernel_install("gamma", "--user", "--name", "gamma")
    ipykernel_install("tools", "--prefix", str(base / "shared-prefix"), "--name", "shared")
    ipykernel_install("alpha", "--user", "--name", "shared")
    shutil.rmtree(envs["gamma"])
    # The first `jupyter` on PATH is the tools env's: its built-in python3 kernel runs tools' Python.
    env["PATH"] = f"{envs['tools'] / 'bin'}:/usr/bin:/bin"
    return Messy(base, home, env, envs, jupyter_path, home / ".local" / "share" / "jupyter")
