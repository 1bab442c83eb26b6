"""A farm of Python environments on disk, written the way the real tools write them.

`make_farm(root, n)` lays out ``root/home`` as the HOME of a busy Python user
holding ``n`` environments spread over the layouts of venv, virtualenv, uv,
poetry, pipenv, virtualenvwrapper, conda, pyenv, pyenv-virtualenv, hatch, pdm
and pixi.  No tool is run: every file is written directly (N = 10,000 builds in
seconds), mirroring what the tool itself leaves behind (pyvenv.cfg keys, the
interpreter symlink chains, conda-meta, the hashed folder names, project
files).  Interpreter symlinks point at the real pyenv Pythons of this machine
(``/root/.pyenv/versions/X.Y.Z``, or ``KK_BENCH_PYENV``), so the environments
run.  A few are broken on purpose (dangling ``bin/python``).

``root/manifest.json`` lists every environment: its prefix (realpath), its
interpreter, the kind kernelkeeper should report, and the layout it came from.

Run ``python bench/farm.py /tmp/kk-farm-100 100`` to build one by hand.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import random
import re
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

REAL_PYENV = Path(os.environ.get("KK_BENCH_PYENV", "/root/.pyenv/versions"))

#: Where the user keeps projects (the folders kernelkeeper scans), with weights.
CODE_FOLDERS: tuple[tuple[str, float], ...] = (
    ("projects", 0.50),
    ("code", 0.14),
    ("src", 0.08),
    ("dev", 0.07),
    ("work", 0.08),
    ("repos", 0.05),
    ("git", 0.05),
    ("workspace", 0.03),
)

#: Minor versions and how often people pick them for a new environment.
VERSION_WEIGHTS: dict[str, float] = {
    "3.12": 0.26,
    "3.11": 0.26,
    "3.10": 0.14,
    "3.13": 0.12,
    "3.9": 0.10,
    "3.8": 0.07,
    "3.7": 0.03,
    "3.6": 0.02,
}

#: Layout name -> (share of N, expected kernelkeeper kind).  Fixed-count layouts
#: (conda base, pyenv versions, uv pythons) are taken off N first.
LAYOUTS: dict[str, tuple[float, str]] = {
    "venv-project": (0.13, "venv"),  # python -m venv .venv|venv|env in a project
    "uv-project": (0.11, "uv"),  # uv sync: .venv + uv.lock
    "poetry-cache": (0.12, "poetry"),  # ~/.cache/pypoetry/virtualenvs/<name>-<hash8>-pyX.Y
    "poetry-in-project": (0.03, "poetry"),  # virtualenvs.in-project = true
    "pipenv": (0.08, "pipenv"),  # ~/.local/share/virtualenvs/<dir>-<hash8>
    "virtualenvwrapper": (0.10, "virtualenvwrapper"),  # ~/.virtualenvs/<name>
    "standalone": (0.06, "?"),  # ~/venvs|~/.venvs|~/envs/<name> by venv, virtualenv or uv
    "conda-env": (0.08, "conda"),  # ~/miniconda3/envs/<name> and ~/.conda/envs/<name>
    "pyenv-virtualenv": (0.06, "pyenv-virtualenv"),  # ~/.pyenv/versions/X.Y.Z/envs/<name>
    "hatch": (0.08, "hatch"),  # ~/.local/share/hatch/env/virtual/<project>/<hash8>/<env>
    "pdm-venvs": (0.04, "pdm"),  # ~/.local/share/pdm/venvs/<project>-<hash8>-<X.Y>
    "pdm-in-project": (0.03, "pdm"),  # pdm's default: .venv in the project
    "pixi": (0.04, "pixi"),  # <project>/.pixi/envs/default
}

PACKAGES: tuple[tuple[str, str], ...] = (
    ("requests", "2.32.3"),
    ("numpy", "1.26.4"),
    ("pandas", "2.2.2"),
    ("six", "1.16.0"),
    ("urllib3", "2.2.2"),
    ("certifi", "2024.7.4"),
    ("idna", "3.7"),
    ("charset_normalizer", "3.3.2"),
    ("attrs", "23.2.0"),
    ("click", "8.1.7"),
    ("rich", "13.7.1"),
    ("pydantic", "2.8.2"),
    ("packaging", "24.1"),
    ("pytest", "8.3.2"),
    ("typing_extensions", "4.12.2"),
)
IPYKERNEL_VERSION = "6.29.5"

ADJECTIVES: tuple[str, ...] = (
    "amber", "agile", "bold", "brave", "calm", "clever", "cosmic", "crisp", "dusty",
    "eager", "fancy", "fuzzy", "gentle", "giant", "happy", "hidden", "icy", "jolly", "keen",
    "lazy", "lucky", "mellow", "misty", "noble", "odd", "proud", "quiet", "rapid", "rusty",
    "shiny", "silent", "sleepy", "snowy", "solar", "spicy", "steady", "sunny", "swift",
    "tidy", "tiny", "vivid", "wild", "witty", "young",
)
NOUNS: tuple[str, ...] = (
    "api", "badger", "bot", "cache", "cli", "crawler", "dash", "data", "dragon", "engine",
    "falcon", "feed", "forge", "gadget", "graph", "harbor", "hub", "ingest", "kernel",
    "lab", "ledger", "lens", "map", "model", "monitor", "notebook", "otter", "parser",
    "pipeline", "portal", "quasar", "report", "robot", "scraper", "server", "shop",
    "sketch", "stats", "tools", "tracker", "viz", "web", "widget", "worker",
)


@dataclass
class EnvEntry:
    """One environment of the farm and what discovery should say about it."""

    prefix: str  # realpath of the environment's prefix
    python: str  # the interpreter inside it (not resolved)
    kind: str  # the kind kernelkeeper should report first
    layout: str  # which farm layout wrote it (see LAYOUTS)
    version: str  # X.Y.Z
    name: str
    has_ipykernel: bool
    broken: bool = False
    project: str | None = None  # the project folder it belongs to, if any
    note: str = ""


@dataclass
class Manifest:
    root: str
    home: str
    n: int
    seed: int
    build_seconds: float
    envs: list[EnvEntry] = field(default_factory=list)

    def save(self) -> Path:
        path = Path(self.root) / "manifest.json"
        data = asdict(self)
        path.write_text(json.dumps(data, indent=1) + "\n")
        return path

    @classmethod
    def load(cls, root: Path) -> Manifest:
        data = json.loads((root / "manifest.json").read_text())
        envs = [EnvEntry(**e) for e in data.pop("envs")]
        return cls(envs=envs, **data)

    def by_prefix(self) -> dict[str, EnvEntry]:
        return {e.prefix: e for e in self.envs}


# --------------------------------------------------------------------------- helpers


# Building is two steps: the builder decides everything (one seeded RNG, one process)
# and records file-system operations; `_execute` then replays them on a few worker
# processes, since creating ~50 inodes per environment is what takes the time.
Op = tuple[str, str, str, int]  # (kind "w"|"l"|"d", path, text or link target, mode)
_ops: list[Op] = []


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    _ops.append(("w", str(path), text, mode))


def _link(path: Path, target: str | Path) -> None:
    _ops.append(("l", str(path), str(target), 0))


def _mkdir(path: Path) -> None:
    _ops.append(("d", str(path), "", 0))


def _run_ops(start: int, stop: int) -> int:
    made: set[str] = set()
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    for kind, path, arg, mode in _ops[start:stop]:
        parent = path.rpartition("/")[0]
        if parent not in made:
            os.makedirs(parent, exist_ok=True)
            made.add(parent)
        if kind == "w":
            fd = os.open(path, flags, mode)
            os.write(fd, arg.encode())
            os.close(fd)
        elif kind == "l":
            os.symlink(arg, path)
        else:
            os.makedirs(path, exist_ok=True)
            made.add(path)
    return stop - start


def _execute(workers: int) -> None:
    """Replay the recorded operations, split in contiguous chunks over forked workers."""
    total = len(_ops)
    if workers <= 1 or total < 5000:
        _run_ops(0, total)
        return
    import multiprocessing

    step = -(-total // workers)
    bounds = [(i, min(i + step, total)) for i in range(0, total, step)]
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        pool.starmap(_run_ops, bounds)


def _b64_8(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).decode()[:8]


def poetry_env_name(name: str, project_dir: Path, minor: str) -> str:
    """poetry's EnvManager.generate_env_name + the -pyX.Y suffix."""
    sanitized = re.sub(r'[ $`!*@"\\\r\n\t]', "_", name.lower())[:42]
    real = os.path.normcase(os.path.realpath(project_dir))
    return f"{sanitized}-{_b64_8(hashlib.sha256(real.encode()).digest())}-py{minor}"


def pipenv_env_name(project_dir: Path) -> str:
    """pipenv's Project.virtualenv_name: dir name + hash of the Pipfile's path."""
    sanitized = re.sub(r'[ &$`!*@"()\[\]\\\r\n\t]', "_", project_dir.name)[0:42]
    pipfile = str(project_dir / "Pipfile")
    digest = hashlib.sha256(pipfile.encode()).digest()[:6]
    return f"{sanitized}-{base64.urlsafe_b64encode(digest).decode()}"


def hatch_root_hash(project_dir: Path) -> str:
    return _b64_8(hashlib.sha256(str(project_dir).encode("utf-8")).digest())


def pdm_env_prefix(project_dir: Path) -> str:
    digest = hashlib.md5(project_dir.as_posix().encode()).digest()
    return f"{project_dir.name}-{_b64_8(digest)}-"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def real_pythons() -> dict[str, str]:
    """minor -> full version of the pyenv Pythons on this machine."""
    found: dict[str, str] = {}
    if REAL_PYENV.is_dir():
        for entry in sorted(REAL_PYENV.iterdir()):
            m = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", entry.name)
            if m and (entry / "bin" / f"python{m[1]}.{m[2]}").exists():
                found[f"{m[1]}.{m[2]}"] = entry.name
    if not found:
        raise SystemExit(f"no pyenv Pythons under {REAL_PYENV} (set KK_BENCH_PYENV)")
    return found


# --------------------------------------------------------------------------- builder


class FarmBuilder:
    def __init__(self, root: Path, n: int, seed: int) -> None:
        self.root = root
        self.home = root / "home"
        self.n = n
        self.rng = random.Random(seed)
        self.pythons = real_pythons()
        self.minors = [m for m in VERSION_WEIGHTS if m in self.pythons]
        self.weights = [VERSION_WEIGHTS[m] for m in self.minors]
        self.envs: list[EnvEntry] = []
        self.names: set[str] = set()
        self.projects: set[Path] = set()
        self.counter = 0
        self.target = n
        self.conda_envs: list[Path] = []
        self.tool_python = self.home / ".local/share/pipx/venvs/virtualenv/bin/python"
        self.poetry_envs: list[str] = []
        self.stamp = 1_700_000_000  # fixed epoch for conda history lines

    # ---- choices

    def pick_minor(self) -> str:
        return self.rng.choices(self.minors, self.weights)[0]

    def unique_name(self, style: str = "-") -> str:
        while True:
            name = f"{self.rng.choice(ADJECTIVES)}{style}{self.rng.choice(NOUNS)}"
            if self.rng.random() < 0.5 or name in self.names:
                self.counter += 1
                name = f"{name}{style}{self.counter}"
            if name not in self.names:
                self.names.add(name)
                return name

    def base_python(self, minor: str) -> Path:
        """The real interpreter a tool would have been pointed at."""
        return REAL_PYENV / self.pythons[minor] / "bin" / f"python{minor}"

    def farm_pyenv_python(self, minor: str) -> Path:
        return self.home / ".pyenv" / "versions" / self.pythons[minor] / "bin" / f"python{minor}"

    # ---- projects

    def new_project(self, tool: str, name: str | None = None) -> tuple[Path, str]:
        """A project folder under one of the code folders; returns (dir, project name)."""
        folders = [f for f, _ in CODE_FOLDERS]
        folder = self.rng.choices(folders, [w for _, w in CODE_FOLDERS])[0]
        base = self.home / folder
        r = self.rng.random()
        if r < 0.22:
            base = base / self.rng.choice(["acme", "oss", "personal", "clients", "forks"])
        elif r < 0.25:
            base = base / "clients" / self.rng.choice(["globex", "initech", "umbrella"])
        project_name = name or self.unique_name()
        # Some people name folders with capitals or underscores.
        dirname = project_name
        if self.rng.random() < 0.1:
            dirname = project_name.replace("-", "_").title()
        path = base / dirname
        while path in self.projects:
            path = base / f"{dirname}-{len(self.projects)}"
        self.projects.add(path)
        self._project_files(path, project_name, tool)
        return path, project_name

    def _project_files(self, path: Path, name: str, tool: str) -> None:
        pkg = name.replace("-", "_")
        _write(path / "README.md", f"# {name}\n")
        _write(path / ".git" / "HEAD", "ref: refs/heads/main\n")
        _write(path / ".git" / "config", "[core]\n\trepositoryformatversion = 0\n\tbare = false\n")
        _write(path / "src" / pkg / "__init__.py", '__version__ = "0.1.0"\n')
        _write(path / "tests" / "test_basic.py", "def test_ok():\n    assert True\n")
        _write(path / ".gitignore", ".venv/\n__pycache__/\n")
        project_table = (
            f'[project]\nname = "{name}"\nversion = "0.1.0"\nrequires-python = ">=3.8"\n'
            'dependencies = ["requests>=2"]\n'
        )
        if tool == "poetry":
            text = (
                f'[tool.poetry]\nname = "{name}"\nversion = "0.1.0"\ndescription = ""\n'
                'authors = ["Dev <dev@example.com>"]\n\n[tool.poetry.dependencies]\n'
                'python = "^3.8"\nrequests = "^2.31"\n\n[build-system]\n'
                'requires = ["poetry-core"]\nbuild-backend = "poetry.core.masonry.api"\n'
            )
            _write(path / "pyproject.toml", text)
            _write(path / "poetry.lock", "# This file is automatically @generated by Poetry.\n")
        elif tool == "pipenv":
            _write(
                path / "Pipfile",
                '[[source]]\nurl = "https://pypi.org/simple"\nverify_ssl = true\nname = "pypi"\n\n'
                '[packages]\nrequests = "*"\n\n[requires]\npython_version = "3.11"\n',
            )
            _write(path / "Pipfile.lock", '{"_meta": {"hash": {"sha256": "0"}}, "default": {}}\n')
        elif tool == "uv":
            _write(path / "pyproject.toml", project_table)
            _write(path / "uv.lock", 'version = 1\nrequires-python = ">=3.8"\n')
            _write(path / ".python-version", "3.12\n")
        elif tool == "pdm":
            _write(path / "pyproject.toml", project_table + "\n[tool.pdm]\ndistribution = false\n")
            _write(path / "pdm.lock", '# This file is @generated by PDM.\n[metadata]\ngroups = ["default"]\n')
        elif tool == "hatch":
            _write(
                path / "pyproject.toml",
                project_table + '\n[build-system]\nrequires = ["hatchling"]\n'
                'build-backend = "hatchling.build"\n\n[tool.hatch.envs.default]\n'
                'dependencies = ["pytest"]\n',
            )
        elif tool == "pixi":
            _write(
                path / "pixi.toml",
                f'[project]\nname = "{name}"\nchannels = ["conda-forge"]\nplatforms = ["linux-64"]\n\n'
                '[dependencies]\npython = ">=3.11"\n',
            )
            _write(path / "pixi.lock", "version: 5\nenvironments:\n  default: {}\n")
        elif tool == "plain":
            _write(path / "requirements.txt", "requests\n")
        else:  # venv with a setuptools project
            _write(
                path / "pyproject.toml",
                project_table + '\n[build-system]\nrequires = ["setuptools>=61"]\n'
                'build-backend = "setuptools.build_meta"\n',
            )
        if self.rng.random() < 0.15:  # a JS front-end next to the Python code
            for dep in ("react", "lodash", "typescript"):
                _write(path / "node_modules" / dep / "package.json", f'{{"name": "{dep}"}}\n')
        if self.rng.random() < 0.2:
            _write(path / "docs" / "index.md", f"# {name}\n")
            _write(path / "notebooks" / "explore.ipynb", '{"cells": [], "nbformat": 4}\n')

    # ---- pieces of an environment

    def site_packages(self, prefix: Path, minor: str, installer: str, ipykernel: bool) -> Path:
        sp = prefix / "lib" / f"python{minor}" / "site-packages"
        _mkdir(sp)
        chosen = self.rng.sample(PACKAGES, self.rng.randint(2, 5))
        if installer == "pip":
            chosen = [("pip", "24.0"), *chosen]
        for dist, version in chosen:
            self._dist_info(sp, dist, version, installer)
        if ipykernel:
            self._dist_info(sp, "ipykernel", IPYKERNEL_VERSION, installer)
            self._dist_info(sp, "ipython", "8.26.0", installer)
            # An importable stub, so that peers which run `import ipykernel` see it.
            _write(sp / "ipykernel" / "__init__.py", f'__version__ = "{IPYKERNEL_VERSION}"\n')
            _write(
                prefix / "share" / "jupyter" / "kernels" / "python3" / "kernel.json",
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
            _write(
                prefix / "bin" / "ipython",
                f"#!{prefix}/bin/python\n# -*- coding: utf-8 -*-\nimport re\nimport sys\n"
                "from IPython import start_ipython\nif __name__ == '__main__':\n"
                "    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])\n"
                "    sys.exit(start_ipython())\n",
                0o755,
            )
        return sp

    @staticmethod
    def _dist_info(sp: Path, dist: str, version: str, installer: str) -> None:
        d = sp / f"{dist}-{version}.dist-info"
        _write(d / "METADATA", f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        _write(d / "INSTALLER", f"{installer}\n")
        _write(d / "RECORD", f"{dist}-{version}.dist-info/METADATA,,\n")

    @staticmethod
    def _activate(prefix: Path, name: str) -> None:
        _write(
            prefix / "bin" / "activate",
            "# This file must be used with \"source bin/activate\" *from bash*\n"
            f"VIRTUAL_ENV='{prefix}'\nexport VIRTUAL_ENV\n_OLD_VIRTUAL_PATH=\"$PATH\"\n"
            'PATH="$VIRTUAL_ENV/bin:$PATH"\nexport PATH\n'
            f"VIRTUAL_ENV_PROMPT='({name}) '\nexport VIRTUAL_ENV_PROMPT\n",
        )

    def venv_like(
        self,
        prefix: Path,
        creator: str,
        minor: str,
        *,
        name: str = "",
        base: Path | None = None,
        ipykernel: bool = False,
        broken: bool = False,
        prompt: str | None = None,
    ) -> str:
        """Write a venv / virtualenv / uv environment; returns the full version."""
        version = self.pythons[minor]
        base = base or self.base_python(minor)
        if broken:  # its base Python was uninstalled since
            version = f"{minor}.99"
            base = base.parent.parent.parent / version / "bin" / f"python{minor}"
        home = base.parent
        bindir = prefix / "bin"
        major = minor.split(".")[0]
        if creator == "venv":
            if self.rng.random() < 0.6:  # `python3.X -m venv`
                _link(bindir / f"python{minor}", base)
                _link(bindir / "python", f"python{minor}")
                _link(bindir / "python3", f"python{minor}")
            else:  # `python -m venv`
                _link(bindir / "python", base.parent / "python")
                _link(bindir / "python3", "python")
                _link(bindir / f"python{minor}", "python")
            lines = [
                f"home = {home}",
                "include-system-site-packages = false",
                f"version = {version}",
            ]
            if tuple(map(int, minor.split("."))) >= (3, 11):
                lines += [
                    f"executable = {base}",
                    f"command = {base} -m venv {prefix}",
                ]
            if prompt:
                lines.append(f"prompt = '{prompt}'")
            _link(prefix / "lib64", "lib")
            _mkdir(prefix / "include")
            if minor in ("3.13",):
                _write(prefix / ".gitignore", "# Created by venv; see https://docs.python.org/3/library/venv.html\n*\n")
            installer = "pip"
        else:
            _link(bindir / "python", base)
            _link(bindir / f"python{major}", "python")
            _link(bindir / f"python{minor}", "python")
            if creator == "uv":
                uv_version = self.rng.choice(["0.4.30", "0.5.11", "0.6.14", "0.7.3"])
                lines = [
                    f"home = {home}",
                    "implementation = CPython",
                    f"uv = {uv_version}",
                    f"version_info = {version}",
                    "include-system-site-packages = false",
                ]
                if prompt:
                    lines.append(f"prompt = {prompt}")
                _link(prefix / "lib64", "lib")
                _write(prefix / ".gitignore", "*")
                _write(prefix / "CACHEDIR.TAG", "Signature: 8a477f597d28d172789f06886806bc55")
                _write(prefix / ".lock", "")
                installer = "uv"
            else:  # virtualenv, also what poetry, pipenv, hatch, pdm and virtualenvwrapper use
                ve_version = self.rng.choice(["20.24.5", "20.26.6", "20.29.1", "21.15.11"])
                base_prefix = base.parent.parent
                lines = [f"home = {home}", "implementation = CPython"]
                if ve_version.startswith("21."):  # the newer, longer file
                    lines += [
                        f"python-version = {minor}",
                        f"version_info = {version}.final.0",
                        f"version = {version}",
                        f"executable = {base}",
                        f"command = {self.tool_python} -m virtualenv {prefix}",
                        f"virtualenv = {ve_version}",
                    ]
                    if prompt:
                        lines.append(f'prompt = "{prompt}"')
                else:
                    lines += [f"version_info = {version}.final.0", f"virtualenv = {ve_version}"]
                    if prompt:
                        lines.append(f"prompt = {prompt}")
                lines += [
                    "include-system-site-packages = false",
                    f"base-prefix = {base_prefix}",
                    f"base-exec-prefix = {base_prefix}",
                    f"base-executable = {base}",
                ]
                _write(prefix / ".gitignore", "# created by virtualenv automatically\n*\n")
                _write(prefix / "CACHEDIR.TAG", "Signature: 8a477f597d28d172789f06886806bc55\n")
                installer = "pip"
            sp = prefix / "lib" / f"python{minor}" / "site-packages"
            _write(sp / "_virtualenv.pth", "import _virtualenv")
            _write(sp / "_virtualenv.py", '"""Patches that are applied at runtime to the virtual environment."""\n')
        _write(prefix / "pyvenv.cfg", "\n".join(lines) + "\n")
        self._activate(prefix, name or prefix.name)
        self.site_packages(prefix, minor, installer, ipykernel)
        return version

    def conda_like(
        self,
        prefix: Path,
        minor: str,
        *,
        ipykernel: bool,
        history_cmd: str,
        base: Path | None = None,
        pixi: bool = False,
    ) -> str:
        version = self.pythons[minor]
        build = "h955ad1f_0" if minor == "3.11" else f"h{hashlib.md5(minor.encode()).hexdigest()[:7]}_0"
        bindir = prefix / "bin"
        _link(bindir / f"python{minor}", base or self.base_python(minor))
        _link(bindir / "python", f"python{minor}")
        _link(bindir / "python3", f"python{minor}")
        meta = prefix / "conda-meta"
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(self.stamp + self.rng.randint(0, 90_000_000)))
        channel = "conda-forge" if pixi else "defaults"
        pkgs = [("python", version, build), ("pip", "24.0", "py_0"), ("openssl", "3.0.14", "h5eee18b_0")]
        if ipykernel:
            pkgs.append(("ipykernel", IPYKERNEL_VERSION, f"py{minor.replace('.', '')}h06a4308_0"))
        hist = [f"==> {when} <==", f"# cmd: {history_cmd}", "# conda version: 24.5.0"]
        hist += [f"+{channel}/linux-64::{n}-{v}-{b}" for n, v, b in pkgs]
        if pixi:
            hist = ["// not relevant for pixi but for `conda run -p`"]
        _write(meta / "history", "\n".join(hist) + "\n")
        for n, v, b in pkgs:
            files = [f"bin/python{minor}", f"lib/python{minor}/os.py"] if n == "python" else []
            record = {
                "name": n,
                "version": v,
                "build": b,
                "build_number": 0,
                "channel": "https://repo.anaconda.com/pkgs/main/linux-64" if not pixi
                else "https://conda.anaconda.org/conda-forge/",
                "subdir": "linux-64",
                "fn": f"{n}-{v}-{b}.conda",
                "files": files,
                "requested_spec": f"{n}={minor}" if n == "python" else "",
            }
            _write(meta / f"{n}-{v}-{b}.json", json.dumps(record) + "\n")
        self.site_packages(prefix, minor, "conda", ipykernel)
        return version

    def add(self, prefix: Path, python: Path, kind: str, layout: str, version: str, name: str,
            ipykernel: bool, broken: bool = False, project: Path | None = None, note: str = "") -> None:
        self.envs.append(
            EnvEntry(
                prefix=os.path.realpath(prefix),
                python=str(python),
                kind=kind,
                layout=layout,
                version=version,
                name=name,
                has_ipykernel=ipykernel,
                broken=broken,
                project=str(project) if project else None,
                note=note,
            )
        )

    # ---- fixed parts: pyenv root, conda base, uv pythons

    def pyenv_root(self) -> None:
        root = self.home / ".pyenv"
        pyenv_exe = REAL_PYENV.parent / "libexec" / "pyenv"
        _link(root / "bin" / "pyenv", pyenv_exe)
        _mkdir(root / "shims")
        _write(root / "version", f"{self.pythons.get('3.11', next(iter(self.pythons.values())))}\n")
        for minor, version in sorted(self.pythons.items()):
            prefix = root / "versions" / version
            major = minor.split(".")[0]
            _link(prefix / "bin" / f"python{minor}", self.base_python(minor))
            _link(prefix / "bin" / "python", f"python{minor}")
            _link(prefix / "bin" / f"python{major}", f"python{minor}")
            _write(prefix / "bin" / f"pip{minor}", f"#!{prefix}/bin/python{minor}\n", 0o755)
            _mkdir(prefix / "include" / f"python{minor}")
            has_k = self.rng.random() < 1 / 3
            self.site_packages(prefix, minor, "pip", has_k)
            self.add(prefix, prefix / "bin" / "python", "pyenv", "pyenv-version", version,
                     version, has_k)

    def conda_base(self) -> Path:
        base = self.home / "miniconda3"
        self.conda_like(base, "3.11", ipykernel=True,
                        history_cmd="bash Miniconda3-latest-Linux-x86_64.sh -b")
        _write(base / "conda-meta" / "conda-24.5.0-py311h06a4308_0.json",
               json.dumps({"name": "conda", "version": "24.5.0"}) + "\n")
        _write(base / "condabin" / "conda", "#!/bin/sh\n# conda entry point (not runnable here)\n")
        _write(base / "etc" / "profile.d" / "conda.sh", "export CONDA_EXE=\n")
        _mkdir(base / "envs")
        _mkdir(base / "pkgs")
        _write(self.home / ".condarc", "channels:\n  - defaults\nauto_activate_base: false\n")
        self.add(base, base / "bin" / "python", "conda", "conda-base", self.pythons["3.11"],
                 "base", True)
        return base

    def uv_pythons(self, count: int) -> None:
        root = self.home / ".local" / "share" / "uv" / "python"
        _write(root / ".gitignore", "*")
        _write(root / ".lock", "")
        for minor in sorted(self.pythons, key=lambda m: -VERSION_WEIGHTS.get(m, 0))[:count]:
            version = self.pythons[minor]
            prefix = root / f"cpython-{version}-linux-x86_64-gnu"
            _link(prefix / "bin" / f"python{minor}", self.base_python(minor))
            _link(prefix / "bin" / "python", f"python{minor}")
            _link(prefix / "bin" / "python3", f"python{minor}")
            _write(prefix / "lib" / f"python{minor}" / "EXTERNALLY-MANAGED",
                   "[externally-managed]\nError=This Python installation is managed by uv\n")
            self.site_packages(prefix, minor, "uv", False)
            _link(root / f"cpython-{minor}-linux-x86_64-gnu", prefix.name)
            _link(self.home / ".local" / "bin" / f"python{minor}", prefix / "bin" / f"python{minor}")
            self.add(prefix, prefix / "bin" / "python", "uv-python", "uv-python", version,
                     prefix.name, False)

    # ---- one environment of each layout

    def make(self, layout: str, ipykernel: bool, broken: bool) -> None:
        builder: Callable[[bool, bool], None] = getattr(self, "_" + layout.replace("-", "_"))
        builder(ipykernel, broken)

    def _venv_project(self, ipy: bool, broken: bool) -> None:
        project, name = self.new_project(self.rng.choice(["setuptools", "plain"]))
        folder = self.rng.choices([".venv", "venv", "env"], [0.6, 0.3, 0.1])[0]
        prefix = project / folder
        minor = self.pick_minor()
        version = self.venv_like(prefix, "venv", minor, name=folder, ipykernel=ipy, broken=broken)
        self.add(prefix, prefix / "bin" / "python", "venv", "venv-project", version, name, ipy,
                 broken, project, note=f"{folder} in project")

    def _uv_project(self, ipy: bool, broken: bool) -> None:
        project, name = self.new_project("uv")
        prefix = project / ".venv"
        minor = self.pick_minor()
        version = self.venv_like(prefix, "uv", minor, name=name, ipykernel=ipy, broken=broken,
                                 prompt=name)
        self.add(prefix, prefix / "bin" / "python", "uv", "uv-project", version, name, ipy,
                 broken, project)

    def _poetry_cache(self, ipy: bool, broken: bool) -> None:
        name = self.unique_name()
        if self.rng.random() < 0.15:
            name = name.replace("-", "_").title()  # poetry lower-cases it for the env name
        project, _ = self.new_project("poetry", name)
        minor = self.pick_minor()
        env_dir = poetry_env_name(canonical(name), project, minor)
        prefix = self.home / ".cache" / "pypoetry" / "virtualenvs" / env_dir
        version = self.venv_like(prefix, "virtualenv", minor, name=f"{canonical(name)}-py{minor}",
                                 ipykernel=ipy, broken=broken, prompt=f"{canonical(name)}-py{minor}")
        if self.rng.random() < 0.5:  # `poetry env use` records the env
            self.poetry_envs.append(f'[{env_dir.rsplit("-py", 1)[0]}]\nminor = "{minor}"\n'
                                    f'patch = "{self.pythons[minor]}"\n')
        self.add(prefix, prefix / "bin" / "python", "poetry", "poetry-cache", version,
                 canonical(name), ipy, broken, project)

    def _poetry_in_project(self, ipy: bool, broken: bool) -> None:
        project, name = self.new_project("poetry")
        _write(project / "poetry.toml", "[virtualenvs]\nin-project = true\n")
        prefix = project / ".venv"
        minor = self.pick_minor()
        version = self.venv_like(prefix, "virtualenv", minor, name=f"{name}-py{minor}",
                                 ipykernel=ipy, broken=broken, prompt=f"{name}-py{minor}")
        self.add(prefix, prefix / "bin" / "python", "poetry", "poetry-in-project", version, name,
                 ipy, broken, project)

    def _pipenv(self, ipy: bool, broken: bool) -> None:
        project, _name = self.new_project("pipenv")
        prefix = self.home / ".local" / "share" / "virtualenvs" / pipenv_env_name(project)
        minor = self.pick_minor()
        version = self.venv_like(prefix, "virtualenv", minor, name=project.name, ipykernel=ipy,
                                 broken=broken, prompt=project.name)
        _write(prefix / ".project", str(project))
        self.add(prefix, prefix / "bin" / "python", "pipenv", "pipenv", version, prefix.name, ipy,
                 broken, project)

    def _virtualenvwrapper(self, ipy: bool, broken: bool) -> None:
        name = self.unique_name(self.rng.choice(["-", "_"]))
        workon = self.home / ".virtualenvs"
        prefix = workon / name
        minor = "2.7" if ("2.7" in self.pythons and self.rng.random() < 0.04) else self.pick_minor()
        version = self.venv_like(prefix, "virtualenv", minor, name=name, ipykernel=ipy,
                                 broken=broken)
        for hook in ("postactivate", "postdeactivate", "preactivate", "predeactivate"):
            text = f"#!/bin/bash\n# This hook is sourced after this virtualenv is {hook[4:]}d.\n"
            _write(prefix / "bin" / hook, text, 0o755)
        project = None
        if self.rng.random() < 0.3:  # made by mkproject
            project, _ = self.new_project("plain", name)
            _write(prefix / ".project", f"{project}\n")
        self.add(prefix, prefix / "bin" / "python", "virtualenvwrapper", "virtualenvwrapper",
                 version, name, ipy, broken, project)

    def _standalone(self, ipy: bool, broken: bool) -> None:
        parent = self.home / self.rng.choice(["venvs", ".venvs", "envs"])
        name = self.unique_name()
        prefix = parent / name
        creator = self.rng.choices(["venv", "virtualenv", "uv"], [0.5, 0.3, 0.2])[0]
        minor = self.pick_minor()
        version = self.venv_like(prefix, creator, minor, name=name, ipykernel=ipy, broken=broken)
        self.add(prefix, prefix / "bin" / "python", creator, "standalone", version, name, ipy,
                 broken, note=f"{creator} env in ~/{parent.name}")

    def _conda_env(self, ipy: bool, broken: bool) -> None:
        name = self.unique_name(self.rng.choice(["-", "_"]))
        r = self.rng.random()
        if r < 0.8:
            prefix = self.home / "miniconda3" / "envs" / name
        elif r < 0.9:
            prefix = self.home / ".conda" / "envs" / name
        else:  # `conda create -p`: known only from environments.txt
            prefix = self.home / "work" / "conda-envs" / name
        minor = self.pick_minor()
        version = self.conda_like(prefix, minor, ipykernel=ipy,
                                  history_cmd=f"{self.home}/miniconda3/bin/conda create -n {name} python={minor}")
        self.conda_envs.append(prefix)
        self.add(prefix, prefix / "bin" / "python", "conda", "conda-env", version, name, ipy,
                 note=str(prefix.parent.relative_to(self.home)))

    def _pyenv_virtualenv(self, ipy: bool, broken: bool) -> None:
        name = self.unique_name()
        minor = self.pick_minor()
        version = self.pythons[minor]
        versions = self.home / ".pyenv" / "versions"
        prefix = versions / version / "envs" / name
        self.venv_like(prefix, "venv", minor, name=name, ipykernel=ipy, broken=broken,
                       base=self.farm_pyenv_python(minor))
        _write(prefix / "bin" / "pydoc", f"#!{prefix}/bin/python\nimport pydoc\npydoc.cli()\n", 0o755)
        _link(prefix / "bin" / f"python{minor}-config",
              self.farm_pyenv_python(minor).parent / f"python{minor}-config")
        _link(versions / name, prefix)
        self.add(prefix, prefix / "bin" / "python", "pyenv-virtualenv", "pyenv-virtualenv",
                 version if not broken else f"{minor}.99", name, ipy, broken)

    def _hatch(self, ipy: bool, broken: bool) -> None:
        project, name = self.new_project("hatch")
        storage = self.home / ".local" / "share" / "hatch" / "env" / "virtual" / name / hatch_root_hash(project)
        envs = [name] if self.rng.random() < 0.7 else [name, "test"]
        for i, env_name in enumerate(envs):
            if i and len(self.envs) >= self.target:
                break
            prefix = storage / env_name
            minor = self.pick_minor()
            creator = self.rng.choice(["virtualenv", "uv"])
            version = self.venv_like(prefix, creator, minor, name=name, ipykernel=ipy and i == 0,
                                     broken=broken and i == 0)
            self.add(prefix, prefix / "bin" / "python", "hatch", "hatch", version, env_name,
                     ipy and i == 0, broken and i == 0, project,
                     note="default env" if i == 0 else "extra env")

    def _pdm_venvs(self, ipy: bool, broken: bool) -> None:
        project, name = self.new_project("pdm")
        minor = self.pick_minor()
        prefix = self.home / ".local" / "share" / "pdm" / "venvs" / f"{pdm_env_prefix(project)}{minor}"
        version = self.venv_like(prefix, "virtualenv", minor, name=f"{name}-{minor}",
                                 ipykernel=ipy, broken=broken, prompt=f"{name}-{minor}")
        _write(project / ".pdm-python", f"{prefix}/bin/python\n")
        _write(project / ".python-version", f"{minor}\n")
        self.add(prefix, prefix / "bin" / "python", "pdm", "pdm-venvs", version, name, ipy, broken,
                 project)

    def _pdm_in_project(self, ipy: bool, broken: bool) -> None:
        project, name = self.new_project("pdm")
        prefix = project / ".venv"
        minor = self.pick_minor()
        version = self.venv_like(prefix, "virtualenv", minor, name=name, ipykernel=ipy,
                                 broken=broken, prompt=f"{name}-{minor}")
        _write(project / ".pdm-python", f"{prefix}/bin/python\n")
        _write(project / ".python-version", f"{minor}\n")
        self.add(prefix, prefix / "bin" / "python", "pdm", "pdm-in-project", version, name, ipy,
                 broken, project)

    def _pixi(self, ipy: bool, broken: bool) -> None:
        project, name = self.new_project("pixi")
        prefix = project / ".pixi" / "envs" / "default"
        minor = self.rng.choice([m for m in ("3.11", "3.12", "3.13") if m in self.pythons])
        version = self.conda_like(prefix, minor, ipykernel=ipy, history_cmd="pixi install", pixi=True)
        _write(prefix / "conda-meta" / "pixi",
               json.dumps({"manifest_path": str(project / "pixi.toml"), "environment_name": "default",
                           "pixi_version": "0.39.5",
                           "environment_lock_file_hash": hashlib.sha256(name.encode()).hexdigest()[:16]})
               + "\n")
        _write(project / ".pixi" / ".gitignore", "*\n")
        self.add(prefix, prefix / "bin" / "python", "pixi", "pixi", version, name, ipy,
                 project=project)

    # ---- the whole farm

    def plan(self) -> list[str]:
        """The layout of each environment to make, N minus the fixed ones."""
        fixed = len(self.envs)
        rest = max(self.n - fixed, 0)
        shares = {k: w for k, (w, _) in LAYOUTS.items()}
        total = sum(shares.values())
        counts = {k: int(rest * w / total) for k, w in shares.items()}
        # hand out the remainder to the layouts with the largest fractional parts
        left = rest - sum(counts.values())
        by_frac = sorted(shares, key=lambda k: -(rest * shares[k] / total - counts[k]))
        for k in by_frac[:left]:
            counts[k] += 1
        plan = [k for k, c in counts.items() for _ in range(c)]
        self.rng.shuffle(plan)
        return plan

    def build(self) -> None:
        _mkdir(self.home)
        self.pyenv_root()
        self.conda_base()
        self.uv_pythons(2)
        plan = self.plan()
        broken_every = 200  # about 0.5 % broken, at least 2
        n_broken = max(2, len(plan) // broken_every)
        can_break = [i for i, k in enumerate(plan) if k not in ("conda-env", "pixi")]
        broken_at = set(self.rng.sample(can_break, min(n_broken, len(can_break))))
        for i, layout in enumerate(plan):
            if len(self.envs) >= self.target:
                break
            self.make(layout, self.rng.random() < 1 / 3, i in broken_at)
        if self.poetry_envs:
            _write(self.home / ".cache/pypoetry/virtualenvs/envs.toml", "\n".join(self.poetry_envs))
        # conda's registry of environments, with a stale line as it often has
        lines = [str(self.home / "miniconda3"), *map(str, self.conda_envs)]
        lines.insert(len(lines) // 2, str(self.home / "miniconda3" / "envs" / "deleted-long-ago"))
        _write(self.home / ".conda" / "environments.txt", "\n".join(lines) + "\n")
        # virtualenvwrapper's global hooks
        for hook in ("postactivate", "postmkvirtualenv", "premkvirtualenv", "get_env_details"):
            _write(self.home / ".virtualenvs" / hook, "#!/bin/bash\n# global virtualenvwrapper hook\n", 0o755)
        # a few projects with no environment at all
        for _ in range(max(1, self.n // 10)):
            self.new_project(self.rng.choice(["setuptools", "plain", "poetry", "uv"]))
        _write(self.home / ".bashrc", 'export PYENV_ROOT="$HOME/.pyenv"\n')


def make_farm(root: Path, n: int, seed: int = 0, workers: int | None = None) -> Manifest:
    """Build a farm of `n` environments under `root` (wiped first) and return its manifest."""
    root = Path(root).absolute()
    if root.exists():
        if any(root.iterdir()) and not (root / "manifest.json").exists():
            raise SystemExit(f"{root} is not empty and holds no manifest.json; refusing to wipe it")
        shutil.rmtree(root)
    root.mkdir(parents=True)
    started = time.perf_counter()
    builder = FarmBuilder(root, n, seed)
    _ops.clear()
    builder.build()
    _execute(workers or os.cpu_count() or 1)
    _ops.clear()
    manifest = Manifest(
        root=str(root),
        home=str(builder.home),
        n=len(builder.envs),
        seed=seed,
        build_seconds=round(time.perf_counter() - started, 2),
        envs=builder.envs,
    )
    manifest.save()
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="farm folder (wiped; HOME will be ROOT/home)")
    parser.add_argument("n", type=int, help="number of environments")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    m = make_farm(args.root, args.n, args.seed)
    kinds: dict[str, int] = {}
    for e in m.envs:
        kinds[e.layout] = kinds.get(e.layout, 0) + 1
    print(f"{m.n} environments in {m.home} ({m.build_seconds} s); manifest: {m.root}/manifest.json")
    for layout, count in sorted(kinds.items(), key=lambda kv: -kv[1]):
        print(f"  {count:6d}  {layout}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
