"""Rescans off the server's process (scan.py): the event loop never competes with a scan for the GIL (issue 13)."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from traitlets import Unicode
from traitlets.config import Configurable

import fakes
from kernelkeeper import provider, scan
from kernelkeeper.context import Context
from kernelkeeper.discovery import discover
from kernelkeeper.provider import KernelKeeperSpecManager


class Server(Configurable):
    """What the provider looks at in its parent: a jupyter_server's base_url."""

    base_url = Unicode("/")


@pytest.fixture
def home(fake_home: Path) -> Path:
    projects = fake_home / "projects"
    fakes.venv(fakes.project(projects / "alpha") / ".venv", ipykernel=True)
    fakes.conda(fake_home / "miniconda3" / "envs" / "sci", ipykernel=True)
    # mtimes a minute back: a scan treats paths modified as it starts as unsettled, and rescans them.
    old = time.time() - 60
    for p in [fake_home.parent, *fake_home.parent.rglob("*")]:
        os.utime(p, (old, old), follow_symlinks=False)
    return fake_home


def _manager(server: Server, **config: Any) -> KernelKeeperSpecManager:
    return KernelKeeperSpecManager(parent=server, persist_state=False, list_all=True, cache_seconds=0.0, **config)


def test_the_child_finds_what_discover_finds(home: Path) -> None:
    ctx = Context.from_environ()
    assert scan.discover_in_child(ctx) == discover(ctx)


def test_a_server_rescans_in_a_child_and_sees_a_new_environment(home: Path) -> None:
    m = _manager(Server())
    m._cache.start().wait()  # the first scan (no saved state), in a child
    assert m._cache.child_scans == m._cache.scans >= 1
    assert "venv-alpha-py" + fakes.MINOR in m._all_specs()
    fakes.venv(fakes.project(home / "projects" / "gamma") / ".venv", ipykernel=True)
    m._cache.start().wait()  # the check sees the new folder; the rescan runs in a child too
    assert m._cache.child_scans == m._cache.scans >= 2
    assert "venv-gamma-py" + fakes.MINOR in m._all_specs()


def test_a_check_asked_for_while_the_last_job_is_only_returning_is_a_new_check(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job that has answered and is on its way out (the first one freezes the GC after its
    check) is not one to join: the next start() checks again. It used to get the old, already
    set answer, so the request after a change was served the list from before it."""
    leaving = threading.Event()
    monkeypatch.setattr(provider, "_freeze_gc", lambda log: leaving.wait(30))
    m = _manager(Server(), freeze_gc=True)
    try:
        m._cache.start(boot=True).wait()
        assert m._cache._job is not None and m._cache._job.is_alive(), "the first job is in its freeze"
        scans = m._cache.scans
        fakes.venv(fakes.project(home / "projects" / "gamma") / ".venv", ipykernel=True)
        m._cache.start().wait()
        assert m._cache.scans == scans + 1
        assert "venv-gamma-py" + fakes.MINOR in m._all_specs()
    finally:
        leaving.set()


def test_outside_a_server_a_thread_scans(home: Path) -> None:
    m = KernelKeeperSpecManager(persist_state=False)
    assert "venv-alpha-py" + fakes.MINOR in m.get_all_specs()
    assert m._cache.child_scans == 0 and not m._cache.scan_in_child


def test_a_child_that_cannot_run_falls_back_to_a_thread(
    home: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(sys, "executable", str(home / "no-such-python"))
    with caplog.at_level(logging.WARNING):
        m = _manager(Server())
        m._cache.start().wait()
    assert m._cache.scans == 1 and m._cache.child_scans == 0 and not m._cache.scan_in_child
    assert "venv-alpha-py" + fakes.MINOR in m._all_specs()
    assert "scanning in the server's process from now on" in caplog.text


def test_scan_in_child_off(home: Path) -> None:
    m = _manager(Server(), scan_in_child=False)
    m._cache.start().wait()
    assert m._cache.scans == 1 and m._cache.child_scans == 0


def test_a_real_server_scans_in_a_child_and_lists_every_environment(home: Path, tmp_path: Path) -> None:
    import json

    from conftest import hermetic
    from jupyter_server_proc import jupyter_server

    config_dir = tmp_path / "server-config"
    (config_dir / "jupyter_server_config.d").mkdir(parents=True)
    enable = {"ServerApp": {"jpserver_extensions": {"kernelkeeper": True}}}
    (config_dir / "jupyter_server_config.d" / "kernelkeeper.json").write_text(json.dumps(enable))
    (config_dir / "jupyter_server_config.py").write_text("c.KernelKeeperSpecManager.list_all = True\n")
    env = hermetic(dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), JUPYTER_CONFIG_DIR=str(config_dir)), tmp_path)
    log = tmp_path / "server.log"
    with jupyter_server(env, tmp_path, log) as server:
        assert {"venv-alpha-py" + fakes.MINOR, "conda-sci-py" + fakes.MINOR} <= set(server.kernelspecs())
        fakes.venv(fakes.project(home / "projects" / "gamma") / ".venv", ipykernel=True)
        deadline = time.monotonic() + 30
        while "venv-gamma-py" + fakes.MINOR not in server.kernelspecs():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
    text = log.read_text()
    assert "scanning in the server's process" not in text, text


def test_a_server_freezes_its_long_lived_objects_once(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Full collections walk every object: gc.freeze() after the first list leaves the long-lived ones out."""
    import gc

    import kernelkeeper.provider as provider

    monkeypatch.setattr(provider, "_gc_frozen", False)
    gc.unfreeze()
    outside = KernelKeeperSpecManager(persist_state=False)
    outside._cache.start().wait()
    assert gc.get_freeze_count() == 0, "outside a server nothing is frozen"
    m = _manager(Server())
    deadline = time.monotonic() + 30
    while not provider._gc_frozen:
        assert time.monotonic() < deadline, "never frozen"
        time.sleep(0.05)
    deadline = time.monotonic() + 30
    while gc.get_freeze_count() == 0:
        assert time.monotonic() < deadline, "never frozen"
        time.sleep(0.05)
    assert "venv-alpha-py" + fakes.MINOR in m._all_specs()
    count = gc.get_freeze_count()
    again = _manager(Server())
    again._cache.start().wait()
    assert gc.get_freeze_count() == count, "once per process"
    off = _manager(Server(), freeze_gc=False)
    assert not off._cache.freeze_gc
