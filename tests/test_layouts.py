"""Layouts the tools really leave that discovery used to miss (issue 12).

Where the tool runs here (pipenv, hatch, poetry, virtualenv 16 on a pyenv
Python) the test makes the layout with it, HOME and the tool's variables
pointed into tmp_path; those tests are marked ``realtools`` (a tool run costs
seconds). conda and macOS cannot run here: their layouts are built on disk as
the tools write them, and each builder says what it mirrors.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import fakes
from kernelkeeper.locators.pdm import pdm_hash
from kernelkeeper.projects import path_hash
from realenvs import hatch_project_id, pipenv_env_name
from test_discovery import by_prefix, run_discover

TOOLS = Path(sys.executable).parent


def hatch_id(project: Path, platform: str) -> str:
    """hatch's ``Path.id`` (hatch/utils/fs.py): the path is case-folded on macOS and Windows."""
    return hatch_project_id(Path(str(project).casefold()) if platform in ("darwin", "win32") else project)


def tool_env(home: Path, **extra: str) -> dict[str, str]:
    """What a tool run gets: the fake HOME and XDG folders, the venv's tools, no network chatter."""
    env = {
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / ".local/share"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "PATH": f"{TOOLS}:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_INPUT": "1",
        "PIP_CONFIG_FILE": os.devnull,
        "VIRTUALENV_NO_PERIODIC_UPDATE": "1",
        "PIPENV_YES": "1",
        "PIPENV_NOSPIN": "1",
        "PIPENV_IGNORE_VIRTUALENVS": "1",
        "PIPENV_VERBOSITY": "-1",
        "UV_PYTHON_DOWNLOADS": "never",
        "NO_COLOR": "1",
        "TERM": "dumb",
    }
    for key in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "no_proxy", "NO_PROXY", "SSL_CERT_FILE"):
        if key in os.environ:
            env[key] = os.environ[key]
    env.update(extra)
    return env


def run(cmd: list[str | Path], env: dict[str, str], cwd: Path | None = None, timeout: float = 180) -> str:
    res = subprocess.run(
        [str(c) for c in cmd], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert res.returncode == 0, f"{cmd} -> {res.returncode}\n{res.stdout}\n{res.stderr}"
    return res.stdout


def python(pyenv_pythons: dict[str, tuple[str, Path]], minor: str) -> tuple[str, Path]:
    if minor not in pyenv_pythons:
        pytest.skip(f"no pyenv Python {minor} on this machine")
    return pyenv_pythons[minor]


# --- pipenv ------------------------------------------------------------------------------


@pytest.mark.realtools
def test_pipenv_envs_made_before_workon_home_was_set(
    fake_home: Path, monkeypatch: pytest.MonkeyPatch, pyenv_pythons: dict[str, tuple[str, Path]]
) -> None:
    version, exe = python(pyenv_pythons, "3.11")
    web = fakes.project(fake_home / "projects" / "web", files={"Pipfile": ""})
    run([TOOLS / "pipenv", "--python", exe], tool_env(fake_home), cwd=web)  # before WORKON_HOME: XDG folder
    old = fake_home / ".local/share/virtualenvs" / pipenv_env_name(web)
    assert (old / "pyvenv.cfg").is_file(), "pipenv made its env where its source says"

    workon = fake_home / ".virtualenvs"
    api = fakes.project(fake_home / "projects" / "api", files={"Pipfile": ""})
    run([TOOLS / "pipenv", "--python", exe], tool_env(fake_home, WORKON_HOME=str(workon)), cwd=api)
    new = workon / pipenv_env_name(api)
    # virtualenvwrapper's mkvirtualenv runs virtualenv into WORKON_HOME; this name merely looks like pipenv's.
    lookalike = workon / "alpha-saffron3"
    run([TOOLS / "virtualenv", "-p", exe, lookalike], tool_env(fake_home, WORKON_HOME=str(workon)))

    monkeypatch.setenv("WORKON_HOME", str(workon))
    found = run_discover()
    for prefix, project in ((old, web), (new, api)):
        env = by_prefix(found, prefix)
        assert env.kinds == ("pipenv", "virtualenv")
        assert env.project == project and env.name == project.name
        assert env.version == version and env.healthy
    wrapper = by_prefix(found, lookalike)
    assert wrapper.kinds == ("virtualenvwrapper", "virtualenv") and wrapper.project is None


def test_pipenv_claims_a_shared_folder_env_only_on_its_own_evidence(
    fake_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workon = fake_home / ".virtualenvs"
    monkeypatch.setenv("WORKON_HOME", str(workon))
    web = fakes.project(fake_home / "projects" / "web", files={"Pipfile": ""})
    alpha = fakes.project(fake_home / "projects" / "alpha")  # a plain project: no Pipfile
    # pipenv's name for web, without its .project file (lost in a copy): the hash says whose it is.
    by_hash = fakes.venv(workon / pipenv_env_name(web), tool="virtualenv")
    # PIPENV_PYTHON=3.11 adds the Python after the hash.
    suffixed = fakes.venv(workon / f"{pipenv_env_name(web)}-3.11", tool="virtualenv")
    # virtualenvwrapper names that look like <dir>-<8 chars>; one bound to a project by `mkvirtualenv -a`.
    plain = fakes.venv(workon / "alpha-saffron3", tool="virtualenv")
    bound = fakes.venv(workon / "alpha-Zq9x_w2k", tool="virtualenv")
    (bound / ".project").write_text(str(alpha))

    found = run_discover()
    for prefix in (by_hash, suffixed):
        env = by_prefix(found, prefix)
        assert env.kinds == ("pipenv", "virtualenv") and env.project == web and env.name == "web"
    assert by_prefix(found, plain).kinds == ("virtualenvwrapper", "virtualenv")
    wrapper = by_prefix(found, bound)
    assert wrapper.kinds == ("virtualenvwrapper", "virtualenv") and wrapper.project == alpha


# --- conda -------------------------------------------------------------------------------


def test_condarc_envs_dirs_with_variables(fake_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # conda's config expands each envs_dirs entry with expanduser(expandvars(...)); conda cannot
    # run here, so the envs are conda prefixes as `conda create -p` leaves them (fakes.conda).
    team = fakes.conda(fake_home / "team-envs" / "shared", version="3.11.7")
    scratch = fakes.conda(fake_home / "scratch" / "conda" / "tmp1", version="3.10.13")
    tilde = fakes.conda(fake_home / "tilde-envs" / "t", version="3.12.1")
    rc = fake_home / "rc" / "team.condarc"
    rc.parent.mkdir()
    rc.write_text("envs_dirs:\n  - ${HOME}/team-envs\n  - $SCRATCH/conda\n  - ~/tilde-envs\n  - $NOT_SET/x\n")
    monkeypatch.setenv("CONDARC", str(rc))
    monkeypatch.setenv("SCRATCH", str(fake_home / "scratch"))
    found = run_discover()
    for prefix, version in ((team, "3.11.7"), (scratch, "3.10.13"), (tilde, "3.12.1")):
        env = by_prefix(found, prefix)
        assert env.kinds == ("conda",) and env.name == prefix.name and env.version == version and env.healthy
    # The provider re-scans when a new env appears in one of those folders.
    assert str(fake_home / "team-envs") in found.watched


# --- hatch -------------------------------------------------------------------------------


@pytest.mark.realtools
def test_hatch_envs_where_its_config_puts_them(
    fake_home: Path, monkeypatch: pytest.MonkeyPatch, pyenv_pythons: dict[str, tuple[str, Path]]
) -> None:
    version, exe = python(pyenv_pythons, "3.11")
    config = fake_home / ".config" / "hatch" / "config.toml"
    config.parent.mkdir(parents=True)
    build = (
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'
        "[tool.hatch.envs.default]\nskip-install = true\n[tool.hatch.envs.test]\nskip-install = true\n"
    )
    inner = fakes.project(
        fake_home / "projects" / "inner",
        files={"pyproject.toml": f'[project]\nname = "Inner_App"\nversion = "1"\n{build}'},
    )
    outer = fakes.project(
        fake_home / "projects" / "outer", files={"pyproject.toml": f'[project]\nname = "outer"\nversion = "1"\n{build}'}
    )
    env = tool_env(fake_home, HATCH_PYTHON=str(exe))
    # A relative dirs.env.virtual: hatch puts each env flat in <project>/.hatch/.
    config.write_text('[dirs.env]\nvirtual = ".hatch"\n')
    run([TOOLS / "hatch", "env", "create"], env, cwd=inner)
    run([TOOLS / "hatch", "env", "create", "test"], env, cwd=inner)
    in_default = inner / ".hatch" / "inner-app"
    in_test = inner / ".hatch" / "test"
    found = run_discover()
    for prefix, name in ((in_default, "inner-app"), (in_test, "inner-app-test")):
        assert (prefix / "pyvenv.cfg").is_file(), f"hatch made {prefix}"
        got = by_prefix(found, prefix)
        assert got.kinds == ("hatch", "virtualenv") and got.project == inner and got.name == name
        assert got.version == version and got.healthy

    # An absolute one, with a variable: <dir>/<project>/<id>/<env>, as under the data dir.
    monkeypatch.setenv("TEAM", str(fake_home / "team"))
    env["TEAM"] = str(fake_home / "team")
    config.write_text('[dirs.env]\nvirtual = "$TEAM/hatch-envs"\n')
    run([TOOLS / "hatch", "env", "create"], env, cwd=outer)
    absolute = fake_home / "team" / "hatch-envs" / "outer" / hatch_id(outer, sys.platform) / "outer"
    assert (absolute / "pyvenv.cfg").is_file(), f"hatch made {absolute}"
    got = by_prefix(run_discover(), absolute)
    assert got.kinds == ("hatch", "virtualenv") and got.project == outer and got.name == "outer"
    assert got.version == version and got.healthy


# --- poetry ------------------------------------------------------------------------------


@pytest.mark.realtools
def test_poetry_project_config_with_cache_dir_placeholder(
    fake_home: Path, pyenv_pythons: dict[str, tuple[str, Path]]
) -> None:
    version, exe = python(pyenv_pythons, "3.11")
    proj = fakes.project(
        fake_home / "projects" / "svc",
        files={
            "pyproject.toml": '[tool.poetry]\nname = "svc"\nversion = "0.1.0"\ndescription = ""\nauthors = []\n'
            'package-mode = false\n[tool.poetry.dependencies]\npython = "^3.11"\n',
            "poetry.toml": '[virtualenvs]\npath = "{cache-dir}/project-venvs"\n',
        },
    )
    run([TOOLS / "poetry", "env", "use", exe], tool_env(fake_home), cwd=proj)
    folder = fake_home / ".cache" / "pypoetry" / "project-venvs"
    (prefix,) = [p for p in folder.iterdir() if p.is_dir()]  # poetry also writes envs.toml there
    assert prefix.name == f"svc-{path_hash(proj)}-py3.11"

    env = by_prefix(run_discover(), prefix)
    assert env.kinds == ("poetry", "virtualenv") and env.project == proj and env.name == "svc"
    assert env.version == version and env.healthy


def test_poetry_project_config_placeholder_is_not_format(fake_home: Path) -> None:
    # Braces other than {cache-dir} stay as written (str.format would raise or leak attributes).
    proj = fakes.project(
        fake_home / "projects" / "odd",
        files={
            "pyproject.toml": '[tool.poetry]\nname = "odd"\n',
            "poetry.toml": '[virtualenvs]\npath = "{cache-dir}/{0.__class__}/venvs"\n',
        },
    )
    prefix = fakes.venv(
        fake_home / ".cache/pypoetry/{0.__class__}/venvs" / f"odd-{path_hash(proj)}-py3.11", tool="virtualenv"
    )
    env = by_prefix(run_discover(), prefix)
    assert env.kind == "poetry" and env.project == proj


# --- virtualenv before 20 ----------------------------------------------------------------


def old_virtualenv(prefix: Path, base: Path, minor: str) -> Path:
    """What virtualenv 16.7 writes (observed with 16.7.12 on pyenv 2.7.18 and 3.7.16): no
    pyvenv.cfg; lib/pythonX.Y with orig-prefix.txt (the base prefix, no newline),
    no-global-site-packages.txt, links into the base's stdlib and site-packages; include/
    linking the base's headers; a copied bin/pythonX.Y with python, python3 links to it."""
    lib = prefix / "lib" / f"python{minor}"
    (lib / "site-packages" / "pip-19.3.1.dist-info").mkdir(parents=True)
    (lib / "orig-prefix.txt").write_text(str(base))
    (lib / "no-global-site-packages.txt").write_text("")
    (lib / "os.py").symlink_to(base / "lib" / f"python{minor}" / "os.py")
    (prefix / "include").mkdir()
    abi = "m" if minor.startswith("3.") else ""
    (prefix / "include" / f"python{minor}{abi}").symlink_to(base / "include" / f"python{minor}{abi}")
    bin_dir = prefix / "bin"
    bin_dir.mkdir()
    shutil.copy(fakes.BASE_PYTHON, bin_dir / f"python{minor}")
    (bin_dir / "python").symlink_to(f"python{minor}")
    (bin_dir / f"python{minor[0]}").symlink_to(f"python{minor}")
    (bin_dir / "activate").write_text(f'VIRTUAL_ENV="{prefix}"\n')
    return prefix


def fake_base(prefix: Path, version: str) -> Path:
    minor = ".".join(version.split(".")[:2])
    abi = "m" if minor.startswith("3.") else ""
    (prefix / "lib" / f"python{minor}").mkdir(parents=True)
    (prefix / "lib" / f"python{minor}" / "os.py").write_text("")
    inc = prefix / "include" / f"python{minor}{abi}"
    inc.mkdir(parents=True)
    (inc / "patchlevel.h").write_text(f'#define PY_VERSION              "{version}"\n')
    return prefix


def test_virtualenv_before_20_is_found_healthy_or_not(fake_home: Path, tmp_path: Path) -> None:
    base27 = fake_base(tmp_path / "bases" / "2.7.18", "2.7.18")
    base37 = fake_base(tmp_path / "bases" / "3.7.16", "3.7.16")
    gone = fake_base(tmp_path / "bases" / "3.6.15", "3.6.15")
    proj = fakes.project(fake_home / "projects" / "legacy", files={"setup.py": ""})
    in_project = old_virtualenv(proj / "venv", base27, "2.7")
    wrapper = old_virtualenv(fake_home / ".virtualenvs" / "py37tools", base37, "3.7")
    loose = old_virtualenv(fake_home / "code" / "oldstuff" / "env36", gone, "3.6")
    shutil.rmtree(gone)  # the pyenv version it was made from was uninstalled

    found = run_discover()
    env = by_prefix(found, in_project)
    assert env.kinds == ("virtualenv",) and env.project == proj and env.name == "legacy"
    assert env.version == "2.7.18" and env.healthy and env.python == in_project / "bin" / "python"
    env = by_prefix(found, wrapper)
    assert env.kinds == ("virtualenvwrapper", "virtualenv") and env.version == "3.7.16" and env.healthy
    env = by_prefix(found, loose)
    assert env.kinds == ("virtualenv",) and env.version == "3.6" and env.project is None
    assert not env.healthy and any("base Python is gone" in p and str(gone) in p for p in env.problems)
    assert env.has_ipykernel is False


@pytest.mark.realtools
def test_venv_upgraded_to_another_minor_version(fake_home: Path, pyenv_pythons: dict[str, tuple[str, Path]]) -> None:
    """``python3.13 -m venv --upgrade`` over a 3.12 venv: lib/ holds python3.12 and python3.13.

    pyvenv.cfg (rewritten in place) and bin/python name 3.13, whose site-packages is the new
    folder: the environment is healthy, not "pyvenv.cfg says 3.13 but lib/ holds python3.12",
    and a cached discovery sees the upgrade (nothing it listed changed).
    """
    from kernelkeeper import state
    from kernelkeeper.context import Context

    old_version, old_exe = python(pyenv_pythons, "3.12")
    new_version, new_exe = python(pyenv_pythons, "3.13")
    prefix = fake_home / ".virtualenvs" / "upgraded"
    env = tool_env(fake_home)
    run([old_exe, "-m", "venv", "--without-pip", prefix], env)
    aged = os.path.getmtime(prefix) - 60
    for path in [fake_home, *fake_home.rglob("*")]:
        os.utime(path, (aged, aged), follow_symlinks=False)  # made well before the scan: a settled snapshot
    state.forget()
    try:
        ctx = Context.from_environ(env=dict(os.environ), cwd=fake_home)
        before = by_prefix(state.discover_cached(ctx), prefix)
        assert before.version == old_version and before.healthy
        run([new_exe, "-m", "venv", "--without-pip", "--upgrade", prefix], env)
        assert sorted(p.name for p in (prefix / "lib").iterdir()) == ["python3.12", "python3.13"]
        for found in (state.discover_cached(ctx), run_discover()):
            after = by_prefix(found, prefix)
            assert after.version == new_version
            assert after.healthy, after.problems
            assert after.site_packages == prefix / "lib" / "python3.13" / "site-packages"
    finally:
        state.forget()


@pytest.mark.realtools
def test_real_virtualenv_16_envs(
    fake_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pyenv_pythons: dict[str, tuple[str, Path]]
) -> None:
    version37, exe37 = python(pyenv_pythons, "3.7")
    tool = tmp_path / "tool37"
    env = tool_env(fake_home, UV_CACHE_DIR=str(tmp_path / "uvcache"))
    run([TOOLS / "uv", "venv", "--python", exe37, tool], env)
    try:
        run([TOOLS / "uv", "pip", "install", "--python", tool / "bin" / "python", "virtualenv<20"], env, timeout=120)
    except AssertionError as e:  # no registry here
        pytest.skip(f"cannot install virtualenv<20: {str(e)[:200]}")
    made = [(exe37, version37, "3.7")]
    if "2.7" in pyenv_pythons:
        made.append((pyenv_pythons["2.7"][1], pyenv_pythons["2.7"][0], "2.7"))
    web = fakes.project(fake_home / "projects" / "web", files={"Pipfile": ""})
    expected = []
    for exe, version, minor in made:
        tag = minor.replace(".", "")
        # virtualenvwrapper's folder, a project's venv/, and where pipenv put envs before 2020 (it ran virtualenv).
        wrapper = fake_home / ".virtualenvs" / f"tools{tag}"
        in_project = fakes.project(fake_home / "projects" / f"app{tag}", files={"setup.py": ""}) / "venv"
        for prefix in (wrapper, in_project):
            run([tool / "bin" / "virtualenv", "--no-download", "-p", exe, prefix], env)
        expected += [(wrapper, ("virtualenvwrapper", "virtualenv"), None, version)]
        expected += [(in_project, ("virtualenv",), in_project.parent, version)]
    pipenv_env = fake_home / ".local/share/virtualenvs" / pipenv_env_name(web)
    run([tool / "bin" / "virtualenv", "--no-download", "-p", exe37, pipenv_env], env)
    (pipenv_env / ".project").write_text(str(web))
    expected.append((pipenv_env, ("pipenv", "virtualenv"), web, version37))

    found = run_discover()
    for prefix, kinds, project, version in expected:
        assert not (prefix / "pyvenv.cfg").exists(), "virtualenv before 20 writes no pyvenv.cfg"
        got = by_prefix(found, prefix)
        assert (got.kinds, got.project, got.version, got.healthy) == (kinds, project, version, True), prefix


# --- macOS -------------------------------------------------------------------------------


def brew_python(root: Path, brew: str, version: str) -> Path:
    """Homebrew's python@X.Y: a framework build in the Cellar, bin/python3 linked from <brew>/bin,
    site-packages a link to <brew>/lib/pythonX.Y/site-packages (what `brew install python@3.12` leaves)."""
    minor = ".".join(version.split(".")[:2])
    brew_root = root / brew.lstrip("/")
    prefix = brew_root / "Cellar" / f"python@{minor}" / version / "Frameworks/Python.framework/Versions" / minor
    framework_install(prefix, version)
    site = brew_root / "lib" / f"python{minor}" / "site-packages"
    site.mkdir(parents=True)
    shutil.rmtree(prefix / "lib" / f"python{minor}" / "site-packages")
    (prefix / "lib" / f"python{minor}" / "site-packages").symlink_to(site)
    (brew_root / "bin").mkdir(parents=True, exist_ok=True)
    (brew_root / "bin" / "python3").symlink_to(prefix / "bin" / f"python{minor}")
    return prefix


def framework_install(prefix: Path, version: str) -> Path:
    """A Python.framework Versions/X.Y folder: a real interpreter file (Mach-O here: bytes only)."""
    minor = ".".join(version.split(".")[:2])
    (prefix / "bin").mkdir(parents=True)
    exe = prefix / "bin" / f"python{minor}"
    exe.write_bytes(b"\xcf\xfa\xed\xfe" + bytes(60))
    exe.chmod(0o755)
    (prefix / "bin" / "python3").symlink_to(f"python{minor}")
    (prefix / "lib" / f"python{minor}" / "site-packages").mkdir(parents=True)
    inc = prefix / "include" / f"python{minor}"
    inc.mkdir(parents=True)
    (inc / "patchlevel.h").write_text(f'#define PY_VERSION              "{version}"\n')
    return prefix


def test_macos_layouts(fake_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "macroot"  # stands for "/" of a Mac
    lib = fake_home / "Library"
    proj = fakes.project(
        fake_home / "projects" / "MacApp", files={"pyproject.toml": '[tool.poetry]\nname = "macapp"\n'}
    )
    # poetry: platformdirs' user cache dir on macOS.
    poetry_env = fakes.venv(
        lib / "Caches/pypoetry/virtualenvs" / f"macapp-{path_hash(proj)}-py3.11", tool="virtualenv", version="3.11.7"
    )
    # hatch: user data dir, project id of the case-folded path (hatch's Path.id on macOS).
    hatch_env = fakes.venv(
        lib / "Application Support/hatch/env/virtual/macapp" / hatch_id(proj, "darwin") / "macapp", tool="virtualenv"
    )
    # pdm: user data dir.
    pdm_env = fakes.venv(lib / "Application Support/pdm/venvs" / f"MacApp-{pdm_hash(proj)}-3.12", tool="virtualenv")
    # uv keeps XDG folders on macOS: ~/.local/share/uv/python.
    uv_python = fakes.base_python(
        fake_home / ".local/share/uv/python/cpython-3.12.7-macos-aarch64-none", version="3.12.7"
    )
    # Homebrew (Apple silicon and Intel) and python.org's installer.
    arm = brew_python(root, "/opt/homebrew", "3.12.4")
    intel = brew_python(root, "/usr/local", "3.11.9")
    org = framework_install(root / "Library/Frameworks/Python.framework/Versions/3.13", "3.13.1")
    (org.parent / "Current").symlink_to("3.13")
    # conda: the Homebrew cask's base and a miniforge install in HOME.
    cask = fakes.conda(root / "opt/homebrew/Caskroom/miniconda/base", base=True, version="3.12.2")
    cask_env = fakes.conda(cask / "envs" / "science", version="3.11.8")
    forge = fakes.conda(fake_home / "miniforge3", base=True, version="3.12.3")
    monkeypatch.setenv("PATH", f"{root / 'opt/homebrew/bin'}:/usr/bin:/bin")

    found = run_discover(platform="darwin", system_root=root)
    assert by_prefix(found, poetry_env).kinds == ("poetry", "virtualenv")
    assert by_prefix(found, poetry_env).project == proj
    assert (by_prefix(found, hatch_env).kind, by_prefix(found, hatch_env).project) == ("hatch", proj)
    assert (by_prefix(found, pdm_env).kind, by_prefix(found, pdm_env).project) == ("pdm", proj)
    assert by_prefix(found, uv_python).kinds == ("uv-python",)
    for prefix, version in ((arm, "3.12.4"), (intel, "3.11.9"), (org, "3.13.1")):
        env = by_prefix(found, prefix)  # once, though arm's python3 is also on PATH
        assert env.kinds == ("system",) and env.version == version and env.healthy, env
    assert by_prefix(found, arm).site_packages == arm / "lib/python3.12/site-packages"
    for prefix, name, version in ((cask, "base", "3.12.2"), (cask_env, "science", "3.11.8"), (forge, "base", "3.12.3")):
        env = by_prefix(found, prefix)
        assert (env.kinds, env.name, env.version) == (("conda",), name, version)

    # The same tree seen as Linux: ~/Library and the Mac system folders are not where the tools look.
    linux = run_discover(platform="linux", system_root=root)
    prefixes = {e.prefix for e in linux.environments}
    assert not {poetry_env, hatch_env, pdm_env, intel, org, cask} & prefixes


def test_tilde_in_tool_configs_is_the_contexts_home(fake_home: Path, tmp_path: Path) -> None:
    # The provider builds a Context per user (a hub's single-user server); "~" in a config file is
    # that context's HOME, never the HOME of the process running discovery.
    other = tmp_path / "other-home"
    (other / ".config" / "pypoetry").mkdir(parents=True)
    (other / ".config" / "pypoetry" / "config.toml").write_text('[virtualenvs]\npath = "~/pv"\n')
    (other / ".config" / "pdm").mkdir(parents=True)
    (other / ".config" / "pdm" / "config.toml").write_text('[venv]\nlocation = "~/pdm-envs"\n')
    poetry_env = fakes.venv(other / "pv" / "x-AAAAAAAA-py3.11", tool="virtualenv")
    pdm_env = fakes.venv(other / "pdm-envs" / "y-BBBBBBBB-3.11", tool="virtualenv")
    env = {**os.environ, "HOME": str(other), "XDG_CONFIG_HOME": str(other / ".config")}
    found = run_discover(env=env)
    assert by_prefix(found, poetry_env).kind == "poetry"
    assert by_prefix(found, pdm_env).kind == "pdm"
