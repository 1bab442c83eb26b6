"""What the benchmark scripts share: the sandbox, running processes, the guard on the real folders, machine facts.

bench_kernels.py, bench_overlay.py, bench_provider.py and run.py import it (``sys.path.insert(0, BENCH)``, like
farm.py). Nothing here measures anything by itself: each script decides what it times and what its report says.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
BASE_PATH = "/usr/local/bin:/usr/bin:/bin"
PYENV = Path(os.environ.get("KK_BENCH_PYENV", "/root/.pyenv/versions"))
#: The folders under ~ where the farm keeps projects (bench/farm.py gives them weights).
CODE_FOLDERS = ("projects", "code", "src", "dev", "work", "repos", "git", "workspace")
#: Folders of standalone environments (the farm's ``standalone`` layout) that kernelkeeper does not scan by default.
STANDALONE_DIRS = ("~/venvs", "~/.venvs", "~/envs")
# Passed on only so that uv (and pip) can reach the package index from the sandbox.
NETWORK_VARS = (
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "PIP_CERT",
    "PIP_DEFAULT_TIMEOUT",
    "PIP_FIND_LINKS",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "UV_INDEX_URL",
    "UV_DEFAULT_INDEX",
    "PIP_INDEX_URL",
)


class BenchError(RuntimeError):
    pass


# --------------------------------------------------------------------------- sandbox


@dataclass
class Sandbox:
    root: Path

    def path(self, *parts: str) -> Path:
        p = self.root.joinpath(*parts)
        p.mkdir(parents=True, exist_ok=True)
        return p

    def clean_env(
        self,
        home: Path,
        data_dir: Path,
        *,
        path: str = BASE_PATH,
        folder: Sequence[str] = (),
        config_dir: Path | None = None,
        ipython_dir: Path | None = None,
    ) -> dict[str, str]:
        """A clean environment: nothing of the caller's, every Jupyter/XDG folder in the sandbox.

        The runtime, JUPYTER_PATH, config and runtime folders are made under ``folder`` of the sandbox (unless
        given); IPYTHONDIR is ``home/.ipython`` unless given.
        """
        runtime = self.path(*folder, "xdg-runtime")
        runtime.chmod(0o700)
        return {
            "HOME": str(home),
            "PATH": path,
            "LANG": "C.UTF-8",
            "XDG_DATA_HOME": str(home / ".local" / "share"),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "XDG_STATE_HOME": str(home / ".local" / "state"),
            "XDG_RUNTIME_DIR": str(runtime),
            "JUPYTER_DATA_DIR": str(data_dir),
            "JUPYTER_PATH": str(self.path(*folder, "jupyter-path")),
            "JUPYTER_CONFIG_DIR": str(config_dir if config_dir is not None else self.path(*folder, "jupyter-config")),
            "JUPYTER_RUNTIME_DIR": str(self.path(*folder, "jupyter-runtime")),
            "IPYTHONDIR": str(ipython_dir if ipython_dir is not None else home / ".ipython"),
        }


S = TypeVar("S", bound=Sandbox)


@contextlib.contextmanager
def sandbox(make: Callable[[Path], S], prefix: str, parent: str | Path | None, keep: bool) -> Iterator[S]:
    """A fresh temp dir (under ``parent``, default the system temp dir), removed at the end unless ``keep``.

    ``os.environ`` is put back as it was on the way out too: a benchmark may move this process into the sandbox.
    """
    root = Path(tempfile.mkdtemp(prefix=prefix, dir=parent)).resolve()
    saved_env = dict(os.environ)
    try:
        yield make(root)
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        if keep:
            print(f"kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)


def sandbox_options(parser: argparse.ArgumentParser) -> None:
    """--tmp and --keep: where the sandbox goes and whether it stays."""
    parser.add_argument("--tmp", type=Path, default=None, help="where the sandbox goes (default: the temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the sandbox")


def network_env() -> dict[str, str]:
    """The caller's index, proxy and certificate settings (for uv and pip only)."""
    return {k: os.environ[k] for k in NETWORK_VARS if k in os.environ}


def find_uv() -> str:
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if uv is None:
        raise BenchError("uv not found (install it in the venv that runs this benchmark)")
    return uv


# --------------------------------------------------------------------------- processes


@dataclass
class Finished:
    """One process run to its end (or killed at the timeout, with its whole process group)."""

    argv: list[str]
    seconds: float  # wall time from before the fork to the end of its output
    timed_out: bool
    returncode: int | None
    stdout: str
    stderr: str


def run_process(argv: list[str], env: dict[str, str], timeout: float, cwd: Path | None = None) -> Finished:
    """Run a fresh process in its own process group, stdout and stderr captured; never raises on failure."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: a timeout ends its children too
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        return Finished(argv, time.perf_counter() - started, True, proc.returncode, out or "", err or "")
    return Finished(argv, time.perf_counter() - started, False, proc.returncode, out, err)


def stop_group(proc: subprocess.Popen[Any], timeout: float) -> None:
    """SIGTERM to a process started with ``start_new_session=True`` and all it started, SIGKILL after ``timeout``."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)


def shown(argv: list[str], width: int = 80) -> str:
    """The command line for a message, long words (``-c`` scripts) cut short."""
    return " ".join(a if len(a) <= width else a[: width - 1] + "…" for a in argv)


def run(argv: list[str], env: dict[str, str], timeout: float, cwd: Path | None = None) -> tuple[float, str]:
    """Run a fresh process; return (wall seconds, stdout). Raises BenchError on failure or timeout."""
    p = run_process(argv, env, timeout, cwd)
    if p.timed_out:
        raise BenchError(f"timed out after {timeout:.0f} s: {shown(argv)}")
    if p.returncode != 0:
        raise BenchError(f"exit {p.returncode}: {shown(argv)}\n{(p.stdout + p.stderr).strip()[-2000:]}")
    return p.seconds, p.stdout


def warm(folder: Path) -> int:
    """lstat every entry once, so every tool starts from a warm file cache; returns how many there are."""
    count = 0
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            os.lstat(os.path.join(dirpath, name))
            count += 1
    return count


def ensure_venv(venv: Path, pins: dict[str, str]) -> dict[str, str]:
    """``venv`` (made on first use) holding exactly ``pins`` (installed from PyPI when it does not).

    Returns the versions found there, by distribution name, and ``python``: its Python version.
    """
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    versions = venv_versions(python, list(pins))
    if any(versions.get(n) != v for n, v in pins.items()):
        print(f"installing {pins} into {venv}", file=sys.stderr)
        want = [f"{name}=={v}" for name, v in pins.items()]
        subprocess.run([str(python), "-m", "pip", "install", "-q", *want], check=True, timeout=600)
        versions = venv_versions(python, list(pins))
    return versions


def venv_versions(python: Path, names: list[str]) -> dict[str, str]:
    probe = (
        "import importlib.metadata as m, json, sys\n"
        "out = {}\n"
        "for n in sys.argv[1:]:\n"
        "    try: out[n] = m.version(n)\n"
        "    except m.PackageNotFoundError: pass\n"
        "out['python'] = sys.version.split()[0]\n"
        "print(json.dumps(out))\n"
    )
    out = subprocess.run([str(python), "-c", probe, *names], check=True, capture_output=True, text=True, timeout=60)
    versions: dict[str, str] = json.loads(out.stdout)
    return versions


# --------------------------------------------------------------------------- the real folders must not change


def guarded_paths(home_dirs: Iterable[str], *, python_dirs: bool = True) -> list[Path]:
    """``home_dirs`` of the real home, the system's Jupyter folders and, with ``python_dirs``, the Jupyter
    folders of this Python and of every pyenv Python."""
    real_home = Path(pwd.getpwuid(os.getuid()).pw_dir)
    paths = [real_home / d for d in home_dirs]
    paths += [
        Path("/usr/local/share/jupyter"),
        Path("/usr/share/jupyter"),
        Path("/etc/jupyter"),
        Path("/usr/local/etc/jupyter"),
    ]
    if python_dirs:
        paths += [Path(sys.prefix) / "share" / "jupyter", Path(sys.prefix) / "etc" / "jupyter"]
        paths += [v / "share" / "jupyter" for v in sorted(PYENV.glob("3.*"))]
    return paths


def snapshot(paths: list[Path]) -> dict[str, Any]:
    """Every file under each path (the path itself too) with its mtime and size (None when it does not exist)."""
    state: dict[str, Any] = {}
    for root in paths:
        if not os.path.lexists(root):
            state[str(root)] = None
            continue
        st = root.lstat()
        entries = [(".", st.st_mtime_ns, st.st_size)]
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                p = os.path.join(dirpath, name)
                st = os.lstat(p)
                entries.append((os.path.relpath(p, root), st.st_mtime_ns, st.st_size))
        state[str(root)] = sorted(entries)
    return state


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list[str]]:
    """Per changed root (in the order of ``before``): the entries added (+), removed (-) or modified (~)."""
    out: dict[str, list[str]] = {}
    for root in [*before, *(r for r in after if r not in before)]:
        if before.get(root) == after.get(root):
            continue
        old = {e[0]: e for e in before.get(root) or []}
        new = {e[0]: e for e in after.get(root) or []}
        changes = [f"+{k}" for k in sorted(new.keys() - old.keys())]
        changes += [f"-{k}" for k in sorted(old.keys() - new.keys())]
        changes += [f"~{k}" for k in sorted(old.keys() & new.keys()) if old[k] != new[k]]
        out[root] = changes or ["(created or deleted)"]
    return out


class Guard:
    """The folders a run must not write: a snapshot now, compared with one at the end."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths
        self.before = snapshot(paths)

    def changes(self, who: str) -> dict[str, list[str]]:
        """What changed since the start, by folder; each one is also said on stderr."""
        changed = diff(self.before, snapshot(self.paths))
        for p, what in changed.items():
            print(f"{who}: {p} changed during the run: {what[:10]}", file=sys.stderr)
        return changed


# --------------------------------------------------------------------------- machine facts


def debian() -> str:
    try:
        return f"Debian {Path('/etc/debian_version').read_text().strip()}"
    except OSError:
        return platform.platform()


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "?"


def machine(cpu: bool = True) -> str:
    """``Debian 12.x, x86_64, <CPU model>, 2 cores`` (without the model when not ``cpu``)."""
    model = f"{cpu_model()}, " if cpu else ""
    return f"{debian()}, {platform.machine()}, {model}{os.cpu_count()} cores"


def load_average() -> str:
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def filesystem(path: Path) -> str:
    """The type of the file system ``path`` is on (``df -T``), or ``?``."""
    with contextlib.suppress(OSError, subprocess.SubprocessError, IndexError):
        df = subprocess.run(["df", "-T", str(path)], capture_output=True, text=True, timeout=10)
        return df.stdout.splitlines()[-1].split()[1]
    return "?"


def source_state() -> str:
    """The commit kernelkeeper's source is at, and whether src/ differs from it."""
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "src"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"
    return f"{head}{' + uncommitted changes in src/' if dirty else ''}" if head else "?"


# --------------------------------------------------------------------------- the run and its report


class Phases(dict[str, float]):
    """Wall seconds of each phase of a run, from the previous mark (made at creation) to ``done(name)``."""

    def __init__(self) -> None:
        super().__init__()
        self.mark = time.perf_counter()

    def done(self, name: str) -> None:
        now = time.perf_counter()
        self[name] = now - self.mark
        self.mark = now

    def line(self, label: str) -> str:
        """The report's last Method line: these times and the load average at the end."""
        times = ", ".join(f"{k} {v:.0f} s" for k, v in self.items())
        return f"- {label}: {times}; load average at the end {load_average()}."


def reproduce_command(script: str, argv: list[str] | None) -> str:
    """The command line that reproduces this run, as the report gives it."""
    extra = " ".join(argv if argv is not None else sys.argv[1:])
    return f"python bench/{script} {extra}".strip()


def section(heading: str, reproduce: str, command: str, facts: list[str], rows: list[str], method: list[str]) -> str:
    """A results file: heading, how to reproduce it, machine facts, the table, the method."""
    return "\n".join(
        [heading, "", reproduce, "", "```bash", command, "```", "", *facts, "", *rows, "", "Method:", "", *method, ""]
    )


# --------------------------------------------------------------------------- kernels (jupyter_client)


def execute(kc: Any, code: str, name: str, timeout: float) -> str:
    """Execute ``code`` on kernel ``name``'s client and wait on iopub for its result (text/plain)."""
    msg_id = kc.execute(code, store_history=False)
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise BenchError(f"no result from kernel {name} within {timeout:.0f} s")
        msg = kc.get_iopub_msg(timeout=left)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "execute_result":
            return str(msg["content"]["data"]["text/plain"])
        if msg["msg_type"] == "error":
            raise BenchError(f"kernel {name}: {msg['content']['ename']}: {msg['content']['evalue']}")


def shutdown_kernel(km: Any) -> None:
    """Ask the kernel to shut down, kill it after at most 5 s (its channels are stopped already)."""
    km.shutdown_wait_time = min(float(km.shutdown_wait_time), 5.0)
    km.shutdown_kernel(now=False)  # asks politely, kills after shutdown_wait_time
    if km.is_alive():
        km.shutdown_kernel(now=True)


# --------------------------------------------------------------------------- peers' configuration


def env_kernels_config(conda_extra: Sequence[str] = ()) -> dict[str, Any]:
    """The most the EnvironmentKernelSpecManager traitlets can be told about the farm.

    ``conda_extra``: more conda env folders, after ~/.conda/envs (before the projects' pixi envs).
    """
    venv_dirs = [
        "~/.virtualenvs",
        "~/.local/share/virtualenvs",
        "~/.cache/pypoetry/virtualenvs",
        "~/.pyenv/versions",
        "~/.pyenv/versions/*/envs",
        "~/.local/share/hatch/env/virtual/*/*",
        "~/.local/share/pdm/venvs",
        *STANDALONE_DIRS,
    ]
    # It globs BASE/*/, so project-local venv/ and env/ folders are reachable via ~/projects/* etc.
    # (.venv is hidden from '*').
    for folder in CODE_FOLDERS:
        for depth in (1, 2, 3):
            venv_dirs.append("/".join(["~", folder, *["*"] * depth]))
    conda_dirs = ["~", "~/miniconda3/envs", "~/.conda/envs", *conda_extra]
    for folder in CODE_FOLDERS:
        for depth in (1, 2, 3):
            conda_dirs.append("/".join(["~", folder, *["*"] * depth, ".pixi", "envs"]))
    return {
        "EnvironmentKernelSpecManager": {
            "virtualenv_env_dirs": venv_dirs,
            "conda_env_dirs": conda_dirs,
            "use_conda_directly": False,  # there is no conda executable to ask
            "find_r_envs": False,
            "refresh_interval": 0,  # scan on the first request, then serve that
        }
    }
