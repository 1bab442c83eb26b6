"""Kernels for environments without ipykernel: the ipykernel overlay, and "Python (this project)".

Environments are made by the real tools with the machine's pyenv Pythons; the
overlays are built once per session with uv from PyPI. Each environment's
tree is hashed before and after its kernel ran: the overlay must leave it
byte-for-byte as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.realtools
MINORS = ("3.8", "3.11", "3.13")


def tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for dirpath, dirnames, files in sorted(os.walk(root)):
        dirnames.sort()
        for name in sorted(files) + [d + "/" for d in dirnames]:
            path = os.path.join(dirpath, name.rstrip("/"))
            st = os.lstat(path)
            h.update(f"{os.path.relpath(path, root)}|{st.st_mode}|{st.st_size}".encode())
            if os.path.islink(path):
                h.update(os.readlink(path).encode())
            elif os.path.isfile(path):
                with open(path, "rb") as f:
                    h.update(f.read())
    return h.hexdigest()


def _run(cmd: list[str], env: dict[str, str], cwd: Path | None = None, timeout: float = 300) -> None:
    res = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"{cmd}: {res.stdout[-1500:]}{res.stderr[-1500:]}"


@pytest.fixture(scope="session")
def overlay_world(
    tmp_path_factory: pytest.TempPathFactory, real_home: Any, pyenv_pythons: dict[str, Any]
) -> dict[str, Any]:
    """Projects without ipykernel (venv 3.8/3.11/3.13, a uv project, a poetry project) and built overlays."""
    base = tmp_path_factory.mktemp("overlay-world")
    home = base / "home"
    tools = Path(sys.executable).parent
    # real_home's build environment (certificates, proxies), with every folder moved into this world's HOME.
    build_env = {k: v.replace(str(real_home.home), str(home)) for k, v in real_home.build_env.items()}
    build_env.update(HOME=str(home), UV_CACHE_DIR=str(base / "uv-cache"))
    build_env.update(
        XDG_DATA_HOME=str(home / ".local/share"),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_CONFIG_HOME=str(home / ".config"),
        KERNELKEEPER_OVERLAYS=str(base / "overlays"),
        PATH=f"{tools}:/usr/bin:/bin",
    )
    build_env.pop("UV_OFFLINE", None)
    build_env.pop("VIRTUAL_ENV", None)
    projects: dict[str, Path] = {}
    for minor in MINORS:
        if minor not in pyenv_pythons:
            continue
        proj = home / "projects" / f"py{minor.replace('.', '')}"
        proj.mkdir(parents=True)
        (proj / "requirements.txt").write_text("packaging==23.2\n")
        _run([str(pyenv_pythons[minor][1]), "-m", "venv", str(proj / ".venv")], build_env)
        _run([str(proj / ".venv/bin/python"), "-m", "pip", "install", "-q", "packaging==23.2"], build_env)
        projects[minor] = proj
    uvp = home / "projects" / "uvproj"
    _run(
        [str(tools / "uv"), "init", "-q", "--no-workspace", "--python", str(pyenv_pythons["3.11"][1]), str(uvp)],
        build_env,
    )
    _run([str(tools / "uv"), "add", "-q", "packaging==23.2"], build_env, cwd=uvp)
    projects["uv"] = uvp
    poe = home / "projects" / "poeproj"
    poe.mkdir(parents=True)
    (poe / "pyproject.toml").write_text(
        '[tool.poetry]\nname = "poeproj"\nversion = "0.1.0"\ndescription = ""\nauthors = []\npackage-mode = false\n\n'
        '[tool.poetry.dependencies]\npython = ">=3.11,<3.13"\npackaging = "23.2"\n'
    )
    _run([str(tools / "poetry"), "env", "use", str(pyenv_pythons["3.11"][1])], build_env, cwd=poe)
    # `poetry install` would ask PyPI's JSON API, which the registry mirror here does not serve (404):
    # the package goes in with the env's own pip instead, `poetry run pip install`.
    _run([str(tools / "poetry"), "run", "pip", "install", "-q", "packaging==23.2"], build_env, cwd=poe)
    projects["poetry"] = poe
    clash = home / "projects" / "clash"
    clash.mkdir(parents=True)
    (clash / "requirements.txt").write_text("traitlets==5.0.0\n")
    _run([str(pyenv_pythons["3.11"][1]), "-m", "venv", str(clash / ".venv")], build_env)
    _run([str(clash / ".venv/bin/python"), "-m", "pip", "install", "-q", "traitlets==5.0.0"], build_env)
    run_env = {k: v for k, v in build_env.items() if not k.startswith(("PIP_", "UV_CACHE"))}
    return {"home": home, "projects": projects, "env": run_env, "build_env": build_env, "base": base}


def kk(world: dict[str, Any], data_dir: Path, *args: str, build: bool = False) -> subprocess.CompletedProcess[str]:
    env = dict(world["build_env"] if build else world["env"], JUPYTER_DATA_DIR=str(data_dir))
    return subprocess.run(
        [sys.executable, "-m", "kernelkeeper", *args], env=env, capture_output=True, text=True, timeout=600
    )


def execute(kernel: str, code: str, env: dict[str, str], cwd: Path | None = None) -> str:
    from jupyter_client.manager import start_new_kernel

    saved = dict(os.environ)
    os.environ.update(env)
    try:
        km, kc = start_new_kernel(kernel_name=kernel, startup_timeout=90, cwd=str(cwd) if cwd else None)
        out: list[str] = []
        try:
            reply = kc.execute_interactive(
                code,
                timeout=60,
                output_hook=lambda m: out.append(
                    m["content"].get("text", "") or "\n".join(m["content"].get("traceback", []))
                ),
            )
            assert reply["content"]["status"] == "ok", out
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=True)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return "".join(out)


PROBE = (
    "import sys, json, subprocess, packaging\n"
    "pip = subprocess.run([sys.executable, '-m', 'pip', 'list', '--format=json'], capture_output=True, text=True)\n"
    "print(json.dumps({'exe': sys.executable, 'packaging': packaging.__version__, "
    "'pip_list': [d['name'].lower() for d in json.loads(pip.stdout or '[]')]}))"
)


@pytest.mark.parametrize("which", ["3.8", "3.11", "3.13", "uv", "poetry"])
def test_kernel_on_overlay_runs_the_env_untouched(overlay_world: dict[str, Any], which: str, tmp_path: Path) -> None:
    proj = overlay_world["projects"].get(which)
    if proj is None:
        pytest.skip(f"no Python {which} here")
    data = tmp_path / "jupyter-data"
    envs = json.loads(kk(overlay_world, data, "envs", "--json", "--root", str(proj.parent)).stdout)
    env = next(e for e in envs if e["project"] == str(proj))
    assert env["has_ipykernel"] is False
    prefix = Path(env["prefix"])
    before = tree_hash(prefix)
    res = kk(overlay_world, data, "add", str(proj), "--json", build=True)
    assert res.returncode == 0, res.stderr
    added = json.loads(res.stdout)
    assert added["spec"]["metadata"]["kernelkeeper"]["overlay"].endswith(env["version"].rsplit(".", 1)[0])
    listing = json.loads(kk(overlay_world, data, "list", "--json").stdout)
    assert [k["overlay"] for k in listing if k["name"] == added["kernel"]] == [
        added["spec"]["metadata"]["kernelkeeper"]["overlay"]
    ]
    out = execute(added["kernel"], PROBE, dict(overlay_world["env"], JUPYTER_DATA_DIR=str(data)))
    got = json.loads(out.strip().splitlines()[-1])
    assert got["exe"] == env["python"]
    assert got["packaging"] == "23.2", "the project's own version wins over the overlay's"
    assert "ipykernel" not in got["pip_list"]
    assert tree_hash(prefix) == before, "the environment's files did not change"


def test_clash_is_named_before_a_kernel_is_written(overlay_world: dict[str, Any], tmp_path: Path) -> None:
    data = tmp_path / "jupyter-data"
    clash = overlay_world["projects"]["3.11"].parent / "clash"
    res = kk(overlay_world, data, "add", str(clash), build=True)
    assert res.returncode == 1
    assert "traitlets 5.0.0 in the environment" in res.stderr and "needs traitlets>=" in res.stderr
    assert not (data / "kernels").exists() or not any((data / "kernels").iterdir())
    report = json.loads(kk(overlay_world, data, "doctor", "--json", "--root", str(clash.parent)).stdout)
    codes = [(f["code"], f["subject"]) for f in report["findings"]]
    assert ("overlay-clash", str(clash / ".venv")) in codes


def test_overlay_list_and_remove(overlay_world: dict[str, Any], tmp_path: Path) -> None:
    data = tmp_path / "jupyter-data"
    overlays = json.loads(kk(overlay_world, data, "overlay", "list", "--json").stdout)
    keys = {o["key"] for o in overlays}
    assert "cpython-3.11" in keys
    assert all(o["ipykernel"] for o in overlays)
    res = kk(overlay_world, data, "overlay", "remove", "cpython-9.9")
    assert res.returncode == 1 and "no overlay" in res.stderr
    res = kk(overlay_world, data, "overlay", "remove", "cpython-3.11", "--dry-run")
    assert res.returncode == 0 and (Path(overlays[0]["path"]).parent / "cpython-3.11").is_dir()


def test_this_project_kernel_follows_the_notebook(overlay_world: dict[str, Any], tmp_path: Path) -> None:
    import nbformat
    from nbclient import NotebookClient

    data = tmp_path / "jupyter-data"
    res = kk(overlay_world, data, "add", "--this-project", "--json")
    assert res.returncode == 0, res.stderr
    kernel = json.loads(res.stdout)["kernel"]
    env = dict(overlay_world["env"], JUPYTER_DATA_DIR=str(data))
    outside = tmp_path / "loose-notebooks"
    outside.mkdir()
    expected = {
        overlay_world["projects"]["3.11"]: overlay_world["projects"]["3.11"] / ".venv" / "bin" / "python",
        overlay_world["projects"]["uv"]: overlay_world["projects"]["uv"] / ".venv" / "bin" / "python",
    }
    poe = overlay_world["projects"]["poetry"]
    envs = json.loads(kk(overlay_world, data, "envs", "--json", "--root", str(poe.parent)).stdout)
    expected[poe] = Path(next(e["python"] for e in envs if e["project"] == str(poe)))
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        for folder, python in [*expected.items(), (outside, None)]:
            sub = folder / "notebooks"
            sub.mkdir(exist_ok=True)
            nb = nbformat.v4.new_notebook()
            nb.metadata["kernelspec"] = {"name": kernel, "display_name": "Python (this project)", "language": "python"}
            code = "import os, sys; print(os.environ.get('PIP_PYTHON', '-')); print(sys.executable)"
            nb.cells = [nbformat.v4.new_code_cell(code)]
            NotebookClient(
                nb, timeout=90, startup_timeout=90, kernel_name=kernel, resources={"metadata": {"path": str(sub)}}
            ).execute()
            text = "".join(o.get("text", "") for o in nb.cells[0].outputs)
            if python is None:
                assert "no environment found" in text and "Fix:" in text, text
                assert text.strip().splitlines()[-1] == sys.executable
            else:
                assert text.strip().splitlines()[-1] == str(python), (folder, text)
                # `!pip` in an environment without pip acts on it all the same (PIP_PYTHON).
                has_pip = any(Path(python).parent.parent.glob("lib/python*/site-packages/pip-*.dist-info"))
                assert text.strip().splitlines()[-2] == ("-" if has_pip else str(python)), (folder, text)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_removed_overlay_keeps_its_kernel_and_sync_rebuilds_it_offline(
    overlay_world: dict[str, Any], tmp_path: Path
) -> None:
    proj = overlay_world["projects"]["3.11"]
    overlays = tmp_path / "overlays"
    data = tmp_path / "jupyter-data"
    cache = overlay_world["build_env"]["UV_CACHE_DIR"]
    # The same index settings as the build (uv keys its cache by index), but sync must build offline.
    env = dict(overlay_world["env"], KERNELKEEPER_OVERLAYS=str(overlays), JUPYTER_DATA_DIR=str(data))

    def kk_(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "kernelkeeper", *args],
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=600,
        )

    build_env = dict(overlay_world["build_env"], KERNELKEEPER_OVERLAYS=str(overlays), JUPYTER_DATA_DIR=str(data))
    res = subprocess.run(
        [sys.executable, "-m", "kernelkeeper", "add", str(proj), "--json"],
        env=build_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr
    added = json.loads(res.stdout)
    kernel, key = added["kernel"], added["spec"]["metadata"]["kernelkeeper"]["overlay"]
    prefix = added["env"]

    res = kk_("overlay", "remove", key)
    assert res.returncode == 0 and f"kernels that run on it: {kernel}" in res.stdout, res.stdout

    res = kk_("sync", "--json", UV_CACHE_DIR=cache)
    assert res.returncode == 0, res.stderr
    plan = json.loads(res.stdout)
    assert not [a for a in plan["actions"] if a["kernel"] == kernel], plan
    assert any(f"rebuilt the {key} ipykernel overlay from the local cache" in n for n in plan["notes"]), plan
    status = {k["name"]: k["status"] for k in json.loads(kk_("list", "--json").stdout)}
    assert status[kernel] == "ok"

    assert kk_("overlay", "remove", key).returncode == 0
    empty = tmp_path / "empty-cache"
    res = kk_("sync", "--json", UV_CACHE_DIR=str(empty))
    assert res.returncode == 0, res.stderr
    plan = json.loads(res.stdout)
    assert not [a for a in plan["actions"] if a["kernel"] == kernel], "the environment is not gone"
    assert any(f"`kernelkeeper overlay build {prefix}` brings it back" in n for n in plan["notes"]), plan
    assert (data / "kernels" / kernel / "kernel.json").is_file()
    status = {k["name"]: k["status"] for k in json.loads(kk_("list", "--json").stdout)}
    assert status[kernel] == "no-overlay"
    report = json.loads(kk_("doctor", "--json", UV_CACHE_DIR=str(empty)).stdout)
    about = [f for f in report["findings"] if f["subject"] == kernel]
    assert [(f["code"], f["fix"]) for f in about] == [
        ("kernel-overlay-missing", f"kernelkeeper overlay build {prefix}")
    ]


def test_pip_in_a_uv_venv_kernel_installs_into_the_env(overlay_world: dict[str, Any], tmp_path: Path) -> None:
    """A `uv venv` environment has no pip: %pip and !pip run the overlay's pip, into the environment."""
    tools = Path(sys.executable).parent
    base_python = os.path.realpath(overlay_world["projects"]["uv"] / ".venv" / "bin" / "python")
    scratch = tmp_path / "scratch"
    _run([str(tools / "uv"), "venv", "-q", "--python", base_python, str(scratch)], overlay_world["build_env"])
    data = tmp_path / "jupyter-data"
    res = kk(overlay_world, data, "add", str(scratch), "--json", build=True)
    assert res.returncode == 0, res.stderr
    kernel = json.loads(res.stdout)["kernel"]
    code = (
        "%pip install -q --disable-pip-version-check six==1.16.0\n"
        "!pip install -q --disable-pip-version-check iniconfig==2.0.0\n"
        "import six, iniconfig, sys\n"
        "print(six.__file__, iniconfig.__file__, sys.executable)\n"
    )
    # The build environment: its index settings (PIP_*) are what pip needs here.
    out = execute(kernel, code, dict(overlay_world["build_env"], JUPYTER_DATA_DIR=str(data)))
    six_file, ini_file, exe = out.strip().splitlines()[-1].split()
    assert Path(six_file).is_relative_to(scratch) and Path(ini_file).is_relative_to(scratch), out
    assert exe == str(scratch / "bin" / "python")
    listed = subprocess.run(
        [str(tools / "uv"), "pip", "list", "--python", exe, "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert {p["name"] for p in json.loads(listed)} == {"six", "iniconfig"}, "no pip, no ipykernel in the env"
