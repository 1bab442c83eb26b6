"""How ipykernel gets into an environment when the person asks for it: the way its own tool would."""

from __future__ import annotations

import shutil
from collections.abc import Mapping

from . import safeio
from .environments import Environment


def install_ipykernel(target: Environment, env: Mapping[str, str]) -> tuple[list[str], str | None]:
    """How the environment's own tool installs ipykernel, and the folder to run it in.

    uv project -> `uv add --dev`, poetry -> `poetry add --group dev`, pdm -> `pdm add -dG dev`,
    pipenv -> `pipenv install --dev` (all in the project, so its lock file records it),
    conda -> `conda install -p`, other uv envs -> `uv pip install --python`, else the env's pip.
    """

    def which(tool: str) -> str | None:
        return shutil.which(tool, path=env.get("PATH"))

    python = str(target.python)
    project = target.project
    kinds = set(target.kinds)
    if project is not None:
        files = {p.name for p in project.iterdir()} if project.is_dir() else set()
        try:
            pyproject = safeio.read_text(project / "pyproject.toml") if "pyproject.toml" in files else ""
        except OSError:
            pyproject = ""
        if "uv" in kinds and ("uv.lock" in files or "[tool.uv" in pyproject) and which("uv"):
            return [str(which("uv")), "add", "--dev", "ipykernel"], str(project)
        if "poetry" in kinds and which("poetry"):
            return [str(which("poetry")), "add", "--group", "dev", "ipykernel"], str(project)
        if "pdm" in kinds and which("pdm"):
            return [str(which("pdm")), "add", "-dG", "dev", "ipykernel"], str(project)
        if "pipenv" in kinds and which("pipenv"):
            return [str(which("pipenv")), "install", "--dev", "ipykernel"], str(project)
    if kinds & {"conda", "pixi"}:
        conda = env.get("CONDA_EXE") or which("conda") or which("mamba")
        if conda:
            return [conda, "install", "-y", "-p", str(target.prefix), "ipykernel"], None
    has_pip = target.site_packages is not None and (target.site_packages / "pip").is_dir()
    if ("uv" in kinds or not has_pip) and which("uv"):
        return [str(which("uv")), "pip", "install", "--python", python, "ipykernel"], None
    return [python, "-m", "pip", "install", "ipykernel"], None
