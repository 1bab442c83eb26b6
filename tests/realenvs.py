"""Build a fake HOME full of *real* Python environments, made by the real tools.

Plain module (no pytest fixtures); conftest wires it in, e.g.::

    from realenvs import build_real_home
    @pytest.fixture(scope="session")
    def real_home(tmp_path_factory):
        return build_real_home(tmp_path_factory.mktemp("realhome"),
                               Path(sys.executable).parent)

``build_real_home(base, tools_bin)`` creates ``base/home`` and fills it with
environments made by python -m venv, virtualenv, virtualenvwrapper, uv, poetry,
pipenv, hatch and pdm (the commands are taken from ``tools_bin``), plus on-disk
copies of a pyenv root with a pyenv-virtualenv env, a conda (miniconda) install
with a named env and an env known only from ``~/.conda/environments.txt``, and a
pixi project env -- those tools cannot run here (no binary downloads), so they
are laid out by hand exactly as the tool would (see the comments).  Every tool
run gets an environment that points only into ``base`` (HOME, XDG_*, tool
variables); the real HOME, the real pyenv root and the real tool folders are
only *read* (to find the pyenv interpreters), never written.

The interpreters come from the real pyenv root (``$PYENV_ROOT``, ``pyenv
root`` or ``~/.pyenv``), by absolute path (``<root>/versions/X.Y.Z/bin/pythonX.Y``);
an environment whose Python minor version is missing there is skipped (listed
in ``RealHome.skipped``), so ``expected`` only holds what was really built.

``RealHome.expected`` holds one dict per environment under ``home``:

  prefix            realpath of the environment folder
  python            prefix/bin/python (may dangle for the broken one)
  version           full X.Y.Z (all of them record it: pyvenv.cfg
                    ``version``/``version_info``, conda-meta JSON, pyenv dir name)
  kinds             most specific first: uv, poetry, pipenv, hatch, pdm, pixi,
                    conda, pyenv-virtualenv, pyenv, virtualenvwrapper,
                    virtualenv, venv
  name              what people call it, stable across machines (kernel names
                    are built from it): poetry -> the project name in the env
                    folder's name (``my-cool-project``); pipenv, pdm, in-project
                    envs (.venv, venv) and pixi's default env -> the project
                    folder's name; conda -> "base" / env name / basename for a
                    ``-p`` env; pyenv -> version dir name; pyenv-virtualenv,
                    hatch and virtualenvwrapper -> env name
  project           absolute project folder, or None
  has_ipykernel     bool
  healthy           bool
  problems_contains substring expected in the reported problems (broken only,
                    else None) -- a proposal, adapt to the real messages

Discovery run with ``RealHome.env`` may legitimately also report interpreters
outside ``home`` (PATH holds ``tools_bin`` -- itself a venv -- and /usr/bin,
which has Debian's python3); compare only entries whose prefix is under
``RealHome.home``.  ``RealHome.aliases`` maps extra paths that reach an
expected env (must be reported once, under its realpath), ``RealHome.hazards``
lists non-environments that must not crash or hang discovery.

Run ``python tests/realenvs.py OUTDIR [TOOLS_BIN]`` to build once by hand and
print the summary as JSON.
"""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from procs import run_checked

__all__ = ["RealHome", "build_real_home", "cleanup_real_home", "find_pyenv_pythons"]

SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"

# Passed through from the calling environment to the tool runs only (not to
# RealHome.env): certificates and proxies, so the one networked step (ipykernel
# from PyPI) works behind a TLS-intercepting proxy.
_PASSTHROUGH = (
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "PIP_CERT",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
    "UV_INDEX_URL",
    "UV_DEFAULT_INDEX",
    "UV_NATIVE_TLS",
    "PIP_INDEX_URL",
)

# Minor versions used; each maps to the highest X.Y.Z found in the pyenv root.
_MINORS = ("3.8", "3.9", "3.10", "3.11", "3.12", "3.13")


@dataclass
class RealHome:
    base: Path
    home: Path
    env: dict[str, str]
    expected: list[dict]
    aliases: dict[str, str] = field(default_factory=dict)
    hazards: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    ipykernel_method: str | None = None
    build_seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    build_env: dict[str, str] = field(default_factory=dict)

    def by_prefix(self) -> dict[str, dict]:
        return {e["prefix"]: e for e in self.expected}


class BuildError(RuntimeError):
    pass


# --------------------------------------------------------------------------
# helpers


def find_pyenv_root() -> Path | None:
    """The real pyenv root, for *reading* interpreters only."""
    root = os.environ.get("PYENV_ROOT")
    if not root and shutil.which("pyenv"):
        try:
            root = subprocess.run(
                ["pyenv", "root"], capture_output=True, text=True, timeout=20, check=True
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            root = None
    if not root:
        root = os.path.expanduser("~/.pyenv")
    return Path(root) if Path(root, "versions").is_dir() else None


def find_pyenv_pythons(root: Path | None = None) -> dict[str, tuple]:
    """{"3.11": ("3.11.7", Path(".../versions/3.11.7/bin/python3.11"))}."""
    root = root if root is not None else find_pyenv_root()
    found: dict[str, tuple] = {}
    if root is None:
        return found
    for d in (root / "versions").iterdir():
        m = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", d.name)
        if not m:
            continue
        minor = f"{m.group(1)}.{m.group(2)}"
        exe = d / "bin" / f"python{minor}"
        if not (exe.is_file() and os.access(exe, os.X_OK)):
            continue
        key = tuple(int(x) for x in m.groups())
        if minor not in found or key > found[minor][2]:
            found[minor] = (d.name, exe, key)
    return {k: (v[0], v[1]) for k, v in found.items()}


def _run(cmd, env, cwd=None, timeout=180) -> str:
    return run_checked(cmd, env, cwd, timeout, error=BuildError)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _real(p: Path) -> str:
    return os.path.realpath(str(p))


def _must_exist(prefix: Path, what: str) -> Path:
    if not (prefix / "bin").is_dir():
        parent = prefix.parent
        have = sorted(x.name for x in parent.iterdir()) if parent.is_dir() else "(no parent)"
        raise BuildError(f"{what}: expected env at {prefix} (naming scheme changed?); {parent} holds {have}")
    return prefix


def _entry(prefix, version, kinds, name, project, *, has_ipykernel=False, healthy=True, problems_contains=None) -> dict:
    prefix = Path(prefix)
    return {
        "prefix": _real(prefix),
        "python": os.path.join(_real(prefix), "bin", "python"),
        "version": version,
        "kinds": list(kinds),
        "name": name,
        "project": _real(project) if project is not None else None,
        "has_ipykernel": has_ipykernel,
        "healthy": healthy,
        "problems_contains": problems_contains,
    }


def _b64_8(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).decode()[:8]


def poetry_env_name(project_name: str, project_dir: Path, minor: str) -> str:
    """poetry 2.x EnvManager.generate_env_name + '-pyX.Y'.
    name = packaging-canonical name ([-_.]+ -> '-', lower), then
    [ $`!*@"\\\\\\r\\n\\t] -> '_' and cut to 42 chars;
    hash = urlsafe_b64(sha256(normcase(realpath(project_dir))))[:8]."""
    name = re.sub(r"[-_.]+", "-", project_name).lower()
    name = re.sub(r'[ $`!*@"\\\r\n\t]', "_", name)[:42]
    h = _b64_8(hashlib.sha256(os.path.normcase(os.path.realpath(project_dir)).encode()).digest())
    return f"{name}-{h}-py{minor}"


def pipenv_env_name(project_dir: Path) -> str:
    """pipenv: sanitized dir name (cut to 42) + '-' +
    urlsafe_b64(sha256(abspath(<project>/Pipfile))[:6])  -- abspath, NOT realpath,
    of the Pipfile (not of the folder), first 6 digest bytes = 8 chars."""
    name = re.sub(r'[ &$`!*@"()\[\]\\\r\n\t]', "_", project_dir.name)[:42]
    pipfile = os.path.abspath(os.path.join(str(project_dir), "Pipfile"))
    return f"{name}-{_b64_8(hashlib.sha256(pipfile.encode()).digest()[:6])}"


def hatch_project_id(project_dir: Path) -> str:
    """hatch: urlsafe_b64(sha256(str(project root)))[:8] (casefolded on mac/win)."""
    return _b64_8(hashlib.sha256(str(project_dir).encode()).digest())


def pdm_venv_prefix(project_dir: Path) -> str:
    """pdm: '<root dir name, as is>-<urlsafe_b64(md5(root.as_posix()))[:8]>-'."""
    return f"{project_dir.name}-{_b64_8(hashlib.md5(project_dir.as_posix().encode()).digest())}-"


# --------------------------------------------------------------------------
# hand-made layouts (tools that cannot run here)


def _interpreter_farm(prefix: Path, version: str, exe: Path, *, site_packages=True) -> None:
    """A self-contained-looking CPython prefix: bin/pythonX.Y is a *copy* of the
    pyenv binary (17 KB; libpython comes from its absolute RUNPATH), the stdlib
    entries are symlinks into the real prefix, site-packages is a fresh empty
    folder.  Run from here, sys.prefix == this prefix (a symlinked binary
    would report the real pyenv prefix instead)."""
    minor = ".".join(version.split(".")[:2])
    real_prefix = exe.parent.parent
    (prefix / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy2(exe, prefix / "bin" / f"python{minor}")
    for link in ("python", "python3"):
        os.symlink(f"python{minor}", prefix / "bin" / link)
    libdir = prefix / "lib" / f"python{minor}"
    libdir.mkdir(parents=True, exist_ok=True)
    for entry in sorted((real_prefix / "lib" / f"python{minor}").iterdir()):
        if entry.name != "site-packages":
            os.symlink(entry, libdir / entry.name)
    if site_packages:
        (libdir / "site-packages").mkdir(exist_ok=True)
    inc = real_prefix / "include" / f"python{minor}"
    if inc.is_dir():
        (prefix / "include").mkdir(exist_ok=True)
        os.symlink(inc, prefix / "include" / f"python{minor}")


def _conda_record(
    prefix: Path,
    name: str,
    version: str,
    build: str,
    channel: str,
    files: list[str],
    depends: list[str],
    requested: str | None = None,
    subdir: str = "linux-64",
    pkgs_dir: Path | None = None,
) -> str:
    """conda-meta/<name>-<version>-<build>.json as conda/mamba/rattler write it."""
    build_number = int(re.search(r"_(\d+)(?:_\w+)?$", build).group(1))
    fn = f"{name}-{version}-{build}.conda"
    pkgs = str(pkgs_dir) if pkgs_dir else "/opt/conda/pkgs"
    rec = {
        "build": build,
        "build_number": build_number,
        "channel": f"{channel}/{subdir}",
        "constrains": [],
        "depends": depends,
        "extracted_package_dir": f"{pkgs}/{fn[:-6]}",
        "features": "",
        "files": files,
        "fn": fn,
        "license": "Python-2.0" if name == "python" else "BSD-3-Clause",
        "link": {"source": f"{pkgs}/{fn[:-6]}", "type": 1},
        "md5": hashlib.md5(fn.encode()).hexdigest(),
        "name": name,
        "package_tarball_full_path": f"{pkgs}/{fn}",
        "paths_data": {
            "paths": [
                {
                    "_path": f,
                    "path_type": "hardlink",
                    "sha256": hashlib.sha256(f.encode()).hexdigest(),
                    "size_in_bytes": 0,
                }
                for f in files
            ],
            "paths_version": 1,
        },
        "requested_spec": requested or "",
        "sha256": hashlib.sha256(fn.encode()).hexdigest(),
        "size": 1000,
        "subdir": subdir,
        "timestamp": 1704067200000,
        "track_features": "",
        "url": f"{channel}/{subdir}/{fn}",
        "version": version,
    }
    out = prefix / "conda-meta" / f"{name}-{version}-{build}.json"
    _write(out, json.dumps(rec, indent=2, sort_keys=True) + "\n")
    short = "defaults" if "repo.anaconda.com" in channel else channel.rstrip("/").rsplit("/", 1)[-1]
    return f"{short}/{subdir}::{name}-{version}-{build}"


def _conda_python_env(
    prefix: Path,
    version: str,
    exe: Path,
    build: str,
    channel: str,
    history_cmd: str,
    extra_history: str = "",
    pkgs_dir: Path | None = None,
) -> str:
    minor = ".".join(version.split(".")[:2])
    _interpreter_farm(prefix, version, exe)
    (prefix / "conda-meta").mkdir(parents=True, exist_ok=True)
    spec = _conda_record(
        prefix,
        "python",
        version,
        build,
        channel,
        [f"bin/python{minor}", "bin/python", "bin/python3", f"lib/python{minor}/os.py"],
        ["libffi >=3.4", "openssl >=3.0", "tzdata"],
        requested=f"python={minor}",
        pkgs_dir=pkgs_dir,
    )
    _write(
        prefix / "conda-meta" / "history",
        "==> 2024-03-04 10:15:22 <==\n"
        f"# cmd: {history_cmd}\n"
        "# conda version: 23.11.0\n"
        f"+{spec}\n{extra_history}"
        f"# update specs: ['python={minor}']\n",
    )
    return minor


def _fake_dist_info(site: Path, name: str, version: str, installer: str) -> None:
    d = site / f"{name}-{version}.dist-info"
    _write(d / "METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    _write(d / "INSTALLER", installer + "\n")
    _write(d / "RECORD", f"{name}-{version}.dist-info/METADATA,,\n")


# --------------------------------------------------------------------------
# the builders; each returns a list of expected entries


class _Builder:
    def __init__(self, base: Path, tools_bin: Path, pythons: dict[str, tuple]):
        self.base = base
        self.home = base / "home"
        self.tools = tools_bin
        self.py = pythons
        self.skipped: list[str] = []
        self.aliases: dict[str, str] = {}
        self.hazards: dict[str, str] = {}
        self.ipykernel_method: str | None = None
        h = self.home
        self.env = {
            "HOME": str(h),
            "XDG_DATA_HOME": str(h / ".local/share"),
            "XDG_CACHE_HOME": str(h / ".cache"),
            "XDG_CONFIG_HOME": str(h / ".config"),
            "XDG_STATE_HOME": str(h / ".local/state"),
            "PATH": f"{tools_bin}:{SYSTEM_PATH}",
            "LANG": "C.UTF-8",
            "USER": os.environ.get("USER", "root"),
            # the fake pyenv root made below, so the real one is never scanned
            "PYENV_ROOT": str(h / ".pyenv"),
            # tool locations, all equal to the tools' own defaults under HOME.
            # WORKON_HOME is deliberately unset: pipenv defaults to
            # $XDG_DATA_HOME/virtualenvs, virtualenvwrapper to ~/.virtualenvs.
            "POETRY_CACHE_DIR": str(h / ".cache/pypoetry"),
            "POETRY_CONFIG_DIR": str(h / ".config/pypoetry"),
            "HATCH_DATA_DIR": str(h / ".local/share/hatch"),
            "UV_CACHE_DIR": str(h / ".cache/uv"),
            "UV_PYTHON_INSTALL_DIR": str(h / ".local/share/uv/python"),
            "PIP_CONFIG_FILE": os.devnull,
        }
        self.build_env = dict(self.env)
        self.build_env.update(
            {
                "PIP_DISABLE_PIP_VERSION_CHECK": "1",
                "PIP_NO_INPUT": "1",
                "PIP_CACHE_DIR": str(h / ".cache/pip"),
                "VIRTUALENV_NO_PERIODIC_UPDATE": "1",
                "PDM_CHECK_UPDATE": "false",
                "PDM_NON_INTERACTIVE": "1",
                "PIPENV_YES": "1",
                "PIPENV_NOSPIN": "1",
                "PIPENV_IGNORE_VIRTUALENVS": "1",
                "PIPENV_VERBOSITY": "-1",
                "UV_PYTHON_DOWNLOADS": "never",
                "UV_NO_PROGRESS": "1",
                "UV_OFFLINE": "1",
                "NO_COLOR": "1",
                "TERM": "dumb",
            }
        )
        for k in _PASSTHROUGH:
            if k in os.environ:
                self.build_env[k] = os.environ[k]

    # -- utilities
    def tool(self, name: str) -> Path | None:
        p = self.tools / name
        return p if p.exists() else None

    def need(self, minor: str, what: str):
        if minor not in self.py:
            self.skipped.append(f"{what}: no pyenv Python {minor}")
            return None
        return self.py[minor]

    def project(self, name: str, files: dict[str, str] | None = None) -> Path:
        d = self.home / "projects" / name
        d.mkdir(parents=True, exist_ok=True)
        for fname, text in (files or {}).items():
            _write(d / fname, text)
        return d

    # -- python -m venv in three projects; the 3.11 one gets ipykernel
    def venvs(self) -> list[dict]:
        out = []
        for minor, pname in (("3.8", "legacy38"), ("3.11", "webapp"), ("3.13", "newpy")):
            got = self.need(minor, f"venv {pname}")
            if not got:
                continue
            version, exe = got
            proj = self.project(pname, {"requirements.txt": "requests\n"})
            prefix = proj / ".venv"
            _run([exe, "-m", "venv", "--without-pip", prefix], self.build_env)
            has_ipk = False
            if pname == "webapp":
                has_ipk = self._ipykernel(prefix, minor)
            out.append(_entry(prefix, version, ["venv"], pname, proj, has_ipykernel=has_ipk))
        return out

    def _ipykernel(self, prefix: Path, minor: str) -> bool:
        """Real `uv pip install ipykernel` from PyPI (~2 s, needs the registry);
        if that fails, copy the real ipykernel dist-info + package from the tools
        venv if it has one; last resort a minimal dist-info."""
        env = dict(self.build_env)
        env.pop("UV_OFFLINE")
        site = prefix / "lib" / f"python{minor}" / "site-packages"
        try:
            _run(
                [self.tools / "uv", "pip", "install", "--python", prefix / "bin" / "python", "ipykernel"],
                env,
                timeout=60,
            )
            self.ipykernel_method = "uv pip install ipykernel (PyPI)"
            return True
        except BuildError:
            pass
        tools_site = Path(
            subprocess.run(
                [str(self.tools / "python"), "-c", "import sysconfig;print(sysconfig.get_path('purelib'))"],
                capture_output=True,
                text=True,
            ).stdout.strip()
            or "/nonexistent"
        )
        dists = sorted(tools_site.glob("ipykernel-*.dist-info"))
        if dists:
            shutil.copytree(dists[-1], site / dists[-1].name)
            if (tools_site / "ipykernel").is_dir():
                shutil.copytree(tools_site / "ipykernel", site / "ipykernel")
            self.ipykernel_method = f"copied {dists[-1].name} from the tools venv"
        else:
            _fake_dist_info(site, "ipykernel", "6.29.5", "pip")
            self.ipykernel_method = "minimal fake ipykernel dist-info (offline)"
        return True

    # -- virtualenv, in ~/projects/api/venv
    def virtualenv(self) -> list[dict]:
        got = self.need("3.10", "virtualenv")
        if not got or not self.tool("virtualenv"):
            return []
        version, exe = got
        proj = self.project("api", {"requirements.txt": "flask\n"})
        _run([self.tools / "virtualenv", "-p", exe, proj / "venv"], self.build_env)
        return [_entry(proj / "venv", version, ["virtualenv"], "api", proj)]

    # -- virtualenvwrapper: mkvirtualenv -a <project> into ~/.virtualenvs
    def virtualenvwrapper(self) -> list[dict]:
        got = self.need("3.12", "virtualenvwrapper")
        script = self.tool("virtualenvwrapper.sh")
        if not got or not script:
            if not script:
                self.skipped.append("virtualenvwrapper: virtualenvwrapper.sh not in tools_bin")
            return []
        version, exe = got
        proj = self.project("wrapped", {"README.md": "worked on with workon\n"})
        env = dict(
            self.build_env,
            WORKON_HOME=str(self.home / ".virtualenvs"),
            VIRTUALENVWRAPPER_PYTHON=str(self.tools / "python"),
            VIRTUALENVWRAPPER_VIRTUALENV=str(self.tools / "virtualenv"),
        )
        _run(["bash", "-c", f'source "{script}" && mkvirtualenv -p "{exe}" -a "{proj}" kk-wrapped'], env)
        prefix = _must_exist(self.home / ".virtualenvs" / "kk-wrapped", "virtualenvwrapper")
        return [_entry(prefix, version, ["virtualenvwrapper", "virtualenv"], "kk-wrapped", proj)]

    # -- uv: `uv sync` in a project with no deps, and a standalone `uv venv`
    def uv(self) -> list[dict]:
        out = []
        if not self.tool("uv"):
            self.skipped.append("uv: not in tools_bin")
            return out
        got = self.need("3.12", "uv sync")
        if got:
            version, exe = got
            proj = self.project(
                "uv-app",
                {
                    "pyproject.toml": '[project]\nname = "uv-app"\nversion = "0.1.0"\n'
                    'requires-python = ">=3.8"\ndependencies = []\n'
                },
            )
            _run([self.tools / "uv", "sync", "--python", exe], self.build_env, cwd=proj)
            out.append(_entry(proj / ".venv", version, ["uv"], "uv-app", proj))
        got = self.need("3.9", "uv venv")
        if got:
            version, exe = got
            proj = self.project("notebooks", {"analysis.py": "print('hi')\n"})
            _run([self.tools / "uv", "venv", "--python", exe, ".venv"], self.build_env, cwd=proj)
            out.append(_entry(proj / ".venv", version, ["uv"], "notebooks", proj))
        return out

    # -- poetry: `poetry env use` -> $POETRY_CACHE_DIR/virtualenvs/<name>-<hash>-pyX.Y
    def poetry(self) -> list[dict]:
        got = self.need("3.12", "poetry")
        if not got or not self.tool("poetry"):
            return []
        version, exe = got
        proj = self.project(
            "My_Cool.Project",
            {
                "pyproject.toml": '[project]\nname = "My_Cool.Project"\nversion = "0.1.0"\n'
                'requires-python = ">=3.8"\ndependencies = []\n\n'
                "[tool.poetry]\npackage-mode = false\n"
            },
        )
        _run([self.tools / "poetry", "-n", "env", "use", exe], self.build_env, cwd=proj)
        name = poetry_env_name("My_Cool.Project", proj, "3.12")
        prefix = _must_exist(self.home / ".cache/pypoetry/virtualenvs" / name, "poetry")
        # The project part of <name>-<hash8>-pyX.Y; the hash itself may hold "-", so cut by length.
        project_part = name[: -len("-XXXXXXXX-py3.12")]
        return [_entry(prefix, version, ["poetry", "virtualenv"], project_part, proj)]

    # -- pipenv: `pipenv --python X` -> $XDG_DATA_HOME/virtualenvs/<dir>-<hash>
    def pipenv(self) -> list[dict]:
        got = self.need("3.10", "pipenv")
        if not got or not self.tool("pipenv"):
            return []
        version, exe = got
        proj = self.project("Pip Env_Proj")  # the space is on purpose
        _run([self.tools / "pipenv", "--python", exe], self.build_env, cwd=proj)
        name = pipenv_env_name(proj)
        prefix = _must_exist(self.home / ".local/share/virtualenvs" / name, "pipenv")
        return [_entry(prefix, version, ["pipenv", "virtualenv"], proj.name, proj)]

    # -- hatch: skip-install default env -> <data>/env/virtual/<name>/<id>/<name>
    def hatch(self) -> list[dict]:
        got = self.need("3.9", "hatch")
        if not got or not self.tool("hatch"):
            return []
        version, exe = got
        proj = self.project(
            "Hatch_Proj",
            {
                "pyproject.toml": '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n\n'
                '[project]\nname = "Hatch_Proj"\nversion = "0.1.0"\n\n'
                "[tool.hatch.envs.default]\nskip-install = true\ndependencies = []\n"
            },
        )
        _run([self.tools / "hatch", "env", "create"], dict(self.build_env, HATCH_PYTHON=str(exe)), cwd=proj)
        # the default env's folder is named after the (canonical) project name
        prefix = _must_exist(
            self.home / ".local/share/hatch/env/virtual/hatch-proj" / hatch_project_id(proj) / "hatch-proj", "hatch"
        )
        return [_entry(prefix, version, ["hatch", "virtualenv"], "hatch-proj", proj)]

    # -- pdm: `pdm use -f` makes the in-project .venv; `pdm venv create` (not
    #    in-project) -> <data>/pdm/venvs/<dir>-<md5 id>-<X.Y>
    def pdm(self) -> list[dict]:
        if not self.tool("pdm"):
            return []
        out = []
        proj = self.project(
            "pdm-app",
            {
                "pyproject.toml": '[project]\nname = "pdm-app"\nversion = "0.1.0"\n'
                'requires-python = ">=3.8"\ndependencies = []\n\n'
                "[tool.pdm]\ndistribution = false\n"
            },
        )
        got = self.need("3.12", "pdm in-project")
        if got:
            version, exe = got
            _run([self.tools / "pdm", "use", "-f", exe], self.build_env, cwd=proj)
            out.append(
                _entry(_must_exist(proj / ".venv", "pdm in-project"), version, ["pdm", "virtualenv"], "pdm-app", proj)
            )
        got = self.need("3.10", "pdm venv create")
        if got:
            version, exe = got
            _run(
                [self.tools / "pdm", "venv", "create", exe], dict(self.build_env, PDM_VENV_IN_PROJECT="false"), cwd=proj
            )
            name = pdm_venv_prefix(proj) + "3.10"
            prefix = _must_exist(self.home / ".local/share/pdm/venvs" / name, "pdm venv create")
            out.append(_entry(prefix, version, ["pdm", "virtualenv"], proj.name, proj))
        return out

    # -- pyenv root + pyenv-virtualenv, by hand (running pyenv-virtualenv
    #    would write into the real pyenv root).  Mirrors:
    #      $PYENV_ROOT/versions/3.11.7/                 an installed version
    #      $PYENV_ROOT/versions/3.11.7/envs/<name>/     `pyenv virtualenv 3.11.7 <name>`
    #                                                   (python -m venv; pip via ensurepip
    #                                                   -- skipped here for speed)
    #      $PYENV_ROOT/versions/<name> -> $PYENV_ROOT/versions/3.11.7/envs/<name>
    #                                                   (absolute symlink, `ln -fsn`)
    #      envs/<name>/bin/python3.11-config -> <version>/bin/python3.11-config,
    #      envs/<name>/bin/pydoc (#!<env>/bin/python script) -- both added by the plugin
    def pyenv(self) -> list[dict]:
        got = self.need("3.11", "pyenv")
        if not got:
            return []
        version, exe = got
        root = self.home / ".pyenv"
        vdir = root / "versions" / version
        _interpreter_farm(vdir, version, exe)
        cfg = exe.parent / "python3.11-config"
        if cfg.exists():
            os.symlink(cfg, vdir / "bin" / "python3.11-config")
        _write(root / "version", "system\n")
        out = [_entry(vdir, version, ["pyenv"], version, None)]
        envdir = vdir / "envs" / "kk-pyenv-env"
        _run([vdir / "bin" / "python3.11", "-m", "venv", "--without-pip", envdir], self.build_env)
        if (vdir / "bin" / "python3.11-config").exists():
            os.symlink(vdir / "bin" / "python3.11-config", envdir / "bin" / "python3.11-config")
        pydoc = _write(
            envdir / "bin" / "pydoc",
            f"#!{envdir}/bin/python\nimport pydoc\nif __name__ == '__main__':\n      pydoc.cli()\n",
        )
        pydoc.chmod(0o755)
        compat = root / "versions" / "kk-pyenv-env"
        os.symlink(envdir, compat)
        self.aliases[str(compat)] = _real(envdir)
        out.append(_entry(envdir, version, ["pyenv-virtualenv", "venv"], "kk-pyenv-env", None))
        return out

    # -- conda, by hand.  Mirrors a Miniconda install (defaults channel):
    #      ~/miniconda3/conda-meta/{history, python-3.11.7-h955ad1f_0.json, conda-*.json}
    #      ~/miniconda3/{bin/conda, condabin/conda, etc/profile.d/conda.sh, pkgs/, envs/}
    #      ~/miniconda3/envs/<name>/conda-meta/...    `conda create -n <name>`
    #      <anywhere>/conda-meta/...                   `conda create -p <path>`
    #      ~/.conda/environments.txt                   one absolute prefix per line,
    #                                                  written by conda on create
    #                                                  (may hold stale entries)
    #      ~/.condarc                                  envs_dirs / channels
    #    Interpreters: copied pyenv binary + stdlib symlinks (see _interpreter_farm).
    def conda(self) -> list[dict]:
        out = []
        root = self.home / "miniconda3"
        defaults = "https://repo.anaconda.com/pkgs/main"
        registered = []
        got = self.need("3.11", "conda base")
        if got:
            version, exe = got
            _conda_python_env(
                root,
                version,
                exe,
                "h955ad1f_0",
                defaults,
                f"constructor {root} --install",
                extra_history="+defaults/linux-64::conda-23.11.0-py311h06a4308_0\n",
                pkgs_dir=root / "pkgs",
            )
            _conda_record(
                root,
                "conda",
                "23.11.0",
                "py311h06a4308_0",
                defaults,
                [
                    "bin/conda",
                    "condabin/conda",
                    "etc/profile.d/conda.sh",
                    "lib/python3.11/site-packages/conda/__init__.py",
                ],
                ["python >=3.11,<3.12.0a0"],
                pkgs_dir=root / "pkgs",
            )
            site = root / "lib/python3.11/site-packages"
            _write(site / "conda/__init__.py", '__version__ = "23.11.0"\n')
            _write(
                root / "bin/conda", f"#!{root}/bin/python\nimport sys\nfrom conda.cli import main\nsys.exit(main())\n"
            ).chmod(0o755)
            _write(
                root / "condabin/conda",
                f"#!{root}/bin/python\nimport sys\nfrom conda.cli import main\nsys.exit(main())\n",
            ).chmod(0o755)
            _write(
                root / "etc/profile.d/conda.sh",
                f"export CONDA_EXE='{root}/bin/conda'\nexport _CE_M=''\nexport CONDA_PYTHON_EXE='{root}/bin/python'\n",
            )
            _write(root / "envs/.conda_envs_dir_test", "")
            _write(root / "pkgs/urls.txt", "")
            registered.append(root)
            out.append(_entry(root, version, ["conda"], "base", None))
        got = self.need("3.12", "conda named env")
        if got:
            version, exe = got
            prefix = root / "envs" / "dsenv"
            ipk = _conda_record(
                prefix,
                "ipykernel",
                "6.28.0",
                "py312h06a4308_0",
                defaults,
                ["lib/python3.12/site-packages/ipykernel/__init__.py", "share/jupyter/kernels/python3/kernel.json"],
                ["python >=3.12,<3.13.0a0", "jupyter_client >=8", "pyzmq >=24"],
                requested="ipykernel",
                pkgs_dir=root / "pkgs",
            )
            _conda_python_env(
                prefix,
                version,
                exe,
                "h996f2a0_0",
                defaults,
                f"{root}/bin/conda create -n dsenv python=3.12 ipykernel",
                extra_history=f"+{ipk}\n",
                pkgs_dir=root / "pkgs",
            )
            site = prefix / "lib/python3.12/site-packages"
            # conda's ipykernel package ships a pip-style dist-info (INSTALLER: conda),
            # the package dir and the kernel spec; the module here is a stub.
            _fake_dist_info(site, "ipykernel", "6.28.0", "conda")
            _write(site / "ipykernel/__init__.py", '__version__ = "6.28.0"\n')
            _write(
                prefix / "share/jupyter/kernels/python3/kernel.json",
                json.dumps(
                    {
                        "argv": ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                        "display_name": "Python 3 (ipykernel)",
                        "language": "python",
                        "metadata": {"debugger": True},
                    },
                    indent=1,
                )
                + "\n",
            )
            registered.append(prefix)
            out.append(_entry(prefix, version, ["conda"], "dsenv", None, has_ipykernel=True))
        got = self.need("3.10", "conda -p env")
        if got:
            version, exe = got
            prefix = self.home / "work" / "conda-envs" / "special"
            _conda_python_env(
                prefix,
                version,
                exe,
                "h955ad1f_0",
                defaults,
                f"{root}/bin/conda create -p {prefix} python=3.10",
                pkgs_dir=root / "pkgs",
            )
            registered.append(prefix)
            out.append(_entry(prefix, version, ["conda"], "special", None))
        stale = root / "envs" / "deleted-env"
        self.hazards["stale environments.txt entry"] = str(stale)
        _write(self.home / ".conda/environments.txt", "".join(f"{p}\n" for p in [*registered, stale]))
        _write(
            self.home / ".condarc",
            f"channels:\n  - defaults\nenvs_dirs:\n  - {root}/envs\n  - ~/.conda/envs\nauto_activate_base: false\n",
        )
        return out

    # -- pixi, by hand.  Mirrors `pixi install` in a workspace:
    #      <ws>/pixi.toml, <ws>/pixi.lock, <ws>/.pixi/.gitignore ("*")
    #      <ws>/.pixi/envs/default/conda-meta/history  ("// not relevant for pixi
    #                                                    but for `conda run -p`")
    #      <ws>/.pixi/envs/default/conda-meta/pixi     JSON: manifest_path,
    #          environment_name, pixi_version, environment_lock_file_hash
    #      <ws>/.pixi/envs/default/conda-meta/python-3.12.1-hab00c5b_1_cpython.json
    def pixi(self) -> list[dict]:
        got = self.need("3.12", "pixi")
        if not got:
            return []
        version, exe = got
        proj = self.project(
            "pixi-app",
            {
                "pixi.toml": '[workspace]\nname = "pixi-app"\nchannels = ["conda-forge"]\n'
                'platforms = ["linux-64"]\n\n[dependencies]\npython = "3.12.*"\n',
                "pixi.lock": "version: 6\nenvironments:\n  default:\n    channels:\n"
                "    - url: https://conda.anaconda.org/conda-forge/\n    packages:\n"
                "      linux-64:\n      - conda: https://conda.anaconda.org/conda-forge/"
                "linux-64/python-3.12.1-hab00c5b_1_cpython.conda\n",
            },
        )
        _write(proj / ".pixi/.gitignore", "*\n")
        prefix = proj / ".pixi" / "envs" / "default"
        minor = "3.12"
        _interpreter_farm(prefix, version, exe)
        _conda_record(
            prefix,
            "python",
            version,
            "hab00c5b_1_cpython",
            "https://conda.anaconda.org/conda-forge",
            [f"bin/python{minor}", "bin/python", "bin/python3"],
            ["libffi >=3.4,<4.0a0", "openssl >=3.2.0,<4.0a0", "tzdata"],
            pkgs_dir=self.home / ".cache/rattler/cache/pkgs",
        )
        _write(prefix / "conda-meta" / "history", "// not relevant for pixi but for `conda run -p`")
        _write(
            prefix / "conda-meta" / "pixi",
            json.dumps(
                {
                    "manifest_path": str(proj / "pixi.toml"),
                    "environment_name": "default",
                    "pixi_version": "0.40.0",
                    "environment_lock_file_hash": "4f36ee620f10329d",
                }
            )
            + "\n",
        )
        return [_entry(prefix, version, ["pixi", "conda"], proj.name, proj)]

    # -- broken things
    def broken(self) -> list[dict]:
        out = []
        got = self.need("3.12", "broken venv")
        if got:
            # a real venv whose base interpreter was uninstalled afterwards:
            # bin/python -> python3.12 -> <missing>/bin/python3.12 (dangles)
            version, exe = got
            proj = self.project("oldtool", {"requirements.txt": "click\n"})
            prefix = proj / ".venv"
            _run([exe, "-m", "venv", "--without-pip", prefix], self.build_env)
            gone = self.base / "uninstalled-pythons" / version
            link = prefix / "bin" / "python3.12"
            link.unlink()
            os.symlink(gone / "bin" / "python3.12", link)
            cfg = prefix / "pyvenv.cfg"
            cfg.write_text(cfg.read_text().replace(str(exe.parent.parent), str(gone)))
            out.append(
                _entry(
                    prefix,
                    version,
                    ["venv"],
                    "oldtool",
                    proj,
                    healthy=False,
                    problems_contains="interpreter link dangles",
                )
            )
        # a folder nobody may read (root still can: tests as root see inside)
        locked = self.project("locked", {"notes.txt": "private\n"})
        locked.chmod(0)
        self.hazards["unreadable folder"] = str(locked)
        # a symlink loop: ~/projects/loop/self -> ..  (reaches ~/projects again)
        loop = self.project("loop")
        os.symlink("..", loop / "self")
        self.hazards["symlink loop"] = str(loop / "self")
        return out


def build_real_home(base: Path, tools_bin: Path, *, workers: int = 8) -> RealHome:
    """Create base/home with real environments; see the module docstring."""
    t0 = time.monotonic()
    base = Path(os.path.realpath(base))
    tools_bin = Path(tools_bin)
    base.mkdir(parents=True, exist_ok=True)
    if (base / "home").exists():
        raise BuildError(f"{base / 'home'} already exists; give a fresh base")
    b = _Builder(base, tools_bin, find_pyenv_pythons())
    for d in (".local/share", ".cache", ".config", ".local/state", "projects"):
        (b.home / d).mkdir(parents=True, exist_ok=True)

    tasks: dict[str, Callable[[], list[dict]]] = {
        "venv": b.venvs,
        "virtualenv": b.virtualenv,
        "virtualenvwrapper": b.virtualenvwrapper,
        "uv": b.uv,
        "poetry": b.poetry,
        "pipenv": b.pipenv,
        "hatch": b.hatch,
        "pdm": b.pdm,
        "pyenv": b.pyenv,
        "conda": b.conda,
        "pixi": b.pixi,
        "broken": b.broken,
    }
    timings: dict[str, float] = {}
    results: dict[str, list[dict]] = {}

    def timed(name):
        s = time.monotonic()
        try:
            return tasks[name]()
        finally:
            timings[name] = round(time.monotonic() - s, 2)

    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        futs = {pool.submit(timed, n): n for n in tasks}
        errors = []
        for f in concurrent.futures.as_completed(futs):
            try:
                results[futs[f]] = f.result()
            except Exception as exc:  # collect all, report together
                errors.append(f"[{futs[f]}] {exc}")
    if errors:
        raise BuildError("\n\n".join(errors))

    expected = [e for n in tasks for e in results[n]]
    return RealHome(
        base=base,
        home=b.home,
        env=b.env,
        expected=expected,
        aliases=b.aliases,
        hazards=b.hazards,
        skipped=b.skipped,
        ipykernel_method=b.ipykernel_method,
        build_seconds=round(time.monotonic() - t0, 2),
        timings=timings,
        build_env=b.build_env,
    )


def cleanup_real_home(rh_or_base) -> None:
    """Undo the chmod 000 (matters for non-root) and remove the tree."""
    base = Path(rh_or_base.base if isinstance(rh_or_base, RealHome) else rh_or_base)
    for dirpath, dirnames, _ in os.walk(base):
        for d in dirnames:
            p = os.path.join(dirpath, d)
            if not os.path.islink(p):
                with contextlib.suppress(OSError):
                    os.chmod(p, stat.S_IRWXU)
    shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    out = Path(sys.argv[1])
    tb = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(sys.executable).parent
    rh = build_real_home(out, tb)
    print(
        json.dumps(
            {
                "home": str(rh.home),
                "build_seconds": rh.build_seconds,
                "timings": rh.timings,
                "skipped": rh.skipped,
                "ipykernel_method": rh.ipykernel_method,
                "aliases": rh.aliases,
                "hazards": rh.hazards,
                "env": rh.env,
                "expected": rh.expected,
            },
            indent=1,
        )
    )
