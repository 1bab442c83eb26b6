"""Notebooks that declare their own environment (PEP 723 in a code cell, juv's format).

Real parts: uv (this venv's) builds every environment from PyPI into a uv cache shared by the
session (``packaging`` only, plus ipykernel once for the session's overlay); a real
jupyter_server gets sessions over its REST API and runs code over the kernel websocket; nbclient,
papermill and juv (from PyPI) run the same notebooks. "No uv" is a real Python whose folder holds no
uv, with a HOME that has none; "no network" is an index on a closed local port with an empty uv cache.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest

from kernelkeeper import launch, overlay
from kernelkeeper.cli import main

VENV_BIN = Path(sys.executable).parent
UV = str(VENV_BIN / "uv")
BASE_PYTHON = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
# A Python with tomllib whose folder holds no uv (pyenv's 3.11 here has one): the "no uv" machine.
NO_UV_PYTHON = next(
    (
        str(p)
        for p in sorted(Path(BASE_PYTHON).parent.parent.parent.glob("3.1[1-9]*/bin/python3"))
        if not (p.parent / "uv").exists()
    ),
    None,
)
SRC = Path(launch.__file__).parent.parent


def block(*deps: str, extra: str = "") -> str:
    listed = ", ".join(json.dumps(d) for d in deps)
    return f'# /// script\n# requires-python = ">=3.9"\n# dependencies = [{listed}]\n{extra}# ///'


def write_nb(path: Path, first: str, code: str = "import packaging; print(packaging.__version__)") -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python-this-project", "display_name": "Python (this project)"}
    nb.cells = [nbformat.v4.new_code_cell(first), nbformat.v4.new_code_cell(code)]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


@pytest.fixture(scope="session")
def uv_session(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A uv cache and an ipykernel overlay for the base Python, shared by the session's tests."""
    root = tmp_path_factory.mktemp("uvsession")
    env = {
        "UV_CACHE_DIR": str(root / "uv-cache"),
        "KERNELKEEPER_OVERLAYS": str(root / "overlays"),
        "UV_PYTHON": BASE_PYTHON,
        "UV_NO_PROGRESS": "1",
    }
    from kernelkeeper.context import Context
    from kernelkeeper.environments import Found, describe
    from kernelkeeper.overlay import build

    subprocess.run(
        [UV, "venv", "-q", "--python", BASE_PYTHON, str(root / "probe")],
        check=True,
        timeout=120,
        env={**os.environ, **env},
    )
    ctx = Context.from_environ(env={**os.environ, **env, "PATH": f"{VENV_BIN}:{os.environ['PATH']}"})
    build(ctx, describe(Found(root / "probe", "uv")))
    return env


@pytest.fixture
def uvenv(uv_session: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for k, v in uv_session.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("KERNELKEEPER_BUILD_WAIT", "120")
    return uv_session


def kk(*args: str) -> int:
    return main(list(args))


def this_project_kernel(capsys: Any) -> str:
    assert kk("add", "--this-project", "--json") == 0
    return str(json.loads(capsys.readouterr().out)["kernel"])


def cached_python(out: str) -> Path:
    return Path(out.strip().splitlines()[-1])


# --- reading the declaration ---------------------------------------------------------------


def test_juv_made_notebook_is_read_and_keyed_by_what_it_declares(tmp_path: Path, uvenv: dict[str, str]) -> None:
    nb = tmp_path / "juv.ipynb"
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}"}
    subprocess.run([VENV_BIN / "juv", "init", str(nb)], check=True, env=env, timeout=120, capture_output=True)
    subprocess.run(
        [VENV_BIN / "juv", "add", str(nb), "packaging==23.2"], check=True, env=env, timeout=120, capture_output=True
    )
    first = launch.declaration(str(nb))
    assert isinstance(first, launch.Declaration), first
    assert '"packaging==23.2"' in first.block and first.lock is None
    again = launch.declaration(str(nb))
    assert isinstance(again, launch.Declaration) and again.key == first.key, "unchanged: the same environment"
    subprocess.run([VENV_BIN / "juv", "lock", str(nb)], check=True, env=env, timeout=120, capture_output=True)
    locked = launch.declaration(str(nb))
    assert isinstance(locked, launch.Declaration) and locked.lock and "packaging" in locked.lock, "juv's uv.lock"
    assert locked.key != first.key
    subprocess.run(
        [VENV_BIN / "juv", "add", str(nb), "iniconfig==2.0.0"], check=True, env=env, timeout=120, capture_output=True
    )
    edited = launch.declaration(str(nb))
    assert isinstance(edited, launch.Declaration) and edited.key not in (first.key, locked.key)
    # The same declaration in another notebook shares the environment; the formatting of the TOML does not matter.
    other = write_nb(tmp_path / "other" / "b.ipynb", block("packaging==23.2").replace(", ", ","))
    same = launch.declaration(str(other))
    assert (
        isinstance(same, launch.Declaration)
        and same.key == launch.Declaration("x", block("packaging==23.2") + "\n", None).key
    )


def test_unparsable_declaration_is_a_first_output(tmp_path: Path) -> None:
    write_nb(tmp_path / "a.ipynb", '# /// script\n# dependencies = ["packaging"\n# ///')
    exe, argv, _env, notice = launch.plan(str(tmp_path), ["-f", "cf.json"])
    assert exe == sys.executable and argv[:2] == [sys.executable, "-I"]
    assert notice and "does not parse" in notice and "dependencies" in notice, notice
    # Nested deeper than tomllib can recurse: the same first output, not a launcher that dies.
    write_nb(tmp_path / "deep" / "a.ipynb", "# /// script\n# dependencies = " + "[" * 3000 + "]" * 3000 + "\n# ///")
    exe, _argv, _env, notice = launch.plan(str(tmp_path / "deep"), [])
    assert exe == sys.executable and notice and "does not parse" in notice and "too deeply" in notice, notice


def test_several_declared_notebooks_and_no_name_is_explained(tmp_path: Path) -> None:
    write_nb(tmp_path / "a.ipynb", block("packaging==23.2"))
    write_nb(tmp_path / "b.ipynb", block("packaging==24.1"))
    exe, _argv, _env, notice = launch.plan(str(tmp_path), [])
    assert exe == sys.executable and notice and "a.ipynb, b.ipynb" in notice and "JPY_SESSION_NAME" in notice


# --- building and running -----------------------------------------------------------------


def test_build_runs_the_declared_env_and_an_unchanged_locked_one_needs_no_uv(
    tmp_path: Path, uvenv: dict[str, str], fake_home: Path
) -> None:
    nb = write_nb(tmp_path / "proj" / "a.ipynb", block("packaging==23.2"))
    subprocess.run(
        [VENV_BIN / "juv", "lock", str(nb)],
        check=True,
        timeout=120,
        capture_output=True,
        env={**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}"},
    )
    exe, argv, env, notice = launch.plan(str(nb.parent), ["-f", "cf.json"])
    root = Path(launch.envs_root())
    assert notice is None and Path(exe).parent.parent.parent.parent == root, (exe, notice)
    assert env["VIRTUAL_ENV"] == str(Path(exe).parent.parent) and env["PATH"].startswith(str(Path(exe).parent))
    assert env["PIP_PYTHON"] == exe, "`!pip install` goes into the environment (it has no pip of its own)"
    assert "site.addsitedir" in argv[2], "ipykernel from the overlay, not from the environment"
    listed = subprocess.run(
        [UV, "pip", "list", "--python", exe, "--format", "json"], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert {p["name"] for p in json.loads(listed)} == {"packaging"}, listed
    # The second start, with no uv anywhere (a Python whose folder has none, a HOME without one): the cache.
    code = (
        f"import sys; sys.path.insert(0, {str(SRC)!r}); from kernelkeeper import launch; "
        f"r = launch.plan({str(nb.parent)!r}, []); print(r[0]); print(r[3]); "
        f"print(launch.declaration({str(nb)!r}).key, file=sys.stderr)"
    )
    if NO_UV_PYTHON is None:
        pytest.skip("no Python >= 3.11 without a uv beside it")
    clean = {**os.environ, "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [NO_UV_PYTHON, "-S", "-c", code], capture_output=True, text=True, env=clean, timeout=60, check=True
    ).stdout.splitlines()
    assert out == [exe, "None"], out
    # Edited: a new environment, which needs uv: the first output says how to get it.
    text = nb.read_text().replace("packaging==23.2", "packaging==24.1")
    nb.write_text(text)
    out = subprocess.run(
        [NO_UV_PYTHON, "-S", "-c", code], capture_output=True, text=True, env=clean, timeout=60, check=True
    ).stdout.splitlines()
    assert out[0] == NO_UV_PYTHON, out
    assert "uv, which is not on this machine" in out[1] and "install.sh" in out[1], out


def test_unsatisfiable_and_offline_failures_are_uvs_message(
    tmp_path: Path, uvenv: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write_nb(tmp_path / "bad" / "a.ipynb", block("packaging==0.0.0.1"))
    exe, _argv, _env, notice = launch.plan(str(tmp_path / "bad"), [])
    assert exe == sys.executable and notice and "could not build" in notice and "No solution found" in notice, notice
    # Shown once; the next start builds again (and fails again, the same way).
    assert "No solution found" in (launch.plan(str(tmp_path / "bad"), [])[3] or "")
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("UV_INDEX_URL", "http://127.0.0.1:9/simple")
    write_nb(tmp_path / "offline" / "a.ipynb", block("iniconfig==2.0.0"))
    exe, _argv, _env, notice = launch.plan(str(tmp_path / "offline"), [])
    assert exe == sys.executable and notice and "could not build" in notice, notice
    assert "127.0.0.1:9" in notice and "offline" in notice, notice


def test_slow_build_starts_a_kernel_that_says_so_then_the_next_start_succeeds(
    tmp_path: Path, uvenv: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KERNELKEEPER_BUILD_WAIT", "0")
    write_nb(tmp_path / "a.ipynb", block("packaging==24.1"))
    exe, argv, _env, notice = launch.plan(str(tmp_path), ["-f", "cf.json"])
    assert exe == sys.executable and notice and "still being built" in notice and "build.log" in notice
    assert "is ready: restart the kernel" in argv[3], "later cells say when it is ready"
    key = launch.declaration(str(tmp_path / "a.ipynb"))
    assert isinstance(key, launch.Declaration)
    built = Path(launch.envs_root()) / key.key / launch.BUILT
    deadline = time.monotonic() + 180
    while not built.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    exe, _argv, _env, notice = launch.plan(str(tmp_path), [])
    assert notice is None and exe.startswith(launch.envs_root()), notice


def test_notebook_someone_else_wrote_is_not_built_until_trusted(tmp_path: Path, uvenv: dict[str, str]) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to give the notebook to another user")
    folder = tmp_path / "shared"
    nb = write_nb(folder / "a.ipynb", block("packaging==23.2"))
    os.chown(nb, 65534, 65534)
    exe, _argv, _env, notice = launch.plan(str(folder), [])
    assert exe == sys.executable and notice and "did not build or run" in notice and "owned by nobody" in notice
    assert not os.path.exists(launch.envs_root()), "nothing was built"
    assert kk("trust", str(folder)) == 0
    exe, _argv, _env, notice = launch.plan(str(folder), [])
    assert notice is None and exe.startswith(launch.envs_root())


# --- real front ends ---------------------------------------------------------------------


def _two_notebooks(folder: Path) -> dict[str, Path]:
    return {
        "23.2": write_nb(folder / "old.ipynb", block("packaging==23.2")),
        "24.1": write_nb(folder / "new.ipynb", block("packaging==24.1")),
    }


PROBE = (
    "import packaging, sys, os; print(packaging.__version__); print(os.environ['VIRTUAL_ENV']); print(sys.executable)"
)


def _no_ipykernel(python: Path) -> None:
    listed = subprocess.run(
        [UV, "pip", "list", "--python", str(python), "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    names = {p["name"] for p in json.loads(listed)}
    assert "ipykernel" not in names and "packaging" in names, names


def test_real_server_runs_each_notebooks_own_environment(tmp_path: Path, uvenv: dict[str, str], capsys: Any) -> None:
    from conftest import hermetic
    from jupyter_server_proc import jupyter_server

    notebooks = _two_notebooks(tmp_path / "root" / "nbs")
    kernel = this_project_kernel(capsys)
    env = hermetic(dict(os.environ), tmp_path / "jupyter-root")
    seen = {}
    with jupyter_server(env, tmp_path / "root", tmp_path / "server.log") as server:
        for version, nb in notebooks.items():
            session = server.request(
                "POST",
                "/api/sessions",
                {"path": f"nbs/{nb.name}", "name": nb.name, "type": "notebook", "kernel": {"name": kernel}},
            )
            out = server.execute(session["kernel"]["id"], PROBE, timeout=180).split()
            assert out[0] == version, out
            assert out[2].startswith(launch.envs_root()) and out[1] == str(Path(out[2]).parent.parent), out
            seen[version] = Path(out[2])
    assert seen["23.2"] != seen["24.1"]
    for python in seen.values():
        _no_ipykernel(python)


def test_nbclient_and_papermill_run_each_notebooks_own_environment(
    tmp_path: Path, uvenv: dict[str, str], capsys: Any
) -> None:
    from nbclient import NotebookClient

    notebooks = _two_notebooks(tmp_path / "nbs")
    kernel = this_project_kernel(capsys)
    for version, path in notebooks.items():
        nb = nbformat.read(str(path), as_version=4)
        client = NotebookClient(
            nb, timeout=180, startup_timeout=180, kernel_name=kernel, resources={"metadata": {"path": str(path.parent)}}
        )
        # nbclient does not name the notebook; JPY_SESSION_NAME does what jupyter_server does.
        client.execute(env={**os.environ, "JPY_SESSION_NAME": str(path)})
        assert nb.cells[1].outputs[0]["text"].strip() == version
        out = tmp_path / f"out-{version}.ipynb"
        # papermill names the notebook on its command line, which the launcher reads.
        subprocess.run(
            [VENV_BIN / "papermill", path.name, str(out), "-k", kernel, "--no-progress-bar"],
            cwd=path.parent,
            check=True,
            timeout=300,
            capture_output=True,
            env={**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}"},
        )
        done = nbformat.read(str(out), as_version=4)
        assert done.cells[1].outputs[0]["text"].strip() == version, done.cells[1].outputs


def test_kernelkeepers_notebook_runs_under_juv(tmp_path: Path, uvenv: dict[str, str]) -> None:
    nb = write_nb(tmp_path / "a.ipynb", block("packaging==23.2"))
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}"}
    out = subprocess.run([VENV_BIN / "juv", "exec", str(nb)], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0 and out.stdout.strip().splitlines()[-1] == "23.2", (out.stdout, out.stderr)


# --- the cache command -----------------------------------------------------------------------


def test_cache_lists_and_removes_unused(tmp_path: Path, uvenv: dict[str, str], capsys: Any) -> None:
    a = write_nb(tmp_path / "one" / "a.ipynb", block("packaging==23.2"))
    b = write_nb(tmp_path / "two" / "b.ipynb", block("packaging==23.2"))
    for nb in (a, b):
        assert launch.plan(str(nb.parent), [])[3] is None
    capsys.readouterr()
    assert kk("cache", "list", "--json") == 0
    (entry,) = json.loads(capsys.readouterr().out)
    assert set(entry["notebooks"]) == {str(a), str(b)} and entry["dependencies"] == ["packaging==23.2"]
    assert entry["size_bytes"] > 0 and entry["built"]
    assert kk("cache", "remove", "--unused-for", "1d", "--json") == 0
    assert json.loads(capsys.readouterr().out) == [], "used just now: kept"
    assert kk("cache", "remove", "--unused-for", "0s", "--dry-run", "--json") == 0
    assert [e["key"] for e in json.loads(capsys.readouterr().out)] == [entry["key"]]
    assert Path(entry["path"]).is_dir(), "--dry-run removed nothing"
    assert kk("cache", "remove", entry["key"]) == 0
    assert not Path(entry["path"]).exists()
    assert kk("cache", "remove", "nosuchkey") == 1
    shutil.rmtree(tmp_path / "one")


def test_pip_magic_and_shell_pip_install_into_the_declared_environment(
    tmp_path: Path, uvenv: dict[str, str], capsys: Any
) -> None:
    """%pip and !pip in a kernel whose environment has no pip: into that environment, via the overlay's pip."""
    from nbclient import NotebookClient

    path = write_nb(tmp_path / "nbs" / "a.ipynb", block("packaging==24.1"))
    nb = nbformat.read(str(path), as_version=4)
    nb.cells += [
        nbformat.v4.new_code_cell("%pip install -q --disable-pip-version-check six==1.16.0"),
        nbformat.v4.new_code_cell(
            "import six, sys; print(six.__version__); print(six.__file__); print(sys.executable)"
        ),
        nbformat.v4.new_code_cell("!pip install -q --disable-pip-version-check iniconfig==2.0.0\n!which pip"),
        nbformat.v4.new_code_cell("import iniconfig; print(iniconfig.__file__)"),
    ]
    kernel = this_project_kernel(capsys)
    client = NotebookClient(
        nb, timeout=300, startup_timeout=180, kernel_name=kernel, resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute(env={**os.environ, "JPY_SESSION_NAME": str(path)})

    def text(cell: int) -> list[str]:
        return "".join(o.get("text", "") for o in nb.cells[cell].outputs).split()

    version, six_file, python = text(3)
    prefix = Path(python).parent.parent
    assert version == "1.16.0" and Path(six_file).is_relative_to(prefix), (six_file, prefix)
    assert str(prefix).startswith(launch.envs_root())
    shell_pip = text(4)[-1]
    assert shell_pip.startswith(uvenv["KERNELKEEPER_OVERLAYS"]), "!pip is the overlay's shim"
    assert Path(text(5)[0]).is_relative_to(prefix), text(5)
    listed = subprocess.run(
        [UV, "pip", "list", "--python", python, "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert {p["name"] for p in json.loads(listed)} == {"packaging", "six", "iniconfig"}, "no pip, no ipykernel"


def test_uv_binary_is_preferred_to_a_shim_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pyenv's uv shim is bash (150-250 ms a call): a uv binary further on wins; the shim is the last resort."""
    shims, real = tmp_path / "shims", tmp_path / "real"
    for folder in (shims, real):
        folder.mkdir()
    (shims / "uv").write_text('#!/usr/bin/env bash\nexec pyenv exec uv "$@"\n')
    (shims / "uv").chmod(0o755)
    shutil.copyfile(UV, real / "uv")
    (real / "uv").chmod(0o755)
    monkeypatch.setenv("PATH", f"{shims}:{real}")
    monkeypatch.setattr(sys, "executable", str(tmp_path / "nowhere" / "python"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert launch.find_uv() == str(real / "uv")
    # The overlay builder looks on the context's PATH, not the process's, with the same preference.
    monkeypatch.setenv("PATH", "/nonexistent")
    command = overlay.build_command(Path(sys.executable), tmp_path / "t", {"PATH": f"{shims}:{real}"})
    assert command[0] == str(real / "uv")
    monkeypatch.setenv("PATH", f"{shims}:{real}")
    (real / "uv").unlink()
    assert launch.find_uv() == str(shims / "uv"), "a shim when it is all there is"


def test_builder_waits_for_uv_blocking_kills_it_at_the_timeout_and_keeps_the_launchers_pipe(tmp_path: Path) -> None:
    """The builder's uv run (``launch._run_uv``): a blocking wait, not subprocess's polling that noticed uv's
    exit up to 50 ms late. Its exit status, a kill at the timeout, and no inherited launcher pipe: a process
    uv leaves behind must not keep the launcher waiting. In a child Python: the alarm is its own, not pytest's."""
    code = f"""
import os, sys, time
sys.path.insert(0, {str(SRC)!r})
from kernelkeeper.launch import _run_uv
env = dict(os.environ)
print(_run_uv(["/bin/sh", "-c", "echo out; exit 3"], env))
print(_run_uv(["/bin/sh", "-c", "kill -TERM $$"], env))
r, w = os.pipe()  # the launcher's pipe: not inheritable, as os.pipe() makes it
print(_run_uv(["/bin/sh", "-c", "test -e /proc/$$/fd/%d" % w], env))
for n in (1, 2):  # a pidfd, then (as without one: macOS, Linux < 5.3) an alarm
    t = time.monotonic()
    try:
        _run_uv(["/bin/sh", "-c", "echo $$ > {tmp_path}/pid%d; exec sleep 60" % n], env, timeout=1)
    except TimeoutError as e:
        print("timeout", round(time.monotonic() - t) < 30, e)
    if hasattr(os, "pidfd_open"):
        del os.pidfd_open
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True).stdout
    lines = out.splitlines()
    assert lines[:4] == ["out", "3", "-15", "1"], out
    for line in lines[4:6]:
        assert line.startswith("timeout True") and "more than 1 s" in line, out
    for n in (1, 2):
        pid = int((tmp_path / f"pid{n}").read_text())
        assert not Path(f"/proc/{pid}").exists(), "killed and reaped at the timeout"
