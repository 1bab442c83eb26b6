"""Real kernels from kernelkeeper's kernelspecs: started by jupyter_client, run by nbclient.

The environment is one made by `python -m venv` with ipykernel installed from
PyPI (realenvs); the kernel must run *its* interpreter with the environment
active, even when the Jupyter side has another environment's variables set.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from kernelkeeper.cli import main

pytestmark = pytest.mark.realtools

CODE = (
    "import sys, os, shutil, json; print(json.dumps({'exe': sys.executable, 'prefix': sys.prefix, "
    "'which': shutil.which('python'), 'venv': os.environ.get('VIRTUAL_ENV'), "
    "'conda': os.environ.get('CONDA_PREFIX'), 'home': os.environ.get('PYTHONHOME')}))"
)


def runnable_env(real_home: Any) -> dict[str, Any]:
    """The real environment with a real ipykernel (not one of the on-disk copies)."""
    for e in real_home.expected:
        if e["has_ipykernel"] and e["healthy"] and e["kinds"] == ["venv"]:
            return dict(e)
    pytest.fail("the real home has no venv with ipykernel")


@pytest.fixture
def synced(real_home: Any, fake_home: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """`kernelkeeper sync` over the real home, kernels written into this test's Jupyter data dir."""
    env = dict(real_home.env)
    env["JUPYTER_DATA_DIR"] = os.environ["JUPYTER_DATA_DIR"]
    capsys.readouterr()
    assert main(["sync", "--json"], env=env) == 0
    plan = json.loads(capsys.readouterr().out)
    target = runnable_env(real_home)
    (action,) = [a for a in plan["actions"] if a["env"] == target["prefix"]]
    return {"kernel": action["kernel"], **target}


def run_in_kernel(kernel_name: str, code: str) -> Any:
    """Run ``code`` on a fresh kernel; the JSON its last output line prints."""
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name=kernel_name, startup_timeout=60)
    out: list[str] = []
    try:

        def hook(msg: dict[str, Any]) -> None:
            if msg["msg_type"] == "stream":
                out.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                out.append("\n".join(msg["content"]["traceback"]))

        reply = kc.execute_interactive(code, timeout=60, output_hook=hook)
        assert reply["content"]["status"] == "ok", out
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    return json.loads("".join(out).strip().splitlines()[-1])


def test_kernel_runs_the_environment_activated(synced: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    # The Jupyter side runs with another environment active; none of it may reach the kernel.
    monkeypatch.setenv("VIRTUAL_ENV", "/somewhere/else/.venv")
    monkeypatch.setenv("CONDA_PREFIX", "/opt/conda")
    prefix = synced["prefix"]
    got = run_in_kernel(synced["kernel"], CODE)
    assert got["prefix"] == prefix
    assert got["exe"] == os.path.join(prefix, "bin", "python")
    assert got["which"] == os.path.join(prefix, "bin", "python"), "!python and subprocesses use the env"
    assert got["venv"] == prefix
    assert not got["conda"] and not got["home"]


def test_notebook_runs_with_nbclient(synced: dict[str, Any], tmp_path: Path) -> None:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": synced["kernel"], "display_name": "x", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell(CODE),
        nbformat.v4.new_code_cell(
            "import subprocess; print(subprocess.check_output(['python', '-c', "
            "'import sys; print(sys.prefix)'], text=True).strip())"
        ),
    ]
    NotebookClient(nb, timeout=60, startup_timeout=60, resources={"metadata": {"path": str(tmp_path)}}).execute()
    first = json.loads(nb.cells[0].outputs[0]["text"])
    assert first["exe"] == os.path.join(synced["prefix"], "bin", "python")
    assert nb.cells[1].outputs[0]["text"].strip() == synced["prefix"], "a subprocess `python` is the env's"


def test_deleting_the_env_makes_it_stale_then_sync_removes_it(
    real_home: Any, fake_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Works on a copy of the real env, so the session's environments stay intact."""
    source = Path(runnable_env(real_home)["prefix"])
    project = real_home.home / "projects" / "doomed"
    project.mkdir()
    copy = project / ".venv"
    shutil.copytree(source, copy, symlinks=True)
    cfg = copy / "pyvenv.cfg"
    cfg.write_text(cfg.read_text().replace(str(source), str(copy)))
    try:
        env = dict(real_home.env, JUPYTER_DATA_DIR=os.environ["JUPYTER_DATA_DIR"])
        capsys.readouterr()
        assert main(["sync", "--json"], env=env) == 0
        added = [a["kernel"] for a in json.loads(capsys.readouterr().out)["actions"] if a["env"] == str(copy)]
        assert len(added) == 1
        shutil.rmtree(project)
        assert main(["list", "--json"], env=env) == 0
        listing = {k["name"]: k for k in json.loads(capsys.readouterr().out)}
        assert listing[added[0]]["status"] == "stale"
        assert main(["sync", "--json"], env=env) == 0
        actions = json.loads(capsys.readouterr().out)["actions"]
        assert [(a["action"], a["kernel"]) for a in actions] == [("remove", added[0])]
    finally:
        shutil.rmtree(project, ignore_errors=True)


def test_install_ipykernel_the_way_uv_would(real_home: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A fresh uv venv has no pip: `add --install-ipykernel` must use `uv pip install --python`."""
    import subprocess
    import sys

    uv = Path(sys.executable).parent / "uv"
    project = tmp_path / "uvproj"
    project.mkdir()
    (project / "uv.lock").write_text("")
    subprocess.run(
        [str(uv), "venv", "--python", runnable_env(real_home)["python"], str(project / ".venv")],
        env=dict(real_home.build_env, UV_CACHE_DIR=str(tmp_path / "uvcache")),
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert not list((project / ".venv").glob("lib/python*/site-packages/pip"))
    # build_env: the fake HOME plus the certificate/proxy settings that reach PyPI from here.
    env = dict(
        real_home.build_env, JUPYTER_DATA_DIR=os.environ["JUPYTER_DATA_DIR"], UV_CACHE_DIR=str(tmp_path / "uvcache")
    )
    env.pop("UV_OFFLINE", None)  # this one step needs PyPI
    capsys.readouterr()
    assert main(["add", str(project), "--json", "--no-overlay"], env=env) == 1
    assert "uv pip install --python" in capsys.readouterr().err
    assert main(["add", str(project), "--install-ipykernel", "--json"], env=env) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["ran"] and " pip install --python " in result["ran"][0] and result["ran"][0].endswith("ipykernel")
    got = run_in_kernel(result["kernel"], CODE)
    assert got["prefix"] == str(project / ".venv")


def test_bang_pip_acts_on_an_environment_without_pip(synced: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """`!pip install` in a notebook must not land in another environment (the complaint kernelkeeper was
    born from). This env has no pip (`venv --without-pip`, ipykernel put in by uv), so the pip a shell
    finds belongs to another Python (here: the test run's own venv, first on the Jupyter side's PATH);
    PIP_PYTHON in the kernel makes that pip act on this environment."""
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    prefix = Path(synced["prefix"])
    (site,) = prefix.glob("lib/python*/site-packages")
    assert not list(site.glob("pip-*.dist-info")), "the test needs an environment without pip"
    code = (
        "import json, os, subprocess\n"
        "r = subprocess.run('pip list --format json', shell=True, capture_output=True, text=True)\n"
        "print(json.dumps({'pip_python': os.environ.get('PIP_PYTHON'), 'out': r.stdout, 'err': r.stderr[-500:]}))"
    )
    got = run_in_kernel(synced["kernel"], code)
    assert got["pip_python"] == str(prefix / "bin" / "python")
    listed = {p["name"].lower().replace("_", "-") for p in json.loads(got["out"].strip().splitlines()[-1])}
    installed = {d.name.split("-")[0].lower().replace("_", "-") for d in site.glob("*.dist-info")}
    assert "ipykernel" in listed and listed == installed, got["err"]
