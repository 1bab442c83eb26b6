"""jp_environ and the directory fixtures it uses (a re-creation of pytest-jupyter's jupyter_core plugin)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import jupyter_core.paths
import pytest

__all__ = [
    "echo_kernel_spec",
    "jp_config_dir",
    "jp_data_dir",
    "jp_env_config_path",
    "jp_env_jupyter_path",
    "jp_environ",
    "jp_home_dir",
    "jp_kernel_dir",
    "jp_runtime_dir",
    "jp_system_config_path",
    "jp_system_jupyter_path",
]


def _made(tmp_path: Path, *parts: str) -> Path:
    path = tmp_path.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def jp_home_dir(tmp_path: Path) -> Path:
    return _made(tmp_path, "home")


@pytest.fixture
def jp_data_dir(tmp_path: Path) -> Path:
    return _made(tmp_path, "data")


@pytest.fixture
def jp_config_dir(tmp_path: Path) -> Path:
    return _made(tmp_path, "config")


@pytest.fixture
def jp_runtime_dir(tmp_path: Path) -> Path:
    return _made(tmp_path, "runtime")


@pytest.fixture
def jp_system_jupyter_path(tmp_path: Path) -> Path:
    return _made(tmp_path, "share", "jupyter")


@pytest.fixture
def jp_env_jupyter_path(tmp_path: Path) -> Path:
    return _made(tmp_path, "env", "share", "jupyter")


@pytest.fixture
def jp_system_config_path(tmp_path: Path) -> Path:
    return _made(tmp_path, "etc", "jupyter")


@pytest.fixture
def jp_env_config_path(tmp_path: Path) -> Path:
    return _made(tmp_path, "env", "etc", "jupyter")


@pytest.fixture
def jp_kernel_dir(jp_data_dir: Path) -> Path:
    return _made(jp_data_dir, "kernels")


@pytest.fixture
def echo_kernel_spec(jp_kernel_dir: Path) -> str:
    folder = _made(jp_kernel_dir, "echo")
    argv = [sys.executable, "-m", "pytest_jupyter.echo_kernel", "-f", "{connection_file}"]
    spec = {"argv": argv, "display_name": "echo", "language": "echo"}
    (folder / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
    return str(folder)


@pytest.fixture
def jp_environ(
    monkeypatch: pytest.MonkeyPatch,
    jp_home_dir: Path,
    jp_data_dir: Path,
    jp_config_dir: Path,
    jp_runtime_dir: Path,
    echo_kernel_spec: str,
    jp_system_jupyter_path: Path,
    jp_system_config_path: Path,
    jp_env_jupyter_path: Path,
    jp_env_config_path: Path,
) -> None:
    monkeypatch.setenv("HOME", str(jp_home_dir))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(sys.path))
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(jp_config_dir))
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(jp_data_dir))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(jp_runtime_dir))
    monkeypatch.setattr(jupyter_core.paths, "SYSTEM_JUPYTER_PATH", [str(jp_system_jupyter_path)])
    monkeypatch.setattr(jupyter_core.paths, "ENV_JUPYTER_PATH", [str(jp_env_jupyter_path)])
    monkeypatch.setattr(jupyter_core.paths, "SYSTEM_CONFIG_PATH", [str(jp_system_config_path)])
    monkeypatch.setattr(jupyter_core.paths, "ENV_CONFIG_PATH", [str(jp_env_config_path)])
