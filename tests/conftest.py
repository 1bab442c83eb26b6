"""Test isolation: no test reads or writes the real HOME or the real Jupyter folders.

Every test gets a fake HOME with XDG, Jupyter and tool variables pointing
inside it (pytest-jupyter's ``jp_environ`` and pre-commit's conftest do the
same), jupyter_core's system-wide paths are redirected into tmp, and the
session fails if any test left a file in the system-wide Jupyter folders.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

REAL_HOME_DIRS = [Path(os.path.expanduser(p)) for p in ("~/.jupyter", "~/.local/share/jupyter", "~/.ipython")]
SYSTEM_JUPYTER_DIRS = [
    *REAL_HOME_DIRS,
    *(
        Path(p)
        for p in (
            "/usr/local/share/jupyter",
            "/usr/share/jupyter",
            "/etc/jupyter",
            "/usr/local/etc/jupyter",
            os.path.join(sys.prefix, "share", "jupyter"),
            os.path.join(sys.prefix, "etc", "jupyter"),
        )
    ),
]
REAL_HOME = Path(os.path.expanduser("~")).resolve()
# Variables of the tools discovery mirrors: unset unless a test sets them.
TOOL_VARS = (
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
    "CONDA_DEFAULT_ENV",
    "CONDA_EXE",
    "CONDA_ENVS_PATH",
    "CONDA_ENVS_DIRS",
    "CONDARC",
    "MAMBA_ROOT_PREFIX",
    "MAMBA_EXE",
    "WORKON_HOME",
    "PIPENV_VENV_IN_PROJECT",
    "POETRY_VIRTUALENVS_PATH",
    "POETRY_VIRTUALENVS_IN_PROJECT",
    "POETRY_CACHE_DIR",
    "POETRY_CONFIG_DIR",
    "PYENV_ROOT",
    "PYENV_VERSION",
    "UV_PROJECT_ENVIRONMENT",
    "UV_PYTHON_INSTALL_DIR",
    "HATCH_DATA_DIR",
    "PDM_VENV_LOCATION",
    "PDM_CONFIG_FILE",
    "KERNELKEEPER_CONFIG",
    "PYTHONHOME",
    "PYTHONPATH",
)


def _snapshot() -> set[str]:
    files: set[str] = set()
    for folder in SYSTEM_JUPYTER_DIRS:
        for dirpath, _, names in os.walk(folder):
            files.update(os.path.join(dirpath, n) + f"@{_mtime(dirpath, n)}" for n in names)
    return files


def _mtime(dirpath: str, name: str) -> float:
    try:
        return os.lstat(os.path.join(dirpath, name)).st_mtime
    except OSError:
        return 0.0


SHIM = Path(__file__).parent / "shim"


def hermetic(env: dict[str, str], root: Path) -> dict[str, str]:
    """An environment for a Python subprocess whose jupyter_core system/env folders live under root."""
    out = dict(env)
    out["KK_TEST_JUPYTER_ROOT"] = str(root)
    out["PYTHONPATH"] = os.pathsep.join([str(SHIM), *[p for p in out.get("PYTHONPATH", "").split(os.pathsep) if p]])
    return out


@pytest.fixture(scope="session", autouse=True)
def _system_jupyter_dirs_untouched() -> Iterator[None]:
    before = _snapshot()
    yield
    changed = _snapshot() ^ before
    assert not changed, f"tests wrote to the real home's or the system-wide Jupyter dirs: {sorted(changed)[:5]}"


@pytest.fixture(autouse=True)
def _unfrozen_gc() -> Iterator[None]:
    """A provider made with a server parent gc.freeze()s the process once (provider._freeze_gc):
    give the objects back to the collector after each test, so the suite's own garbage is collected."""
    yield
    if gc.get_freeze_count():
        gc.unfreeze()


@pytest.fixture(autouse=True)
def fake_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh HOME for each test; returns it. Tool and Jupyter variables point inside it."""
    home = tmp_path / "home"
    home.mkdir()
    for var in TOOL_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(home / ".runtime"))
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(home / ".local" / "share" / "jupyter"))
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(home / ".jupyter"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(home / ".runtime" / "jupyter"))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter-path"))
    monkeypatch.setenv("JUPYTER_CONFIG_PATH", str(tmp_path / "jupyter-config-path"))
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    monkeypatch.setenv("PYENV_ROOT", str(home / ".pyenv"))
    # jupyter_path() adds the Python user base's share/jupyter: keep it in the fake HOME too.
    monkeypatch.setenv("PYTHONUSERBASE", str(home / ".local"))
    import site

    monkeypatch.setattr(site, "USER_BASE", str(home / ".local"))
    # PATH keeps only the system folders: no pyenv shims, no tool venvs.
    monkeypatch.setenv("PATH", "/usr/local/bin:/usr/bin:/bin")
    # IPython (imported by jupyter_client for ipykernel's built-in python3) makes its folder on import.
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.chdir(tmp_path)
    try:
        import jupyter_core.paths as jpaths

        monkeypatch.setattr(jpaths, "SYSTEM_JUPYTER_PATH", [str(tmp_path / "system" / "share" / "jupyter")])
        monkeypatch.setattr(jpaths, "ENV_JUPYTER_PATH", [str(tmp_path / "env" / "share" / "jupyter")])
        monkeypatch.setattr(jpaths, "SYSTEM_CONFIG_PATH", [str(tmp_path / "system" / "etc" / "jupyter")])
        monkeypatch.setattr(jpaths, "ENV_CONFIG_PATH", [str(tmp_path / "env" / "etc" / "jupyter")])
    except ImportError:  # pragma: no cover
        pass
    assert Path(os.environ["HOME"]).resolve() != REAL_HOME
    return home


@pytest.fixture(scope="session")
def real_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A fake HOME holding environments made by the real tools, built once per session."""
    from realenvs import build_real_home, cleanup_real_home

    rh = build_real_home(tmp_path_factory.mktemp("realhome"), Path(sys.executable).parent)
    yield rh
    cleanup_real_home(rh)


@pytest.fixture(scope="session")
def pyenv_pythons() -> dict[str, tuple[str, Path]]:
    """The machine's pyenv Pythons by minor version (read before any test fakes PYENV_ROOT)."""
    from realenvs import find_pyenv_pythons

    return find_pyenv_pythons()


@pytest.fixture(scope="session")
def messy_machine(
    tmp_path_factory: pytest.TempPathFactory, pyenv_pythons: dict[str, tuple[str, Path]], real_home: object
) -> object:
    """Years of hand-made kernels and several Jupyters (see tests/messy.py). Tests copy its kernels first."""
    from messy import build_messy

    build_env = dict(real_home.build_env)  # type: ignore[attr-defined]
    return build_messy(tmp_path_factory.mktemp("messy"), Path(sys.executable).parent, pyenv_pythons, build_env)


def readable_site(base: Path) -> str:
    """A PYTHONPATH that `nobody` can read: copies of kernelkeeper and what its listing imports.

    The unreadable-folder tests run kernelkeeper as `nobody`; a checkout or venv in a 0700 folder
    (as `mktemp -d` makes) would hide the package from that user, so it runs from these copies.
    """
    import importlib
    import shutil

    site = base / "site"
    for name in ("kernelkeeper", "jupyter_core", "platformdirs"):
        source = Path(importlib.import_module(name).__file__).parent  # type: ignore[arg-type]
        shutil.copytree(source, site / name, ignore=shutil.ignore_patterns("__pycache__"))
    for path in [site, *site.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return str(site)
