"""Discovery over on-disk copies of every layout (the real tools: test_real_tools.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import fakes
from conftest import readable_site
from kernelkeeper.cli import main
from kernelkeeper.context import Context
from kernelkeeper.discovery import Discovery, discover
from kernelkeeper.environments import Environment
from kernelkeeper.locators.pdm import pdm_hash
from kernelkeeper.projects import path_hash


def run_discover(**kwargs: object) -> Discovery:
    return discover(Context.from_environ(**kwargs))  # type: ignore[arg-type]


def by_prefix(found: Discovery, prefix: Path) -> Environment:
    real = Path(os.path.realpath(prefix))
    matches = [e for e in found.environments if e.prefix == real]
    assert matches, f"{real} not found among {[str(e.prefix) for e in found.environments]}"
    assert len(matches) == 1
    return matches[0]


def test_in_project_venvs_get_their_tool_and_project(fake_home: Path) -> None:
    projects = fake_home / "projects"
    plain = fakes.venv(fakes.project(projects / "plain") / ".venv")
    uv_env = fakes.venv(fakes.project(projects / "fast", files={"uv.lock": ""}) / ".venv", tool="uv")
    poetry_env = fakes.venv(
        fakes.project(projects / "poe", files={"pyproject.toml": '[tool.poetry]\nname = "poe"\n'}) / ".venv",
        tool="virtualenv",
    )
    pdm_env = fakes.venv(fakes.project(projects / "pd", files={"pdm.lock": ""}) / ".venv", tool="virtualenv")
    pipenv_env = fakes.venv(fakes.project(projects / "pe", files={"Pipfile": ""}) / ".venv", tool="virtualenv")
    named_venv = fakes.venv(fakes.project(projects / "old") / "venv", ipykernel=True)

    found = run_discover()
    assert by_prefix(found, plain).kinds == ("venv",)
    assert by_prefix(found, uv_env).kinds == ("uv",)
    assert by_prefix(found, poetry_env).kinds == ("poetry", "virtualenv")
    assert by_prefix(found, pdm_env).kinds == ("pdm", "virtualenv")
    assert by_prefix(found, pipenv_env).kinds == ("pipenv", "virtualenv")
    old = by_prefix(found, named_venv)
    assert old.project == projects / "old"
    assert old.name == "old"
    assert old.has_ipykernel is True
    assert old.version == fakes.BASE_VERSION
    assert old.python == named_venv / "bin" / "python"
    assert old.healthy and old.problems == ()
    assert by_prefix(found, plain).has_ipykernel is False


def test_poetry_envs_link_to_their_project_by_poetry_hash(fake_home: Path) -> None:
    proj = fakes.project(fake_home / "code" / "api", files={"pyproject.toml": '[tool.poetry]\nname="api"\n'})
    venvs = fake_home / ".cache" / "pypoetry" / "virtualenvs"
    linked = fakes.venv(venvs / f"api-{path_hash(proj)}-py3.11", tool="virtualenv", version="3.11.7")
    orphan = fakes.venv(venvs / "gone-AAAAAAAA-py3.10", tool="virtualenv", version="3.10.13")
    found = run_discover()
    env = by_prefix(found, linked)
    assert env.kinds == ("poetry", "virtualenv")
    assert env.project == proj
    assert env.name == "api"
    assert env.version == "3.11.7"
    gone = by_prefix(found, orphan)
    assert gone.project is None and gone.name == "gone"


def test_poetry_honours_its_variables_and_config(fake_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    by_var = fakes.venv(fake_home / "pv" / "x-AAAAAAAA-py3.11", tool="virtualenv")
    monkeypatch.setenv("POETRY_VIRTUALENVS_PATH", str(fake_home / "pv"))
    assert by_prefix(run_discover(), by_var).kind == "poetry"
    monkeypatch.delenv("POETRY_VIRTUALENVS_PATH")

    cache = fake_home / "pcache"
    by_cache = fakes.venv(cache / "virtualenvs" / "y-BBBBBBBB-py3.11", tool="virtualenv")
    monkeypatch.setenv("POETRY_CACHE_DIR", str(cache))
    assert by_prefix(run_discover(), by_cache).kind == "poetry"
    monkeypatch.delenv("POETRY_CACHE_DIR")

    config = fake_home / ".config" / "pypoetry"
    config.mkdir(parents=True)
    (config / "config.toml").write_text(f'[virtualenvs]\npath = "{fake_home / "fromconfig"}"\n')
    by_config = fakes.venv(fake_home / "fromconfig" / "z-CCCCCCCC-py3.11", tool="virtualenv")
    assert by_prefix(run_discover(), by_config).kind == "poetry"


def test_pipenv_and_virtualenvwrapper(fake_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    proj = fakes.project(fake_home / "projects" / "web", files={"Pipfile": "[packages]\n"})
    pipenv_env = fakes.venv(fake_home / ".local/share/virtualenvs" / "web-Xy12_-ab", tool="virtualenv")
    (pipenv_env / ".project").write_text(str(proj))
    wrapper_env = fakes.venv(fake_home / ".virtualenvs" / "scratch", tool="virtualenv")
    found = run_discover()
    env = by_prefix(found, pipenv_env)
    assert env.kinds == ("pipenv", "virtualenv") and env.project == proj and env.name == "web"
    assert by_prefix(found, wrapper_env).kinds == ("virtualenvwrapper", "virtualenv")

    # WORKON_HOME moves both tools; in a shared folder pipenv keeps only its <dir>-<hash> envs.
    shared = fake_home / "workon"
    shared.mkdir()
    shutil.move(str(pipenv_env), shared / pipenv_env.name)
    shutil.move(str(wrapper_env), shared / "scratch")
    monkeypatch.setenv("WORKON_HOME", str(shared))
    found = run_discover()
    assert by_prefix(found, shared / pipenv_env.name).kind == "pipenv"
    assert by_prefix(found, shared / "scratch").kind == "virtualenvwrapper"


def test_conda_everywhere_conda_keeps_envs(fake_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = fakes.conda(fake_home / "miniconda3", base=True, version="3.11.7")
    named = fakes.conda(base / "envs" / "science", version="3.10.13", ipykernel=True)
    listed = fakes.conda(fake_home / "elsewhere" / "listed", version="3.9.18")
    (fake_home / ".conda").mkdir()
    (fake_home / ".conda" / "environments.txt").write_text(f"{base}\n{named}\n{listed}\n")
    rc_dir = fake_home / "rc-envs"
    from_rc = fakes.conda(rc_dir / "fromrc")
    (fake_home / ".condarc").write_text(f"channels:\n  - conda-forge\nenvs_dirs:\n  - {rc_dir}  # mine\n")
    var_dir = fake_home / "var-envs"
    from_var = fakes.conda(var_dir / "fromvar")
    monkeypatch.setenv("CONDA_ENVS_PATH", str(var_dir))
    r_only = fake_home / "miniconda3" / "envs" / "r-only"
    (r_only / "conda-meta").mkdir(parents=True)

    found = run_discover()
    assert by_prefix(found, base).name == "base"
    assert by_prefix(found, base).version == "3.11.7"
    sci = by_prefix(found, named)
    assert sci.kinds == ("conda",) and sci.name == "science" and sci.version == "3.10.13"
    assert sci.has_ipykernel
    assert by_prefix(found, listed).version == "3.9.18"
    assert by_prefix(found, from_rc).name == "fromrc"
    assert by_prefix(found, from_var).name == "fromvar"
    assert all(e.prefix != r_only for e in found.environments), "an env without Python is not listed"


def test_pyenv_versions_and_pyenv_virtualenv(fake_home: Path) -> None:
    versions = fake_home / ".pyenv" / "versions"
    full = fakes.base_python(versions / "3.12.1", version="3.12.1")
    env = fakes.venv(full / "envs" / "tools", version="3.12.1", target=full / "bin" / "python3.12")
    (versions / "tools").symlink_to(env)
    found = run_discover()
    py = by_prefix(found, full)
    assert py.kinds == ("pyenv",) and py.version == "3.12.1" and py.name == "3.12.1"
    tools = by_prefix(found, env)
    assert tools.kinds == ("pyenv-virtualenv", "venv") and tools.name == "tools"
    assert len([e for e in found.environments if e.name == "tools"]) == 1, "the alias is not a second env"


def test_hatch_pdm_pixi_uv(fake_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    proj = fakes.project(fake_home / "projects" / "hat")
    data = fake_home / "hatchdata"
    monkeypatch.setenv("HATCH_DATA_DIR", str(data))
    hatch_env = fakes.venv(data / "env" / "virtual" / "hat" / path_hash(proj) / "hat", tool="virtualenv")
    hatch_test = fakes.venv(data / "env" / "virtual" / "hat" / path_hash(proj) / "test", tool="virtualenv")
    pdm_proj = fakes.project(fake_home / "projects" / "pdmproj", files={"pdm.lock": ""})
    pdm_env = fakes.venv(fake_home / ".local/share/pdm/venvs" / f"pdmproj-{pdm_hash(pdm_proj)}-3.11", tool="virtualenv")
    pixi_proj = fakes.project(fake_home / "projects" / "px", files={"pixi.toml": ""})
    pixi_env = fakes.conda(pixi_proj / ".pixi" / "envs" / "default")
    uv_proj = fakes.project(fake_home / "projects" / "uvp", files={"uv.lock": ""})
    monkeypatch.setenv("UV_PROJECT_ENVIRONMENT", "custom-env")
    uv_env = fakes.venv(uv_proj / "custom-env", tool="uv")
    managed = fakes.base_python(
        fake_home / ".local/share/uv/python" / "cpython-3.12.1-linux-x86_64-gnu", version="3.12.1"
    )

    found = run_discover()
    h = by_prefix(found, hatch_env)
    assert h.kinds == ("hatch", "virtualenv") and h.project == proj and h.name == "hat"
    assert by_prefix(found, hatch_test).name == "hat-test"
    p = by_prefix(found, pdm_env)
    assert p.kinds == ("pdm", "virtualenv") and p.project == pdm_proj and p.name == "pdmproj"
    x = by_prefix(found, pixi_env)
    assert x.kinds == ("pixi", "conda") and x.project == pixi_proj and x.name == "px"
    u = by_prefix(found, uv_env)
    assert u.kinds == ("uv",) and u.project == uv_proj
    m = by_prefix(found, managed)
    assert m.kinds == ("uv-python",) and m.version == "3.12.1" and m.name == "cpython-3.12.1"


def test_system_python_on_path_and_no_shims(fake_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shims = fake_home / ".pyenv" / "shims"
    shims.mkdir(parents=True)
    (shims / "python").write_text('#!/usr/bin/env bash\nexec pyenv exec python "$@"\n')
    (shims / "python").chmod(0o755)
    monkeypatch.setenv("PATH", f"{shims}:{fakes.BASE_PYTHON.parent}")
    found = run_discover()
    system = [e for e in found.environments if e.kind == "system"]
    assert [e.python for e in system] == [fakes.BASE_PYTHON]
    assert system[0].version == fakes.BASE_VERSION
    assert system[0].healthy


def test_active_virtual_env_and_config_paths(fake_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    active = fakes.venv(fake_home / "somewhere" / "active")
    shared = fake_home / "opt-envs"
    one = fakes.venv(shared / "one", tool="uv")
    two = fakes.conda(shared / "two")
    monkeypatch.setenv("VIRTUAL_ENV", str(active))
    cfg = fake_home / ".config" / "kernelkeeper"
    cfg.mkdir(parents=True)
    (cfg / "config.toml").write_text(f'[discovery]\npaths = ["{shared}"]\n')
    assert main(["envs", "--json"]) == 0
    found = run_discover(extra_paths=(shared,))
    assert by_prefix(found, active).kind == "venv"
    assert by_prefix(found, one).kind == "uv"
    assert by_prefix(found, two).kind == "conda"


def test_broken_environments_are_reported_not_fatal(fake_home: Path) -> None:
    projects = fake_home / "projects"
    dangling = fakes.venv(fakes.project(projects / "dead") / ".venv", target=fake_home / "gone" / "python3.11")
    no_site = fakes.venv(fakes.project(projects / "nosite") / ".venv")
    shutil.rmtree(no_site / "lib")
    found = run_discover()
    d = by_prefix(found, dangling)
    assert not d.healthy
    assert any("interpreter link dangles" in p for p in d.problems)
    assert by_prefix(found, no_site).problems == ("no site-packages folder",)


def test_symlink_loop_and_depth_bound(fake_home: Path) -> None:
    projects = fake_home / "projects"
    loop = projects / "loop"
    loop.mkdir(parents=True)
    (loop / "self").symlink_to(loop)
    (loop / "up").symlink_to(projects)
    deep = fakes.venv(fakes.project(projects / "a" / "b" / "c" / "d" / "e") / ".venv")
    shallow = fakes.venv(fakes.project(projects / "a" / "b") / ".venv")
    found = run_discover()
    reasons = {(s.path, s.reason) for s in found.skipped}
    assert (loop / "self", "symlink loop") in reasons
    assert (loop / "up", "symlink loop") in reasons
    prefixes = {e.prefix for e in found.environments}
    assert shallow in prefixes and deep not in prefixes
    assert deep in {e.prefix for e in run_discover(depth=6).environments}


def test_huge_tree_stops_at_the_budget_and_says_so(fake_home: Path) -> None:
    root = fake_home / "code"
    for i in range(60):
        (root / f"d{i:02}" / "x").mkdir(parents=True)
    found = run_discover(max_dirs=50)
    assert any("too many folders" in s.reason and s.path == root for s in found.skipped)


def _world_readable_tmp() -> Path:
    base = Path(tempfile.mkdtemp(prefix="kk-unreadable-"))
    base.chmod(0o755)
    return base


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_unreadable_folder_is_skipped_with_a_reason(tmp_path: Path) -> None:
    """As root nothing is unreadable, so the scan runs as `nobody` there (setpriv)."""
    base = _world_readable_tmp()
    try:
        home = base / "home"
        ok = fakes.venv(fakes.project(home / "projects" / "fine") / ".venv")
        secret = home / "projects" / "secret"
        hidden = fakes.venv(fakes.project(secret) / ".venv")
        # An env whose interpreter is there but out of this user's reach (another user's Python):
        # not "missing", not a dangling link.
        reach = fakes.venv(fakes.project(home / "projects" / "reach") / ".venv", target=hidden / "bin" / "python")
        secret.chmod(0o000)
        env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "PYTHONPATH": readable_site(base)}
        cmd = [sys.executable, "-m", "kernelkeeper", "envs", "--json"]
        if os.geteuid() == 0:
            if not shutil.which("setpriv"):
                pytest.skip("running as root without setpriv: cannot make a folder unreadable")
            cmd = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *cmd]
            for p in [base, *base.rglob("*")]:
                if p != secret and not p.is_symlink():
                    p.chmod(p.stat().st_mode | 0o755 if p.is_dir() else p.stat().st_mode | 0o644)
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, cwd=str(base))
        assert res.returncode == 0, res.stderr
        assert f"skipped {secret}: permission denied" in res.stderr
        by_prefix = {e["prefix"]: e for e in json.loads(res.stdout)}
        assert str(ok) in by_prefix
        (problem,) = by_prefix[str(reach)]["problems"]  # the scan ran as a user who may not enter `secret`
        assert problem.startswith("interpreter not reachable by this user (permission denied): "), problem
    finally:
        secret.chmod(0o755)
        shutil.rmtree(base)


def test_one_prefix_found_twice_is_one_environment(fake_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    proj = fakes.project(fake_home / "projects" / "p", files={"poetry.lock": ""})
    env = fakes.venv(proj / ".venv", tool="virtualenv")
    monkeypatch.setenv("VIRTUAL_ENV", str(env))
    monkeypatch.setenv("POETRY_VIRTUALENVS_PATH", str(proj))  # poetry's folder holds it too
    found = run_discover()
    assert len([e for e in found.environments if e.prefix == env]) == 1
    assert by_prefix(found, env).kinds[0] == "poetry"


def test_cwd_project_is_found_from_anywhere_below(fake_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    proj = fakes.project(fake_home / "elsewhere" / "deep" / "proj")
    env = fakes.venv(proj / ".venv")
    sub = proj / "notebooks" / "2024"
    sub.mkdir(parents=True)
    found = run_discover(cwd=sub)
    assert by_prefix(found, env).project == proj
    assert env not in {e.prefix for e in run_discover(cwd=fake_home).environments}


def test_hand_made_env_folders_in_home(fake_home: Path) -> None:
    made = [fakes.venv(fake_home / folder / "tool") for folder in ("venvs", ".venvs", "envs")]
    found = run_discover()
    for prefix in made:
        env = by_prefix(found, prefix)
        assert env.kinds == ("venv",) and env.name == "tool"


def test_tool_first_even_when_uv_made_the_folder(fake_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    proj = fakes.project(fake_home / "projects" / "hat")
    data = fake_home / "hatchdata"
    monkeypatch.setenv("HATCH_DATA_DIR", str(data))
    env = fakes.venv(data / "env" / "virtual" / "hat" / path_hash(proj, resolve=False) / "hat", tool="uv")
    poe = fakes.venv(fakes.project(fake_home / "projects" / "p", files={"poetry.lock": ""}) / ".venv", tool="uv")
    uvp = fakes.venv(fakes.project(fake_home / "projects" / "u", files={"uv.lock": ""}) / ".venv", tool="uv")
    found = run_discover()
    assert by_prefix(found, env).kinds == ("hatch", "uv")
    assert by_prefix(found, poe).kinds == ("poetry", "uv")
    assert by_prefix(found, uvp).kinds == ("uv",)


def test_uv_managed_python_full_version_from_its_name(fake_home: Path) -> None:
    root = fake_home / ".local/share/uv/python"
    full = root / "cpython-3.12.1-linux-x86_64-gnu"
    fakes.venv(full, version="3.12.1")  # lay out bin/ and lib/ ...
    (full / "pyvenv.cfg").unlink()  # ... but a managed Python is a base install, not a venv
    (root / "cpython-3.12-linux-x86_64-gnu").symlink_to(full)
    found = run_discover()
    env = by_prefix(found, full)
    assert env.version == "3.12.1" and env.kinds == ("uv-python",)
    assert len([e for e in found.environments if e.kind == "uv-python"]) == 1


def test_remembering_realpath_agrees_with_the_library(tmp_path: Path) -> None:
    """RealPaths resolves a scan's thousands of paths with one lstat each; it must answer as realpath does."""
    from kernelkeeper.projects import RealPaths

    (tmp_path / "a" / "b" / "c").mkdir(parents=True)
    (tmp_path / "l1").symlink_to(tmp_path / "a")  # absolute link to a folder
    (tmp_path / "a" / "rel").symlink_to("b")  # relative link
    (tmp_path / "l2").symlink_to(tmp_path / "l1" / "rel")  # link through links
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    (tmp_path / "x").symlink_to(tmp_path / "y")  # a loop
    (tmp_path / "y").symlink_to(tmp_path / "x")
    paths = [
        "a/b/c", "l1/b/c", "a/rel/c", "l2/c", "l2", "dangling", "dangling/below", "x", "x/z",
        "l1/missing/deeper", "a/b/c/", "l1/../a", "./a", "",
    ]  # fmt: skip
    real = RealPaths()
    for order in (paths, list(reversed(paths)), paths):  # answers from memory agree too
        for rel in order:
            p = str(tmp_path / rel) if rel else str(tmp_path)
            if rel.endswith("/"):
                p += "/"
            assert real(p) == os.path.realpath(p), p


def test_as_path_is_path(tmp_path: Path) -> None:
    """as_path skips pathlib's parse for a scan's normal absolute paths; it must give what Path gives."""
    from kernelkeeper.environments import as_path

    strings = [
        "/", "/a", "/a/b", "/a b/c.d/é", "/a/../b", "/a/.b/..c", "/a/...", "//a/b", "///a", "/a//b", "/a/",
        "/a/./b", "/a/.", "/./a", ".", "a/b", "", "~/a", str(tmp_path),
    ]  # fmt: skip
    for s in strings:
        got, want = as_path(s), Path(s)
        assert type(got) is type(want), s
        assert (got, str(got), got.parts, got.name, got.parent, hash(got)) == (
            want, str(want), want.parts, want.name, want.parent, hash(want)
        ), s
        assert got / "x" == want / "x" and got.is_absolute() == want.is_absolute(), s
    assert as_path(str(tmp_path)).is_dir()


def test_reading_pyvenv_cfg_answers_as_isfile_does(tmp_path: Path) -> None:
    """A scan reads pyvenv.cfg to learn that a folder is an environment: same answer as isfile, for any file."""
    from kernelkeeper.environments import PyvenvCfgs

    cases = {"file": None, "missing": None, "folder": None, "fifo": None, "big": None, "dangling": None}
    for name in cases:
        (tmp_path / name).mkdir()
    (tmp_path / "file" / "pyvenv.cfg").write_text("home = /usr/bin\nversion = 3.11.7\n")
    (tmp_path / "folder" / "pyvenv.cfg").mkdir()
    os.mkfifo(tmp_path / "fifo" / "pyvenv.cfg")  # would block a plain open() for good
    (tmp_path / "big" / "pyvenv.cfg").write_bytes(b"x" * (2 << 20))  # a regular file past safeio's limit
    (tmp_path / "dangling" / "pyvenv.cfg").symlink_to(tmp_path / "nowhere")
    folders = [str(tmp_path / name) for name in cases] + [str(tmp_path / "file" / "pyvenv.cfg"), "/no\0where"]
    for folder in folders:
        cfgs = PyvenvCfgs()
        want = os.path.isfile(os.path.join(folder, "pyvenv.cfg"))
        assert cfgs.has_cfg(folder) is want, folder
        assert cfgs.has_cfg(folder) is want, folder  # asked again: from memory
        assert cfgs(folder) == PyvenvCfgs()(folder), folder  # and the read is the one describe makes
    assert PyvenvCfgs()(str(tmp_path / "file")) == {"home": "/usr/bin", "version": "3.11.7"}


def test_listing_conda_meta_answers_as_isdir_does(tmp_path: Path) -> None:
    """A scan lists conda-meta/ once to learn that a folder is a conda prefix: isdir's answer, for anything there."""
    from kernelkeeper.environments import PyvenvCfgs, conda_python_version

    cases = ["folder", "missing", "file", "fifo", "dangling", "linked", "unreadable", "loop"]
    for name in cases:
        (tmp_path / name).mkdir()
    (tmp_path / "folder" / "conda-meta").mkdir()
    (tmp_path / "folder" / "conda-meta" / "python-3.12.4-h1_0.json").write_text("{}")
    (tmp_path / "file" / "conda-meta").write_text("")
    os.mkfifo(tmp_path / "fifo" / "conda-meta")  # opening it as a folder must not block
    (tmp_path / "dangling" / "conda-meta").symlink_to(tmp_path / "nowhere")
    (tmp_path / "linked" / "conda-meta").symlink_to(tmp_path / "folder" / "conda-meta")
    (tmp_path / "unreadable" / "conda-meta").mkdir(mode=0)  # a folder all the same, whose names are unknown
    (tmp_path / "loop" / "conda-meta").symlink_to(tmp_path / "loop" / "conda-meta")
    try:
        for folder in [str(tmp_path / name) for name in cases] + ["/no\0where"]:
            cfgs = PyvenvCfgs()
            want = os.path.isdir(os.path.join(folder, "conda-meta"))
            assert (cfgs.conda_meta(folder) is not None) is want, folder
            assert (cfgs.conda_meta(folder) is not None) is want, folder  # asked again: from memory
            if "\0" not in folder:  # (the plain listing raises ValueError there; the scan's says None)
                assert conda_python_version(folder, cfgs.conda_meta) == conda_python_version(folder), folder
        assert conda_python_version(str(tmp_path / "linked"), PyvenvCfgs().conda_meta) == "3.12.4"
    finally:
        (tmp_path / "unreadable" / "conda-meta").chmod(0o755)


def test_a_name_with_a_digit_that_is_not_decimal_sorts(fake_home: Path) -> None:
    """``py3²`` ends with a digit (str.isdigit) that int() refuses: the natural sort once raised on it."""
    odd = fakes.venv(fake_home / ".virtualenvs" / "py3²")
    plain = fakes.venv(fake_home / ".virtualenvs" / "py2")
    found = run_discover()
    assert by_prefix(found, odd).name == "py3²" and by_prefix(found, plain).name == "py2"


def test_realpaths_learnt_from_listings_are_the_realpaths(tmp_path: Path) -> None:
    """env_dirs tells the scan where each environment it lists resolves; that must be os.path.realpath's answer."""
    from kernelkeeper.projects import ProjectScan, env_dirs

    real_parent = tmp_path / "real"
    fakes.venv(real_parent / "plain", tool="venv")
    fakes.venv(tmp_path / "elsewhere" / "target", tool="venv")
    (real_parent / "linked").symlink_to(tmp_path / "elsewhere" / "target")  # an env that is a symlink
    (tmp_path / "via").symlink_to(real_parent)  # the folder of envs reached through a link
    for parent in (str(real_parent), str(tmp_path / "via")):
        scan = ProjectScan()
        found = env_dirs(parent, scan)
        assert [os.path.basename(p) for p in found] == ["linked", "plain"]
        for prefix in found:
            assert scan.realpath(prefix) == os.path.realpath(prefix), prefix


def test_discovery_pauses_the_cyclic_gc_makes_no_cycles_and_restores_it(fake_home: Path) -> None:
    """discover() runs without cyclic collections (they cost a tenth of a 10,000-env scan): sound only
    because the scan leaves no cycles behind, and the GC must be left as it was found."""
    import gc

    proj = fakes.project(fake_home / "code" / "api", files={"pyproject.toml": "[tool.poetry]\nname='api'\n"})
    fakes.venv(proj / ".venv", tool="virtualenv")
    fakes.venv(fake_home / ".virtualenvs" / "scratch", tool="virtualenv")
    (fake_home / "code" / "loop").symlink_to(fake_home / "code")  # a skipped symlink loop
    ctx = Context.from_environ()
    discover(ctx)  # imports and caches first
    collections: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    was, threshold = gc.isenabled(), gc.get_threshold()
    gc.callbacks.append(count)
    try:
        gc.collect()
        gc.enable()
        gc.set_threshold(10)  # a collection every few allocations, were the GC running
        collections.clear()
        found = discover(ctx)
        assert collections == [] and gc.isenabled()
        assert any(s.reason == "symlink loop" for s in found.skipped)
        gc.disable()
        del found
        discover(ctx)
        assert not gc.isenabled()  # left disabled when it was
        assert gc.collect() == 0  # nothing the scan made was garbage in a cycle
    finally:
        gc.callbacks.remove(count)
        gc.set_threshold(*threshold)
        (gc.enable if was else gc.disable)()
