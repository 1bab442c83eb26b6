"""kernelkeeper itself runs on Python 3.9 to 3.13: installed with each, it finds the same environments."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from test_real_tools import envs_json

pytestmark = pytest.mark.realtools
REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("minor", ["3.9", "3.13"])
def test_installs_and_runs_on(minor: str, real_home: Any, pyenv_pythons: dict[str, Any], tmp_path: Path) -> None:
    pythons = pyenv_pythons
    if minor not in pythons:
        pytest.skip(f"no Python {minor} on this machine")
    python = str(pythons[minor][1])
    uv = str(Path(sys.executable).parent / "uv")
    venv = tmp_path / f"kk-{minor}"
    build_env = dict(real_home.build_env, UV_CACHE_DIR=str(tmp_path / "uv-cache"))
    build_env.pop("UV_OFFLINE", None)
    subprocess.run([uv, "venv", "--python", python, str(venv)], env=build_env, check=True, capture_output=True)
    res = subprocess.run(
        [uv, "pip", "install", "--python", str(venv / "bin" / "python"), str(REPO)],
        env=build_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]

    def envs(interpreter: str) -> list[dict[str, Any]]:
        home = str(real_home.home) + os.sep
        return [e for e in envs_json(real_home, python=interpreter) if e["prefix"].startswith(home)]

    assert envs(str(venv / "bin" / "python")) == envs(sys.executable)
    console = subprocess.run(
        [str(venv / "bin" / "kernelkeeper"), "--version"], capture_output=True, text=True, timeout=60
    )
    assert console.returncode == 0 and console.stdout.startswith("kernelkeeper ")
