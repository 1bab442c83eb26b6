"""The cached discovery is always what a fresh scan finds.

``state.discover_cached`` (what the provider serves its kernel list from) reuses the last scan
while nothing the scan watched has moved. A change it does not see is a kernel list that lies
until something else moves: a kernel shown for a Python that is gone, a new environment missing.

A home with environments as the tools leave them, then one change at a time, as the tools and
people make them. After each, the cached discovery must equal a fresh one, field for field. Each
change is dated a while back (every path it touched gets a time of its own in the past): a path
modified as a scan starts is looked at again anyway, which would hide a path the cache does not
watch.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import fakes
from kernelkeeper import state, watch
from kernelkeeper.discovery import Discovery, discover
from kernelkeeper.locators.pipenv import env_name
from kernelkeeper.projects import path_hash
from test_state import _ctx, _fresh_memory, _rewrite  # noqa: F401  # _fresh_memory: an autouse fixture


def _report(found: Discovery) -> list[dict[str, Any]]:
    return [dict(e.to_json(), site_packages=str(e.site_packages)) for e in found.environments]


class Dated:
    """Moves what each change touched to a time of its own, a minute or more in the past."""

    def __init__(self, *tops: Path) -> None:
        self.tops = tops
        self.when = time.time_ns() - 600 * 10**9
        self.since = 0
        self.touch_all()

    def _paths(self) -> Iterator[Path]:
        for top in self.tops:
            yield top
            yield from top.rglob("*")

    def touch_all(self) -> None:
        self._date(lambda st: True)

    def changes(self) -> None:
        self._date(lambda st: st.st_mtime_ns >= self.since)

    def _date(self, touched: Callable[[os.stat_result], bool]) -> None:
        self.when += 10**9  # a second apart: distinct on any filesystem's clock
        for path in self._paths():
            st = path.lstat()
            if touched(st):
                os.utime(path, ns=(self.when, self.when), follow_symlinks=False)
        self.since = time.time_ns() - 10**6


def _farm(home: Path, outside: Path) -> dict[str, Path]:
    (home / ".cache").mkdir()
    minor, version = fakes.MINOR, fakes.BASE_VERSION
    opt = fakes.base_python(outside / "opt" / "python3")  # a base no locator finds (a build in /opt)
    pyenv = fakes.base_python(home / ".pyenv" / "versions" / version)
    api = fakes.project(home / "projects" / "api")
    web = fakes.project(home / "projects" / "web")
    app = fakes.project(home / "projects" / "app", files={"Pipfile": ""})
    pipenv_env = fakes.venv(home / ".local" / "share" / "virtualenvs" / env_name(app), tool="virtualenv")
    (pipenv_env / ".project").write_text(str(app))
    (home / ".local" / "lib" / f"python{minor}" / "site-packages").mkdir(parents=True)
    conda = fakes.conda(home / "miniconda3", base=True)
    (home / ".config" / "pdm").mkdir(parents=True)  # pdm was run before: its config folder is there
    (home / ".config" / "pypoetry").mkdir(parents=True)
    (home / ".config" / "pypoetry" / "config.toml").write_text("[virtualenvs]\ncreate = true\n")
    (home / ".local" / "share" / "uv" / "python").mkdir(parents=True)  # uv has installed a Python before
    # hatch told to keep each project's envs in it (`[dirs.env] virtual = ".hatch"`).
    (home / ".config" / "hatch").mkdir(parents=True)
    (home / ".config" / "hatch" / "config.toml").write_text('[dirs.env]\nvirtual = ".hatch"\n')
    hat = fakes.project(home / "projects" / "hat", files={"pyproject.toml": '[project]\nname = "hat"\n'})
    fakes.venv(hat / ".hatch" / "hat", tool="virtualenv")
    # A project whose poetry.toml puts its envs in a folder of their own, there already (empty).
    svc = fakes.project(
        home / "projects" / "svc",
        files={
            "pyproject.toml": '[tool.poetry]\nname = "svc"\n',
            "poetry.toml": '[virtualenvs]\npath = "{cache-dir}/project-venvs"\n',
        },
    )
    (home / ".cache" / "pypoetry" / "project-venvs").mkdir(parents=True)
    pixi = fakes.project(home / "projects" / "px", files={"pixi.toml": ""})
    fakes.conda(pixi / ".pixi" / "envs" / "default")
    return {
        "pixi": pixi,
        "hat": hat,
        "svc": svc,
        "opt": opt,
        "pyenv": pyenv,
        "api": api,
        "web": web,
        "app": app,
        "api_venv": fakes.venv(api / ".venv", ipykernel=True),
        "tools": fakes.venv(home / ".virtualenvs" / "tools", target=opt / "bin" / f"python{minor}"),
        "other": fakes.venv(home / ".virtualenvs" / "other"),
        "pipenv_env": pipenv_env,
        "conda": conda,
        "science": fakes.conda(conda / "envs" / "science", ipykernel=True),
        "user_site": home / ".local" / "lib" / f"python{minor}" / "site-packages",
    }


def _changes(home: Path, f: dict[str, Path]) -> list[tuple[str, Callable[[], Any]]]:
    minor, version = fakes.MINOR, fakes.BASE_VERSION
    new_version = f"{minor}.99"
    web_venv, tools = f["web"] / ".venv", f["tools"]

    def dist(prefix: Path) -> Path:
        return prefix / "lib" / f"python{minor}" / "site-packages" / "ipykernel-6.29.5.dist-info"

    def conda_python_update() -> None:
        (record,) = (f["science"] / "conda-meta").glob("python-*.json")
        record.rename(record.with_name(f"python-{new_version}-h955ad1f_0.json"))

    def venv_upgrade() -> None:
        _rewrite(web_venv / "pyvenv.cfg", f"version = {version}", f"version = {new_version}")

    def system_site_packages() -> None:
        _rewrite(tools / "pyvenv.cfg", "include-system-site-packages = false", "include-system-site-packages = true")

    def pyenv_virtualenv() -> None:
        env = fakes.venv(f["pyenv"] / "envs" / "venv2", target=f["pyenv"] / "bin" / f"python{minor}")
        (f["pyenv"].parent / "venv2").symlink_to(env)

    def poetry_install() -> None:
        folder = home / ".cache" / "pypoetry" / "project-venvs"
        fakes.venv(folder / f"svc-{path_hash(f['svc'])}-py{minor}", tool="virtualenv")

    def uv_python_install() -> None:
        fakes.base_python(home / ".local" / "share" / "uv" / "python" / f"cpython-{version}-linux-x86_64-gnu")

    def poetry_config() -> None:
        _rewrite(home / ".config" / "pypoetry" / "config.toml", "create = true\n", 'create = true\npath = "~/pvenvs"\n')

    def pdm_config() -> None:
        (home / ".config" / "pdm" / "config.toml").write_text('[venv]\nlocation = "~/pdm-venvs"\n')

    def condarc_add() -> None:
        fakes.conda(home / "more-envs" / "extra")
        _rewrite(home / ".condarc", "  - ~/team-envs\n", "  - ~/team-envs\n  - ~/more-envs\n")

    def adopt_poetry() -> None:
        _rewrite(f["web"] / "pyproject.toml", "[project]", "[tool.poetry]")

    return [
        ("a notebook saved in a project", lambda: (f["api"] / "analysis.ipynb").write_text("{}")),
        ("pip install ipykernel", lambda: dist(f["other"]).mkdir()),
        ("pip uninstall ipykernel", lambda: dist(f["other"]).rmdir()),
        ("python -m venv in a project", lambda: fakes.venv(web_venv)),
        ("python -m venv --upgrade", venv_upgrade),
        ("a tool edits pyvenv.cfg", system_site_packages),
        ("conda updates Python", conda_python_update),
        ("conda create", lambda: fakes.conda(f["conda"] / "envs" / "fresh")),
        ("conda remove --all", lambda: shutil.rmtree(f["conda"] / "envs" / "fresh")),
        ("pip install --user ipykernel", lambda: (f["user_site"] / "ipykernel-6.29.5.dist-info").mkdir()),
        ("pip uninstall --user ipykernel", lambda: (f["user_site"] / "ipykernel-6.29.5.dist-info").rmdir()),
        ("setvirtualenvproject", lambda: (tools / ".project").write_text(f"{f['web']}\n")),
        ("setvirtualenvproject again", lambda: _rewrite(tools / ".project", str(f["web"]), str(f["api"]))),
        ("the project adopts poetry (pyproject.toml edited in place)", adopt_poetry),
        ("uv lock", lambda: (f["web"] / "uv.lock").write_text("version = 1\n")),
        ("mkvirtualenv", lambda: fakes.venv(home / ".virtualenvs" / "fresh")),
        ("pixi install -e test", lambda: fakes.conda(f["pixi"] / ".pixi" / "envs" / "test")),
        ("pixi clean", lambda: shutil.rmtree(f["pixi"] / ".pixi" / "envs")),
        ("pixi install", lambda: fakes.conda(f["pixi"] / ".pixi" / "envs" / "default")),
        ("pyenv virtualenv", pyenv_virtualenv),
        ("poetry install (env where the project's poetry.toml says)", poetry_install),
        ("uv python install", uv_python_install),
        (
            "a poetry env made where poetry's config will point",
            lambda: fakes.venv(home / "pvenvs" / "web-AbCdEfGh-py3.11"),
        ),
        ("poetry config virtualenvs.path (config.toml rewritten in place)", poetry_config),
        ("hatch env remove", lambda: shutil.rmtree(f["hat"] / ".hatch" / "hat")),
        ("hatch env create", lambda: fakes.venv(f["hat"] / ".hatch" / "hat", tool="virtualenv")),
        ("a pdm env made where pdm's config will point", lambda: fakes.venv(home / "pdm-venvs" / "app-AbCdEfGh-3.11")),
        ("pdm config venv.location", pdm_config),
        ("an env made in a folder .condarc will name", lambda: fakes.conda(home / "team-envs" / "shared")),
        (".condarc names a folder of envs", lambda: (home / ".condarc").write_text("envs_dirs:\n  - ~/team-envs\n")),
        ("conda config --add envs_dirs (.condarc rewritten in place)", condarc_add),
        ("a project venv linked to a shared env", lambda: (f["app"] / ".venv").symlink_to(tools)),
        ("rmvirtualenv", lambda: shutil.rmtree(f["other"])),
        ("a project folder renamed", lambda: f["api"].rename(f["api"].with_name("api2"))),
        ("pipenv --rm", lambda: shutil.rmtree(f["pipenv_env"])),
        ("the base Python in /opt removed", lambda: shutil.rmtree(f["opt"])),
        ("pyenv uninstall", lambda: shutil.rmtree(f["pyenv"])),
        ("pyvenv.cfg deleted", lambda: (tools / "pyvenv.cfg").unlink()),
        ("a project venv removed", lambda: shutil.rmtree(web_venv)),
    ]


@pytest.mark.parametrize("inotify", [True, False], ids=["inotify", "stat"])
def test_the_cached_discovery_is_what_a_fresh_scan_finds(
    fake_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, inotify: bool
) -> None:
    if not inotify:
        monkeypatch.setattr(watch, "_load_libc", lambda: None)
    outside = tmp_path / "outside"
    farm = _farm(fake_home, outside)
    dated = Dated(fake_home, outside)
    cached = state.discover_cached(_ctx(fake_home))
    assert _report(cached) == _report(discover(_ctx(fake_home)))
    missed, moved = [], []
    last = _report(cached)
    changes = _changes(fake_home, farm)
    for what, change in changes:
        # What a server saves when it stops; the change happens while it is down.
        entry = state._memory[state.context_key(_ctx(fake_home))]
        assert state.save(_ctx(fake_home), entry.found, dict(entry.snapshot)) is not None
        change()
        dated.changes()
        cached = state.discover_cached(_ctx(fake_home))
        fresh = discover(_ctx(fake_home))
        if _report(fresh) != last:
            moved.append(what)
        last = _report(fresh)
        if _report(cached) != last:
            missed.append(what)
            state.forget()  # start the next change from the truth
            state.discover_cached(_ctx(fake_home))
        # The restarted server's check of the saved state (`provider` loads it, then compares).
        loaded = state.load(_ctx(fake_home))
        assert loaded is not None
        if _report(loaded[0]) != last and state.still_valid(loaded[1], loaded[0]) is None:
            missed.append(f"{what} (while the server was down)")
    assert missed == [], f"the cached discovery did not see: {missed}"
    # Every change but these changes the report: the test checks what it claims to.
    assert [what for what, _ in changes if what not in moved] == [
        "a notebook saved in a project",
        "a tool edits pyvenv.cfg",  # include-system-site-packages: no field reports it
        "a poetry env made where poetry's config will point",  # found once the config points there
        "a pdm env made where pdm's config will point",  # likewise
        "an env made in a folder .condarc will name",  # found once .condarc names the folder
    ]
