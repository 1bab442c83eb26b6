"""The shared discovery state: reused while nothing moved, seen to move, kept on disk safely."""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import fakes
from kernelkeeper import state, watch
from kernelkeeper.context import Context
from kernelkeeper.discovery import Discovery, snapshot


@pytest.fixture(autouse=True)
def _fresh_memory() -> Iterator[None]:
    state.forget()
    yield
    state.forget()


def _ctx(home: Path) -> Context:
    return Context.from_environ(env=dict(os.environ), cwd=home)


def _aged(*paths: Path) -> None:
    """Move mtimes a minute back: a scan treats paths modified as it starts as unsettled."""
    old = time.time() - 60
    for path in paths:
        for p in [path, *path.rglob("*")]:
            os.utime(p, (old, old), follow_symlinks=False)


def _rewrite(path: Path, old: str, new: str) -> None:
    """Rewrite a file in place (same inode), as ``python -m venv --upgrade`` or an editor does."""
    with path.open("r+") as f:
        text = f.read()
        assert old in text, (path, old)
        f.seek(0)
        f.write(text.replace(old, new))
        f.truncate()


def _home_with_projects(home: Path) -> tuple[Path, Path]:
    (home / ".cache").mkdir()  # where the state is saved: as on any lived-in HOME
    api = fakes.project(home / "projects" / "api")
    fakes.venv(api / ".venv", ipykernel=True)
    web = fakes.project(home / "projects" / "web")
    _aged(home / "projects")
    return api, web


def _held(home: Path, attempts: int = 5) -> Discovery:
    """The cached discovery once two calls in a row give the same one.

    Discovery also watches the cwd's parents and PATH (``/tmp``, ``/``, ``/usr/bin``): a
    process outside the test may touch one between two calls, which is a real change.
    Five such touches in a row would be no accident.
    """
    for _ in range(attempts):
        first = state.discover_cached(_ctx(home))
        if state.discover_cached(_ctx(home)) is first:
            return first
    raise AssertionError(f"the cached discovery never held for two calls in {attempts} attempts")


def test_second_discovery_is_the_first_while_nothing_moves(fake_home: Path) -> None:
    api, _web = _home_with_projects(fake_home)
    first = _held(fake_home)
    assert [e.prefix.name for e in first.environments if e.project == api] == [".venv"]
    # A notebook saved in a project folder changes nothing discovery reads.
    for attempt in range(5):
        (api / f"analysis{attempt}.ipynb").write_text("{}")
        if state.discover_cached(_ctx(fake_home)) is first:
            break
        first = _held(fake_home)  # something outside the test moved: try again
    else:
        raise AssertionError("every saved notebook made discovery scan again")


def test_new_and_deleted_environments_are_seen(fake_home: Path) -> None:
    api, web = _home_with_projects(fake_home)
    first = state.discover_cached(_ctx(fake_home))
    assert not any(e.project == web for e in first.environments)
    fakes.venv(web / ".venv")
    found = state.discover_cached(_ctx(fake_home))
    assert any(e.project == web for e in found.environments)
    shutil.rmtree(api / ".venv")
    found = state.discover_cached(_ctx(fake_home))
    assert not any(e.project == api for e in found.environments)


@pytest.mark.parametrize("inotify", [True, False], ids=["inotify", "stat"])
def test_an_environment_rewritten_in_place_is_seen(
    fake_home: Path, monkeypatch: pytest.MonkeyPatch, inotify: bool
) -> None:
    """No folder discovery lists changes when a tool rewrites what it read inside an environment.

    ``python -m venv --upgrade`` rewrites pyvenv.cfg in place; conda updating Python swaps
    its record inside conda-meta/. Both in a tool's folder and in a project's .venv.
    """
    if not inotify:
        monkeypatch.setattr(watch, "_load_libc", lambda: None)
    (fake_home / ".cache").mkdir()
    old, new = fakes.BASE_VERSION, f"{fakes.MINOR}.99"
    venvs = [
        fakes.venv(fake_home / ".virtualenvs" / "demo"),
        fakes.venv(fakes.project(fake_home / "projects" / "api") / ".venv"),
    ]
    conda = fakes.conda(fake_home / "miniconda3" / "envs" / "science")
    _aged(fake_home / ".virtualenvs", fake_home / "projects", fake_home / "miniconda3")

    def versions() -> dict[Path, str | None]:
        found = state.discover_cached(_ctx(fake_home))
        return {e.prefix: e.version for e in found.environments if e.prefix in (*venvs, conda)}

    assert versions() == {venvs[0]: old, venvs[1]: old, conda: old}
    _held(fake_home)
    for prefix in venvs:
        _rewrite(prefix / "pyvenv.cfg", f"version = {old}", f"version = {new}")
    assert versions() == {venvs[0]: new, venvs[1]: new, conda: old}
    _held(fake_home)
    (record,) = (conda / "conda-meta").glob("python-*.json")
    record.rename(record.with_name(f"python-{new}-h955ad1f_0.json"))
    assert versions() == {venvs[0]: new, venvs[1]: new, conda: new}


@pytest.mark.parametrize("inotify", [True, False], ids=["inotify", "stat"])
@pytest.mark.parametrize("where", ["user site", "dist-packages"])
def test_ipykernel_installed_beside_a_base_python_is_seen(
    fake_home: Path, monkeypatch: pytest.MonkeyPatch, inotify: bool, where: str
) -> None:
    """``pip install --user ipykernel`` (or Debian's python3-ipykernel) for a pyenv or system Python.

    Neither folder is inside the Python's prefix or listed by the scan, but describe looks
    there for ipykernel: the cached discovery must see it arrive and go.
    """
    if not inotify:
        monkeypatch.setattr(watch, "_load_libc", lambda: None)
    (fake_home / ".cache").mkdir()
    base = fakes.base_python(fake_home / ".pyenv" / "versions" / fakes.BASE_VERSION)
    if where == "user site":
        folder = fake_home / ".local" / "lib" / f"python{fakes.MINOR}" / "site-packages"
    else:
        folder = base / "lib" / "python3" / "dist-packages"
    folder.mkdir(parents=True)  # there already: something else was installed in it before
    _aged(fake_home)

    def has_ipykernel() -> bool:
        (env,) = [e for e in state.discover_cached(_ctx(fake_home)).environments if e.prefix == base]
        return env.has_ipykernel

    assert not has_ipykernel()
    _held(fake_home)
    (folder / "ipykernel-6.29.5.dist-info").mkdir()
    assert has_ipykernel()
    _held(fake_home)
    (folder / "ipykernel-6.29.5.dist-info").rmdir()
    assert not has_ipykernel()


@pytest.mark.parametrize("inotify", [True, False], ids=["inotify", "stat"])
def test_a_venv_whose_base_python_is_uninstalled_is_seen_broken(
    fake_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, inotify: bool
) -> None:
    """The Python a venv was made from goes (a source build in /opt removed, a pyenv version
    uninstalled): no folder the scan listed changes, but the venv's interpreter now dangles."""
    if not inotify:
        monkeypatch.setattr(watch, "_load_libc", lambda: None)
    (fake_home / ".cache").mkdir()
    base = fakes.base_python(tmp_path / "opt" / "python3")
    env = fakes.venv(fake_home / ".virtualenvs" / "demo", target=base / "bin" / f"python{fakes.MINOR}")
    _aged(fake_home, tmp_path / "opt")

    def problems() -> tuple[str, ...]:
        (found,) = [e for e in state.discover_cached(_ctx(fake_home)).environments if e.prefix == env]
        return found.problems

    assert problems() == ()
    _held(fake_home)
    shutil.rmtree(base)
    assert [p.split(":")[0] for p in problems()] == ["interpreter link dangles"]


@pytest.mark.parametrize("home", ["relative/bin", "/opt/py\0thon/bin", "", "/" + "x" * 5000])
def test_a_hostile_home_in_pyvenv_cfg_is_not_watched(fake_home: Path, home: str) -> None:
    env = fakes.venv(fake_home / ".virtualenvs" / "odd")
    cfg = env / "pyvenv.cfg"
    cfg.write_text(re.sub(r"(?m)^home = .*$", lambda _m: f"home = {home}", cfg.read_text()))
    found = state.discover_cached(_ctx(fake_home))
    assert any(e.prefix == env for e in found.environments)
    assert str(cfg) in found.watched
    assert not [w for w in found.watched if "\0" in w or not os.path.isabs(w)]
    # Checking what it watches (a stat of each path, an inotify watch) raises nothing either.
    again = state.discover_cached(_ctx(fake_home))
    assert any(e.prefix == env for e in again.environments)


def test_paths_on_network_filesystems_are_polled(fake_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """inotify sees no change made by another NFS client: such paths are stat-polled.

    No network filesystem can be mounted here, so the mount table says the fake HOME is NFS.
    """
    real_mounts = watch.mounts()
    monkeypatch.setattr(watch, "mounts", lambda: [(str(fake_home), "nfs4"), *real_mounts])
    _api, web = _home_with_projects(fake_home)
    state.discover_cached(_ctx(fake_home))
    entry = next(iter(state._memory.values()))
    assert entry.watch is not None and entry.watch.polled
    under_home = [p for p in entry.found.watched if p.startswith(str(fake_home))]
    assert under_home and set(under_home) <= set(entry.watch.polled)
    _held(fake_home)
    fakes.venv(web / ".venv")
    assert any(e.project == web for e in state.discover_cached(_ctx(fake_home)).environments)


def test_watch_without_inotify_polls_everything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watch, "_load_libc", lambda: None)
    w = watch.Watch([str(tmp_path)])
    assert not w.active and w.polled == (str(tmp_path),) and w.pending()


def test_state_round_trips_on_disk(fake_home: Path) -> None:
    _home_with_projects(fake_home)
    ctx = _ctx(fake_home)
    found = state.discover_cached(ctx)
    path = state.save(ctx, found, snapshot(found.watched))
    assert path is not None and path.stat().st_mode & 0o777 == 0o600
    loaded = state.load(ctx)
    assert loaded is not None
    again, snap = loaded
    assert again.environments == found.environments
    assert again.watched == found.watched and dict(again.signatures) == dict(found.signatures)
    assert state.still_valid(snap, again) is None


def test_foreign_or_broken_state_is_ignored_with_a_log_line(fake_home: Path, caplog: pytest.LogCaptureFixture) -> None:
    _home_with_projects(fake_home)
    ctx = _ctx(fake_home)
    found = state.discover_cached(ctx)
    path = state.save(ctx, found, snapshot(found.watched))
    assert path is not None
    good = path.read_text()
    caplog.set_level(logging.WARNING, logger="kernelkeeper.state")
    cases = {
        "corrupt": "{not json",
        "deep": "[" * 100_000 + "]" * 100_000,
        "other context": good.replace(state.context_key(ctx), "0" * 16),
        "other format": good.replace(f'"format":{state.FORMAT}', '"format":99'),
        "malformed": good.replace('["environments",[', '["environments",[7,'),
        "truncated": good[: len(good) // 2],
        "a line lost": "\n".join(line for i, line in enumerate(good.splitlines()) if i != 1),
    }
    assert all(text != good for text in cases.values()), "each case damages the state"
    for what, text in cases.items():
        path.write_text(text)
        caplog.clear()
        assert state.load(ctx) is None, what
        assert "ignoring the discovery state" in caplog.text, what
    path.write_text(good)
    path.chmod(0o666)
    assert state.load(ctx) is None and "writable by others" in caplog.text
    path.chmod(0o600)
    subprocess.run(["chown", "nobody", str(path)], check=True)
    assert state.load(ctx) is None and "another user" in caplog.text
    path.unlink()
    os.mkfifo(path)
    assert state.load(ctx) is None and "not a regular file" in caplog.text


def test_save_never_writes_through_a_planted_link(fake_home: Path, tmp_path: Path) -> None:
    _home_with_projects(fake_home)
    ctx = _ctx(fake_home)
    found = state.discover_cached(ctx)
    target = tmp_path / "victim"
    target.write_text("keep me")
    path = state.state_path(ctx)
    path.parent.mkdir(parents=True)
    path.symlink_to(target)
    assert state.save(ctx, found, snapshot(found.watched)) == path
    assert target.read_text() == "keep me"
    assert not path.is_symlink() and state.load(ctx) is not None
