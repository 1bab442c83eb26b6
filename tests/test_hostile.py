"""One bad file must never stop a server or the CLI.

Every file here is a real hostile file someone could place where kernelkeeper
reads: FIFOs (opening one for reading blocks until a writer comes, which never
happens), JSON nested 100,000 deep, wrong JSON types, NUL bytes, bytes that are
not UTF-8, a file where a folder should be. The CLI runs as real subprocesses
and a real jupyter_server answers over HTTP, each with a timeout, so a hang
fails the test in seconds instead of hanging the suite.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import fakes
from conftest import hermetic

PROVIDER = "kernelkeeper.provider.KernelKeeperSpecManager"
TIMEOUT = 30  # a command that takes longer than this is hung, not slow


def kernels_dir(home: Path) -> Path:
    return home / ".local" / "share" / "jupyter" / "kernels"


def write_kernel(home: Path, name: str, content: str | bytes) -> Path:
    folder = kernels_dir(home) / name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "kernel.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def fifo(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    return path


@pytest.fixture
def home(fake_home: Path) -> Path:
    """Two environments with ipykernel and one good written kernel, before anything hostile is added."""
    alpha = fakes.venv(fakes.project(fake_home / "projects" / "alpha") / ".venv", ipykernel=True)
    fakes.conda(fake_home / "miniconda3" / "envs" / "beta", ipykernel=True)
    argv = [str(alpha / "bin" / "python"), "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    write_kernel(fake_home, "good", json.dumps({"argv": argv, "display_name": "Good", "language": "python"}))
    return fake_home


# --- the hostile files ----------------------------------------------------------------
# Each takes the fake HOME and makes one bad file; the notebook `which` reads is HOME/nb.ipynb.


def fifo_activate_script(home: Path) -> None:
    fifo(home / "miniconda3" / "envs" / "beta" / "etc" / "conda" / "activate.d" / "zz.sh")


def fifo_condarc(home: Path) -> None:
    fifo(home / ".condarc")


def fifo_kernel_json(home: Path) -> None:
    fifo(kernels_dir(home) / "fifo" / "kernel.json")


def fifo_environments_txt(home: Path) -> None:
    fifo(home / ".conda" / "environments.txt")


def fifo_pipenv_project(home: Path) -> None:
    env = fakes.venv(home / ".local" / "share" / "virtualenvs" / "proj-AbCd1234", ipykernel=True)
    fifo(env / ".project")


def fifo_pyproject(home: Path) -> None:
    project = home / "projects" / "gamma"
    fakes.venv(project / ".venv", ipykernel=True)
    fifo(project / "pyproject.toml")


def fifo_jupyter_config(home: Path) -> None:
    fifo(home / ".jupyter" / "jupyter_server_config.json")


def fifo_notebook(home: Path) -> None:
    fifo(home / "nb.ipynb")


def metadata_string(home: Path) -> None:
    write_kernel(home, "metastring", json.dumps({"argv": [sys.executable, "-m", "x"], "metadata": "oops"}))


def deep_kernel_json(home: Path) -> None:
    write_kernel(home, "deep", "[" * 100_000 + "]" * 100_000)


def deep_metadata(home: Path) -> None:
    # Within what json.loads takes, deep enough that copying or printing it deeper in a call stack fails.
    argv = json.dumps([sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"])
    deep = '{"a": ' * 990 + "1" + "}" * 990
    write_kernel(home, "deepmeta", f'{{"argv": {argv}, "env": {deep}, "metadata": {{"kernelkeeper": {deep}}}}}')


def list_kernel_json(home: Path) -> None:
    write_kernel(home, "list", "[]")


def nul_in_condarc(home: Path) -> None:
    (home / ".condarc").write_bytes(b"envs_dirs:\n  - /tmp/a\x00b\n  - ~/more\x00envs\n")


def bad_utf8_own_config(home: Path) -> None:
    path = home / ".config" / "kernelkeeper" / "config.toml"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"[discovery]\nroots = [\"\xff\xfe\"]\n")


def bad_utf8_poetry_config(home: Path) -> None:
    path = home / ".config" / "pypoetry" / "config.toml"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"[virtualenvs]\npath = \"\xff\xfe\"\n")


def kernels_path_is_file(home: Path) -> None:
    folder = kernels_dir(home)
    for entry in folder.iterdir():
        for f in entry.iterdir():
            f.unlink()
        entry.rmdir()
    folder.rmdir()
    folder.write_text("not a folder\n")


def notebook_metadata_list(home: Path) -> None:
    (home / "nb.ipynb").write_text(json.dumps({"metadata": ["x"], "cells": []}))


# What the CLI sweep below runs. A string metadata and a kernel.json of [] broke only the provider:
# they are in the server test.
HOSTILE: dict[str, Callable[[Path], None]] = {
    f.__name__: f
    for f in (
        fifo_activate_script,
        fifo_condarc,
        fifo_kernel_json,
        fifo_environments_txt,
        fifo_pipenv_project,
        fifo_pyproject,
        fifo_jupyter_config,
        fifo_notebook,
        deep_kernel_json,
        deep_metadata,
        nul_in_condarc,
        bad_utf8_own_config,
        bad_utf8_poetry_config,
        kernels_path_is_file,
        notebook_metadata_list,
    )
}

COMMANDS: tuple[tuple[str, ...], ...] = (
    ("envs", "--json"),
    ("list", "--json"),
    ("sync", "--dry-run"),
    ("sync",),
    ("doctor",),
    ("adopt", "--all", "--dry-run"),
    ("prune", "--dry-run"),
    ("which", "nb.ipynb"),
    ("jupyter", "status"),
)


def run_kk(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = hermetic(dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)), home.parent)
    try:
        return subprocess.run(
            [sys.executable, "-m", "kernelkeeper", *args],
            env=env,
            cwd=home,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"`kernelkeeper {' '.join(args)}` hung (no answer in {TIMEOUT} s)")


@pytest.mark.parametrize("hostile", sorted(HOSTILE))
def test_cli_survives_hostile_file(home: Path, hostile: str) -> None:
    HOSTILE[hostile](home)
    if not (home / "nb.ipynb").exists():
        (home / "nb.ipynb").write_text(json.dumps({"metadata": {"kernelspec": {"name": "good"}}, "cells": []}))
    for args in COMMANDS:
        res = run_kk(home, *args)
        shown = f"`kernelkeeper {' '.join(args)}` exited {res.returncode}:\n{res.stderr[-2000:]}"
        assert "Traceback" not in res.stderr, shown
        assert res.returncode in (0, 1), shown
        if res.returncode == 1 and args[0] not in ("which", "doctor"):  # those exit 1 for what they found
            assert res.stderr.startswith("kernelkeeper: error: "), shown
        if hostile == "bad_utf8_own_config":
            continue  # kernelkeeper's own config: an error that names the file is the answer (see below)
        if args in (("envs", "--json"), ("list", "--json")):
            assert res.returncode == 0, shown
        if args == ("envs", "--json"):
            names = {e["name"] for e in json.loads(res.stdout)}
            assert {"alpha", "beta"} <= names, f"the other environments are still found: {names}"
        if args == ("list", "--json") and hostile != "kernels_path_is_file":
            listed = {k["name"]: k for k in json.loads(res.stdout)}
            assert listed["good"]["status"] == "ok", listed


@pytest.mark.parametrize(
    ("hostile", "name", "reason"),
    [
        (fifo_kernel_json, "fifo", "FIFO"),
        (deep_kernel_json, "deep", "nested too deeply"),
    ],
)
def test_list_marks_bad_kernel_invalid_with_a_reason(
    home: Path, hostile: Callable[[Path], None], name: str, reason: str
) -> None:
    hostile(home)
    res = run_kk(home, "list", "--json")
    assert res.returncode == 0, res.stderr
    listed = {k["name"]: k for k in json.loads(res.stdout)}
    assert listed[name]["status"] == "invalid" and reason in listed[name]["reason"], listed[name]
    assert listed["good"]["status"] == "ok"


def test_which_says_what_is_wrong_with_a_fifo_notebook(home: Path) -> None:
    fifo_notebook(home)
    res = run_kk(home, "which", "nb.ipynb")
    assert res.returncode == 1
    assert res.stderr.startswith("kernelkeeper: error: ") and "FIFO" in res.stderr, res.stderr


def test_own_config_not_utf8_is_a_clear_error(home: Path) -> None:
    bad_utf8_own_config(home)
    res = run_kk(home, "envs")
    assert res.returncode == 1
    assert "config.toml" in res.stderr and "UTF-8" in res.stderr, res.stderr


# --- a real jupyter_server with the provider ---------------------------------------------


def _server_env(home: Path, tmp_path: Path, extra: dict[str, Any] | None = None) -> dict[str, str]:
    config_dir = tmp_path / "server-config"
    config_dir.mkdir()
    # Every kernel listed: these tests look for dynamic kernels in /api/kernelspecs (test_listing: the short list).
    config = {
        "ServerApp": {"kernel_spec_manager_class": PROVIDER},
        "KernelKeeperSpecManager": {"list_all": True, **(extra or {})},
    }
    (config_dir / "jupyter_server_config.json").write_text(json.dumps(config))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), JUPYTER_CONFIG_DIR=str(config_dir))
    return hermetic(env, tmp_path)


class Timed:
    """A request in a thread, joined with a timeout: a server that hangs fails the test, not the suite."""

    def __init__(self, server: Any, path: str, timeout: float) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self.seconds = -1.0
        self._thread = threading.Thread(target=self._run, args=(server, path, timeout), daemon=True)
        self._thread.start()

    def _run(self, server: Any, path: str, timeout: float) -> None:
        start = time.monotonic()
        try:
            self.result = server.request("GET", path, timeout=timeout)
        except BaseException as e:  # the test reads it
            self.error = e
        self.seconds = time.monotonic() - start

    def join(self, timeout: float) -> Any:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the request did not end"
        if self.error is not None:
            raise self.error
        return self.result


def _stop_within(server_proc: subprocess.Popen[bytes], seconds: float) -> float:
    start = time.monotonic()
    server_proc.send_signal(signal.SIGTERM)
    try:
        server_proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        server_proc.kill()
        server_proc.wait(timeout=15)
        pytest.fail(f"the server ignored SIGTERM for {seconds} s")
    return time.monotonic() - start


def _start_server(env: dict[str, str], tmp_path: Path) -> tuple[subprocess.Popen[bytes], Any]:
    """A real server whose process the test stops itself (SIGTERM is part of what it checks)."""
    from jupyter_server_proc import start_server

    return start_server(env, tmp_path, tmp_path / "server.log")


@pytest.mark.parametrize(
    "hostiles",
    [
        (fifo_activate_script, fifo_condarc, fifo_kernel_json, fifo_environments_txt),
        (metadata_string, deep_kernel_json, deep_metadata, list_kernel_json),
    ],
    ids=["fifos", "malformed-kernel-json"],
)
def test_server_answers_and_stops_despite_hostile_files(
    home: Path, tmp_path: Path, hostiles: tuple[Callable[[Path], None], ...]
) -> None:
    for hostile in hostiles:
        hostile(home)
    proc, server = _start_server(_server_env(home, tmp_path), tmp_path)
    try:
        specs = Timed(server, "/api/kernelspecs", timeout=20)
        time.sleep(0.3)
        status = Timed(server, "/api/status", timeout=2)
        assert status.join(5) is not None
        assert status.seconds < 2, f"/api/status took {status.seconds:.1f} s"
        listed = specs.join(25)["kernelspecs"]
        assert "good" in listed, sorted(listed)
        assert any(n.startswith("conda-beta") for n in listed), f"beta's dynamic kernel is listed: {sorted(listed)}"
        assert not {"fifo", "metastring", "deep", "deepmeta", "list"} & set(listed), sorted(listed)
        # Twice: the answer from the cache is as good as the first one.
        again = Timed(server, "/api/kernelspecs", timeout=10).join(15)["kernelspecs"]
        assert set(again) == set(listed)
        one = Timed(server, "/api/kernelspecs/good", timeout=10).join(15)
        assert one["name"] == "good"
    except BaseException:
        print(server.log.read_text()[-5000:])
        raise
    finally:
        seconds = _stop_within(proc, 10) if proc.poll() is None else 0.0
    assert seconds < 10
    log = server.log.read_text()
    assert "Traceback" not in log or "kernelkeeper" not in log.split("Traceback", 1)[1][:3000], log[-5000:]


# The server's config file is Python run inside the server: it makes every scan hang as on a dead
# NFS mount (the suite's model of a slow filesystem, as in test_provider, here in a real server).
DEAD_MOUNT = """
import time
import kernelkeeper.provider as provider

_discover = provider.discover


def _hung(ctx):
    time.sleep(300)
    return _discover(ctx)


provider.discover = _hung
"""


def test_server_answers_and_stops_while_a_scan_hangs(home: Path, tmp_path: Path) -> None:
    env = _server_env(home, tmp_path, {"first_scan_timeout": 3.0})
    (Path(env["JUPYTER_CONFIG_DIR"]) / "jupyter_server_config.py").write_text(DEAD_MOUNT)
    proc, server = _start_server(env, tmp_path)
    try:
        specs = Timed(server, "/api/kernelspecs", timeout=20)
        time.sleep(0.3)
        status = Timed(server, "/api/status", timeout=5)
        assert status.join(8) is not None
        assert status.seconds < 1, f"/api/status waited {status.seconds:.1f} s behind /api/kernelspecs"
        assert specs.seconds < 0, "the kernel list was still waiting for the scan when /api/status answered"
        listed = specs.join(25)["kernelspecs"]
        assert "good" in listed, "the written kernels are listed while discovery hangs"
    except BaseException:
        print(server.log.read_text()[-5000:])
        raise
    finally:
        seconds = _stop_within(proc, 10) if proc.poll() is None else 0.0
    assert seconds < 10
