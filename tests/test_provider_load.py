"""The provider under load: a saved state answers the first list, idle checks cost no stats, one body per change.

Nothing here is timed against a bound (timing belongs in bench/): a scan is made to
hang instead, so "before any scan finished" is a fact, not a race.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import os
import shutil
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from traitlets import Unicode
from traitlets.config import Configurable

import fakes
from conftest import hermetic
from kernelkeeper import state, watch
from kernelkeeper.context import Context
from kernelkeeper.provider import KernelKeeperSpecManager

MINOR = fakes.MINOR


@pytest.fixture(autouse=True)
def _no_memory() -> Iterator[None]:
    state.forget()
    yield
    state.forget()


def _aged(root: Path) -> None:
    """mtimes a minute back: a scan treats paths modified as it starts as unsettled (checked again)."""
    old = time.time() - 60
    for p in [root, *root.rglob("*")]:
        os.utime(p, (old, old), follow_symlinks=False)


@pytest.fixture
def home(fake_home: Path) -> Path:
    projects = fake_home / "projects"
    for name in ("alpha", "beta", "gamma"):
        fakes.venv(fakes.project(projects / name) / ".venv", ipykernel=True)
    fakes.conda(fake_home / "miniconda3" / "envs" / "sci", ipykernel=True)
    (fake_home / ".cache").mkdir()  # where the state is saved, there already as on any lived-in HOME
    # IPython makes its folder (IPYTHONDIR, in the working folder here) when the stock python3 kernel is read.
    (fake_home.parent / "ipython").mkdir(exist_ok=True)
    _aged(fake_home.parent)  # the HOME and the test's working folder (discovery reads both)
    return fake_home


def _wait(predicate: Any, what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def _saved(**config: Any) -> KernelKeeperSpecManager:
    """A manager that scanned once and saved its state (the previous run of the server)."""
    m = KernelKeeperSpecManager(**config)
    _wait(lambda: m._cache.saves >= 1, "the state was never saved")
    return m


class HungScans:
    """discover() that waits until released: no scan can finish while the test looks."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import kernelkeeper.provider as provider

        self.release = threading.Event()
        self.started = 0
        real = provider.discover

        def hung(ctx: Context) -> Any:
            self.started += 1
            self.release.wait(60)
            return real(ctx)

        monkeypatch.setattr(provider, "discover", hung)


def test_first_list_after_a_restart_is_complete_before_any_scan(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = _saved().get_all_specs()
    hung = HungScans(monkeypatch)
    m = KernelKeeperSpecManager(first_scan_timeout=2.0, first_check_delay=0.0)
    try:
        first = m.get_all_specs()
        assert m._cache.scans == 0, "a scan finished: the test proves nothing"
        assert first.keys() == before.keys()
        assert f"venv-gamma-py{MINOR}" in first
        assert m._cache.loaded == len(m._cache._found.environments)  # type: ignore[union-attr]
    finally:
        hung.release.set()


def test_an_environment_deleted_while_down_is_never_offered(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _saved()
    shutil.rmtree(home / "projects" / "beta" / ".venv")
    hung = HungScans(monkeypatch)
    m = KernelKeeperSpecManager(first_check_delay=0.0)
    try:
        first = m.get_all_specs()
        assert m._cache.scans == 0
        assert f"venv-beta-py{MINOR}" not in first
        assert f"venv-alpha-py{MINOR}" in first
    finally:
        hung.release.set()


def test_a_change_made_while_down_shows_on_the_first_rescan(home: Path) -> None:
    _saved()
    fakes.venv(fakes.project(home / "projects" / "delta") / ".venv", ipykernel=True)
    m = KernelKeeperSpecManager(cache_seconds=0.0, first_check_delay=3600.0)
    first = m.get_all_specs()
    assert f"venv-delta-py{MINOR}" not in first, "the saved state answers first"
    # That request started the check (no waiting for first_check_delay): one rescan, and delta is in it.
    _wait(lambda: m._cache.scans >= 1, "the saved state was never checked")
    assert m._cache.scans == 1
    assert any(e.project == home / "projects" / "delta" for e in m._cache._found.environments)  # type: ignore[union-attr]
    assert f"venv-delta-py{MINOR}" in m.get_all_specs()
    # The rescan's state was saved: the next start answers with delta at once.
    _wait(lambda: m._cache.saves >= 1, "the new state was not saved")
    again = KernelKeeperSpecManager(first_check_delay=3600.0)
    assert f"venv-delta-py{MINOR}" in again.get_all_specs() and again._cache.scans == 0


def test_nothing_changed_while_down_costs_no_scan(home: Path) -> None:
    _saved()
    m = KernelKeeperSpecManager(cache_seconds=0.0, first_check_delay=0.0)
    m.get_all_specs()
    _wait(lambda: m._cache.checks >= 1, "the saved state was never checked")
    m.get_all_specs()
    assert m._cache.scans == 0


@pytest.mark.parametrize("damage", ["corrupt", "foreign", "writable-by-others", "not-a-file"])
def test_a_bad_state_file_is_ignored_with_a_log_line(
    home: Path, damage: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _saved()
    path = state.state_path(Context.from_environ(env=dict(os.environ)))
    assert path.is_file()
    if damage == "corrupt":
        path.write_bytes(path.read_bytes()[:-100] + b"\0\xff")
    elif damage == "foreign":
        # A valid state, but for another context (another HOME's variables): never served here.
        other = dict(os.environ, WORKON_HOME="/elsewhere")
        found = state.discover_cached(Context.from_environ(env=other))
        path.write_text(state.encode(Context.from_environ(env=other), found, {}))
    elif damage == "writable-by-others":
        path.chmod(0o666)
    else:
        path.unlink()
        path.mkdir()
    caplog.set_level(logging.INFO)
    m = KernelKeeperSpecManager()
    specs = m.get_all_specs()
    assert f"venv-alpha-py{MINOR}" in specs, "the list comes from a scan instead"
    assert m._cache.loaded == -1 and m._cache.scans == 1
    assert any("ignoring the discovery state" in r.getMessage() for r in caplog.records), caplog.text


def test_idle_checks_stat_nothing_where_inotify_works(home: Path, caplog: pytest.LogCaptureFixture) -> None:
    m = KernelKeeperSpecManager(cache_seconds=0.0, persist_state=False)
    m.get_all_specs()
    m.get_all_specs()  # the first check may compare mtimes (paths the scan saw move are unsettled)
    _wait(lambda: m._cache.checks >= 2, "no checks ran")
    checked = m._cache.paths_checked
    for _ in range(5):
        m.get_all_specs()
    assert m._cache.checks >= 5
    assert m._cache.paths_checked == checked, "nothing changed: inotify answers, no stat"
    # A saved notebook raises an event: compared, no rescan; a new environment: rescan.
    caplog.set_level(logging.INFO)
    caplog.clear()
    (home / "projects" / "alpha" / "analysis.ipynb").write_text("{}")
    m.get_all_specs()
    assert m._cache.paths_checked > checked, "the event made the check compare mtimes"
    # (The machine's PATH folders are watched too: another process installing a tool there may rescan.)
    assert not [r for r in caplog.records if "rescanned" in r.getMessage() and "alpha" in r.getMessage()]
    fakes.venv(fakes.project(home / "projects" / "delta") / ".venv", ipykernel=True)
    _wait(lambda: f"venv-delta-py{MINOR}" in m.get_all_specs(), "inotify missed a new environment")


def test_network_paths_are_polled(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """inotify sees nothing another NFS client does: such paths are stat'ed on every check.

    No network filesystem can be mounted here, so the mount table says the fake HOME is NFS.
    """
    real = watch.mounts()
    monkeypatch.setattr(watch, "mounts", lambda: [(str(home), "nfs4"), *real])
    m = KernelKeeperSpecManager(cache_seconds=0.0, persist_state=False)
    m.get_all_specs()
    _wait(lambda: m._cache.checks >= 1, "no checks ran")
    checked = m._cache.paths_checked
    m.get_all_specs()
    assert m._cache.paths_checked > checked


def test_a_change_rebuilds_only_its_own_entry(home: Path) -> None:
    m = KernelKeeperSpecManager(cache_seconds=0.0, persist_state=False)
    before = m.get_all_specs()
    fakes.venv(fakes.project(home / "projects" / "delta") / ".venv", ipykernel=True)
    _wait(lambda: f"venv-delta-py{MINOR}" in m.get_all_specs(), "the new environment never showed")
    after = m.get_all_specs()
    assert all(after[name] is entry for name, entry in before.items()), "unchanged kernels were rebuilt"
    assert m.get_all_specs() is after, "nothing changed: the same list (and so the same REST body)"


# --- a real jupyter_server with the extension enabled ------------------------------------------------

HANG_SCANS = """
import os, time
import kernelkeeper.provider as provider

_discover = provider.discover


def _hung(ctx):
    if os.path.exists(os.environ["KK_TEST_HANG"]):
        time.sleep(300)
    return _discover(ctx)


provider.discover = _hung
"""


@pytest.fixture
def server_env(home: Path, tmp_path: Path) -> dict[str, str]:
    config_dir = tmp_path / "server-config"
    (config_dir / "jupyter_server_config.d").mkdir(parents=True)
    enable = {"ServerApp": {"jpserver_extensions": {"kernelkeeper": True}}}
    (config_dir / "jupyter_server_config.d" / "kernelkeeper.json").write_text(json.dumps(enable))
    # Every kernel in the list (not the short list): the tests look for each environment's kernel.
    (config_dir / "jupyter_server_config.py").write_text(HANG_SCANS + "c.KernelKeeperSpecManager.list_all = True\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), JUPYTER_CONFIG_DIR=str(config_dir))
    env["KK_TEST_HANG"] = str(tmp_path / "hang")
    return hermetic(env, tmp_path)


def _get(server: Any, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(
        server.url + path, headers={"Authorization": f"token {server.token}", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_server_restart_answers_from_the_saved_state_with_etag_and_gzip(
    server_env: dict[str, str], home: Path, tmp_path: Path
) -> None:
    from jupyter_server_proc import jupyter_server

    with jupyter_server(server_env, tmp_path, tmp_path / "server1.log") as server:
        _wait(lambda: f"venv-gamma-py{MINOR}" in server.kernelspecs(), "the first server never listed gamma")
        _wait(
            lambda: any(state.state_path(Context.from_environ(env=dict(os.environ))).parent.glob("*.json")), "no state"
        )
        first_run = server.kernelspecs()
    (tmp_path / "hang").touch()  # every scan of the next server hangs
    with jupyter_server(server_env, tmp_path, tmp_path / "server2.log") as server:
        status, headers, body = _get(server, "/api/kernelspecs")
        assert status == 200
        specs = json.loads(body)["kernelspecs"]
        assert specs.keys() == first_run.keys(), "the first list after a restart is the saved one, complete"
        # The stock handler's format: name, spec, resources per kernel.
        assert all(set(model) == {"name", "spec", "resources"} for model in specs.values())
        etag = headers["Etag"]
        status, _, body = _get(server, "/api/kernelspecs", {"If-None-Match": etag})
        assert (status, body) == (304, b"")
        status, headers, body = _get(server, "/api/kernelspecs", {"Accept-Encoding": "gzip"})
        assert status == 200 and headers.get("Content-Encoding") == "gzip"
        assert json.loads(gzip.decompress(body))["kernelspecs"].keys() == specs.keys()
        _, headers, body = _get(server, "/api/kernelspecs", {"Accept-Encoding": "gzip;q=0, deflate"})
        assert "Content-Encoding" not in headers and json.loads(body)["kernelspecs"].keys() == specs.keys()
        # The handler keeps the server's authentication: no token, no list.
        anonymous = urllib.request.Request(server.url + "/api/kernelspecs")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(anonymous, timeout=30)
        assert refused.value.code == 403
        # Fifty at once: every one answered, /api/status too.
        with ThreadPoolExecutor(50) as pool:
            answers = list(pool.map(lambda _: _get(server, "/api/kernelspecs")[0], range(50)))
            assert _get(server, "/api/status")[0] == 200
        assert answers == [200] * 50
    log = (tmp_path / "server2.log").read_text()
    assert "serving" in log and "from the saved discovery state" in log, log[-3000:]


def test_server_without_the_extension_serves_the_stock_handler(home: Path, tmp_path: Path) -> None:
    """kernel_spec_manager_class set by hand: no handler added, the stock one answers as before."""
    from jupyter_server_proc import jupyter_server

    config_dir = tmp_path / "server-config"
    config_dir.mkdir()
    config = {
        "ServerApp": {"kernel_spec_manager_class": "kernelkeeper.provider.KernelKeeperSpecManager"},
        "KernelKeeperSpecManager": {"list_all": True},
    }
    (config_dir / "jupyter_server_config.json").write_text(json.dumps(config))
    env = hermetic(dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), JUPYTER_CONFIG_DIR=str(config_dir)), tmp_path)
    with jupyter_server(env, tmp_path, tmp_path / "server.log") as server:
        _wait(lambda: f"venv-gamma-py{MINOR}" in server.kernelspecs(), "never listed gamma")
        _status, headers, body = _get(server, "/api/kernelspecs")
        assert not headers.get("Etag", "").startswith('"kk-')
        assert "resource_dir" in json.loads(body)["kernelspecs"][f"venv-gamma-py{MINOR}"]


@pytest.mark.parametrize(
    ("header", "gzipped"),
    [("gzip", True), ("gzip, deflate, br", True), ("br;q=1, gzip;q=0", False), ("gzip;q=0.0", False), ("", False)],
)
def test_gzip_only_where_accepted(header: str, gzipped: bool) -> None:
    from kernelkeeper.rest import _accepts_gzip

    assert _accepts_gzip(header) is gzipped


def test_the_saved_list_is_prepared_before_the_first_request_and_checked_later(home: Path) -> None:
    """Loading the state builds the kernel list at once (the first request only reads it) but does not
    start the check: that waits for first_check_delay or the first request."""
    before = _saved().get_all_specs()
    m = KernelKeeperSpecManager(first_check_delay=3600.0)
    _wait(lambda: m._all_key is not None, "the list was not prepared from the saved state")
    assert m._all_result.keys() == before.keys()
    time.sleep(0.3)
    assert m._cache.checks == 0 and m._cache.scans == 0, "the warm-up started the check"
    assert m.get_all_specs() is m._all_result
    _wait(lambda: m._cache.checks >= 1, "the first request did not start the check")


# --- the kernel list saved between starts (bodycache.py) -----------------------------------


class _Server(Configurable):
    """What the provider reads of its jupyter_server: the base_url (a real server is tested above)."""

    base_url = Unicode("/")


def _in_server(**config: Any) -> KernelKeeperSpecManager:
    return KernelKeeperSpecManager(parent=_Server(), **config)


def _body(m: KernelKeeperSpecManager) -> Any:
    body = asyncio.run(m.rest_body("/", "python3"))
    assert body is not None
    return body


def _ran_once(**config: Any) -> tuple[KernelKeeperSpecManager, Any]:
    """The previous start: it answered a kernel list, and saved it."""
    m = _in_server(**config)
    body = _body(m)
    _wait(lambda: m._body_path().is_file(), "the kernel list was never saved")
    return m, body


def test_a_restart_answers_the_saved_kernel_list_before_loading_anything(
    home: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    first, before = _ran_once(list_all=True)
    assert f"venv-gamma-py{MINOR}" in json.loads(before.data)["kernelspecs"]
    for saved in state.state_path(first._ctx).parent.glob("discovery-*.json"):
        saved.unlink()  # no discovery state: only the saved list can answer
    hung = HungScans(monkeypatch)
    caplog.set_level(logging.INFO)
    m = _in_server(list_all=True, first_check_delay=3600.0)
    after = _body(m)
    assert "answering the kernel list saved by the last start" in caplog.text, caplog.text
    assert (after.data, after.etag) == (before.data, before.etag), "the same list, the same ETag (a 304 still works)"
    assert m._cache.scans == 0, "no scan had finished"
    _wait(lambda: hung.started >= 1, "the first request did not start the check")
    hung.release.set()


def _wrote_kernelspec(home: Path, m: KernelKeeperSpecManager) -> str:
    folder = Path(os.environ["JUPYTER_DATA_DIR"]) / "kernels" / "handmade"
    folder.mkdir(parents=True)
    (folder / "kernel.json").write_text(
        json.dumps({"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                    "display_name": "Hand made", "language": "python"})
    )  # fmt: skip
    return "handmade"


def _wrote_wrapped_kernelspec(home: Path) -> Path:
    """A kernel.json whose argv runs kernelkeeper's exec wrapper (/bin/sh): the interpreter is in its env."""
    from kernelkeeper.kernelspecs import PYTHON_VAR, SH_WRAPPER

    python = home / "wrapped-env" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.symlink_to(sys.executable)
    folder = Path(os.environ["JUPYTER_DATA_DIR"]) / "kernels" / "wrapped"
    folder.mkdir(parents=True)
    (folder / "kernel.json").write_text(
        json.dumps({"argv": [*SH_WRAPPER, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                    "env": {PYTHON_VAR: str(python)}, "display_name": "Wrapped", "language": "python"})
    )  # fmt: skip
    return python


@pytest.mark.parametrize(
    "change",
    ["kernelspec-written", "interpreter-deleted", "wrapped-interpreter-deleted", "setting-changed", "kernel-started"],
)
def test_a_saved_kernel_list_that_no_longer_holds_is_not_served(
    home: Path, change: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Whatever the list is made from changed while the server was down: the new start answers the new list."""
    config: dict[str, Any] = {"list_all": change != "kernel-started"}
    wrapped = _wrote_wrapped_kernelspec(home) if change == "wrapped-interpreter-deleted" else None
    first, before = _ran_once(**config)
    gamma = f"venv-gamma-py{MINOR}"
    if wrapped is not None:
        expect = lambda specs: "wrapped" not in specs  # noqa: E731
        shutil.rmtree(wrapped.parent.parent)
    elif change == "kernelspec-written":
        expect = lambda specs: "handmade" in specs  # noqa: E731
        _wrote_kernelspec(home, first)
    elif change == "interpreter-deleted":
        expect = lambda specs: gamma not in specs  # noqa: E731
        shutil.rmtree(home / "projects" / "gamma" / ".venv")
    elif change == "setting-changed":
        config["display_name_format"] = "{name} is here"
        expect = lambda specs: specs[gamma]["spec"]["display_name"] == "gamma is here"  # noqa: E731
    else:
        first.record_started(gamma)
        first.recent.flush()
        expect = lambda specs: gamma in specs  # noqa: E731
    assert not expect(json.loads(before.data)["kernelspecs"])
    caplog.set_level(logging.INFO)
    after = _body(_in_server(**config))
    assert expect(json.loads(after.data)["kernelspecs"]), change
    assert "answering the kernel list saved by the last start" not in caplog.text
    if change != "setting-changed":  # other settings keep their own saved list (another file)
        assert "the kernel list saved by the last start is out of date" in caplog.text


def test_a_notebook_copied_in_while_down_makes_the_saved_list_out_of_date(
    home: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The short list holds the kernels the server's notebooks name (stock JupyterLab starts only a
    listed one without asking). A notebook copied into the server's folder while it was down names
    a kernel the saved list lacks: the restart must not answer that list."""
    from kernelkeeper.notebook_kernels import NotebookKernels

    root = tmp_path / "root"
    root.mkdir()

    def started() -> KernelKeeperSpecManager:
        m = _in_server()
        m.notebooks = NotebookKernels(root)
        m.notebooks.start()
        return m

    first = started()
    before = _body(first)
    _wait(lambda: first._body_path().is_file(), "the kernel list was never saved")
    first.notebooks.close()
    gamma = f"venv-gamma-py{MINOR}"
    assert gamma not in json.loads(before.data)["kernelspecs"], "neither recent nor named by a notebook"
    meta = {"kernelspec": {"name": gamma, "display_name": gamma, "language": "python"}}
    (root / "copied.ipynb").write_text(json.dumps({"cells": [], "metadata": meta, "nbformat": 4, "nbformat_minor": 5}))
    caplog.set_level(logging.INFO)
    second = started()
    try:
        after = _body(second)
        assert gamma in json.loads(after.data)["kernelspecs"]
        assert "the kernel list saved by the last start is out of date" in caplog.text
    finally:
        second.notebooks.close()


@pytest.mark.parametrize("damage", ["corrupt", "truncated", "writable-by-others", "not-a-file"])
def test_a_bad_saved_kernel_list_is_ignored_with_a_log_line(
    home: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    first, before = _ran_once(list_all=True)
    path = first._body_path()
    blob = path.read_bytes()
    if damage == "corrupt":
        path.write_bytes(blob[: blob.index(b"\n") + 1] + b"\x1f\x8b" + os.urandom(200))
    elif damage == "truncated":
        path.write_bytes(blob[:-100])
    elif damage == "writable-by-others":
        path.chmod(0o666)
    else:
        path.unlink()
        os.mkfifo(path)
    caplog.set_level(logging.INFO)
    after = _body(_in_server(list_all=True))
    assert json.loads(after.data) == json.loads(before.data), "the list is made as without a saved one"
    assert "ignoring the saved kernel list" in caplog.text
