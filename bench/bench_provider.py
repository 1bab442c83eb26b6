"""Provider benchmark (issue 4): ``GET /api/kernelspecs`` on a real jupyter_server, as ratios.

One run, same farms, same machine session. For N = 10, 100 and 1,000 environments (bench/farm.py,
about a third with an ipykernel dist-info) it starts a real ``jupyter_server`` (subprocess,
127.0.0.1, a free port, token auth, ``--allow-root``, every timeout bounded, always killed) with

* ``kk``: ``kernelkeeper.provider.KernelKeeperSpecManager`` and an empty ``JUPYTER_DATA_DIR``
  (every kernel is dynamic). Measured: the first request, warm requests back to back (served from
  the cache, or revalidated when ``cache_seconds`` has passed), warm requests spaced by more than
  ``cache_seconds`` (each one makes the worker stat the watched folders), and a change: a new
  environment is renamed into ``~/projects`` and the first request after it is timed (it may serve
  the cached list), then requests follow until one lists the new kernel.
* ``stock``: jupyter_client's ``KernelSpecManager`` with the kernelspecs ``kernelkeeper sync`` wrote
  for the same environments into the server's ``JUPYTER_DATA_DIR``.
* ``environment_kernels`` and ``nb_venv_kernels`` from PyPI, in their own venv
  (bench/.provider-peers-venv, made on first use), each configured the most favourable way a user
  could: environment_kernels' ``virtualenv_env_dirs``/``conda_env_dirs`` name every folder of the
  farm its ``BASE/*/`` glob can reach; every farm environment is offered to nb_venv_kernels'
  registry (``register_environment(..., require_kernelspec=True)``, what ``nb_venv_kernels
  register`` does), so it lists every one that has a kernelspec.

Each server gets a clean environment: HOME is the farm's home, XDG_*, JUPYTER_DATA_DIR,
JUPYTER_PATH, JUPYTER_CONFIG_DIR and JUPYTER_RUNTIME_DIR point into the sandbox. The run checks that
the real home's and the system's Jupyter folders did not change. Writes bench/RESULTS-provider.md.

    python bench/bench_provider.py          # ~5 min on 2 cores
    python bench/bench_provider.py --sizes 10 100 -k 10 --out /tmp/r.md
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import os
import platform
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import common  # noqa: E402
from common import PYENV, REPO, STANDALONE_DIRS, BenchError, env_kernels_config, run  # noqa: E402
from farm import Manifest, make_farm  # noqa: E402

PEERS_VENV = BENCH / ".provider-peers-venv"
PEER_PINS = {"environment_kernels": "1.2.0", "nb_venv_kernels": "1.2.46"}
KK_CLASS = "kernelkeeper.provider.KernelKeeperSpecManager"
STOCK_CLASS = "jupyter_client.kernelspec.KernelSpecManager"
EK_CLASS = "environment_kernels.EnvironmentKernelSpecManager"
NBV_CLASS = "nb_venv_kernels.VEnvKernelSpecManager"
# STANDALONE_DIRS (common.py): folders of standalone environments that kernelkeeper does not scan by default; a user
# names them with its documented setting (the provider's `env_paths`, the CLI's `[discovery] paths`).


# --------------------------------------------------------------------------- sandbox


class Sandbox(common.Sandbox):
    def env(self, home: Path, tag: str, data_dir: Path, config_dir: Path) -> dict[str, str]:
        """A clean environment: nothing of the caller's, every Jupyter/XDG folder in the sandbox."""
        env = self.clean_env(
            home, data_dir, folder=(tag,), config_dir=config_dir, ipython_dir=self.path(tag, "ipython")
        )
        env["KERNELKEEPER_CONFIG"] = str(self.root / "kernelkeeper.toml")
        return env


# --------------------------------------------------------------------------- peers venv


def peers_venv() -> dict[str, str]:
    """Make or check bench/.provider-peers-venv (from PyPI on first use); the versions in it and its Python's."""
    return common.ensure_venv(
        PEERS_VENV,
        {
            **PEER_PINS,
            "jupyter_server": dist_version("jupyter_server"),
            "jupyter_client": dist_version("jupyter_client"),
        },
    )


# --------------------------------------------------------------------------- a jupyter server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Server:
    """One jupyter_server subprocess; a context manager that always kills its process group."""

    def __init__(self, python: Path, ksm_class: str, env: dict[str, str], workdir: Path, timeout: float) -> None:
        self.python = python
        self.ksm_class = ksm_class
        self.env = env
        self.workdir = workdir
        self.timeout = timeout
        self.token = secrets.token_hex(16)
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "server.log"
        self.conn: http.client.HTTPConnection | None = None
        self.poll = 0.1  # seconds between /api/status tries at start

    def __enter__(self) -> Server:
        root_dir = self.workdir / "root"
        root_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        argv = [
            str(self.python),
            "-m",
            "jupyter_server",
            "--allow-root",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--ServerApp.root_dir={root_dir}",
            f"--IdentityProvider.token={self.token}",
        ]
        if self.ksm_class:  # none: the manager the server's config chooses (kernelkeeper's extension)
            argv.append(f"--ServerApp.kernel_spec_manager_class={self.ksm_class}")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                argv,
                env=self.env,
                cwd=root_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_ready()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise BenchError(f"server exited {self.proc.returncode} at start:\n{self.log_tail()}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                status, _, _ = self.get("/api/status", timeout=2)
                if status == 200:
                    return
            self.conn = None
            time.sleep(self.poll)
        raise BenchError(f"server not ready within {self.timeout:.0f} s:\n{self.log_tail()}")

    def get(self, path: str, timeout: float | None = None) -> tuple[int, float, bytes]:
        """(status, seconds from sending to the last byte, body) over a kept-alive connection."""
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout or self.timeout)
            try:
                started = time.perf_counter()
                self.conn.request("GET", path, headers={"Authorization": f"token {self.token}"})
                resp = self.conn.getresponse()
                body = resp.read()
                return resp.status, time.perf_counter() - started, body
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def kernelspecs(self) -> tuple[int, float, dict[str, Any]]:
        status, seconds, body = self.get("/api/kernelspecs")
        specs: dict[str, Any] = {}
        if status == 200:
            specs = json.loads(body)["kernelspecs"]
        return status, seconds, specs

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def __exit__(self, *exc: object) -> None:
        if self.conn is not None:
            self.conn.close()
        if self.proc is None or self.proc.poll() is not None:
            return
        common.stop_group(self.proc, 5)


# --------------------------------------------------------------------------- what a listing shows


def spec_prefixes(spec: dict[str, Any]) -> set[str]:
    """Every environment prefix a kernelspec model points at (kernelkeeper's, the peers', any argv)."""
    found: set[str] = set()
    body = spec.get("spec") or {}
    meta = body.get("metadata") or {}
    marker = meta.get("kernelkeeper")
    if isinstance(marker, dict) and marker.get("prefix"):
        found.add(str(marker["prefix"]))
    if meta.get("venv_env_path"):
        found.add(str(meta["venv_env_path"]))
    for var in ("VIRTUAL_ENV", "CONDA_PREFIX"):
        value = (body.get("env") or {}).get(var)
        if value:
            found.add(str(value))
    argv = body.get("argv") or []
    if argv and os.path.isabs(str(argv[0])):
        found.add(os.path.dirname(os.path.dirname(str(argv[0]))))
    return {os.path.realpath(p) for p in found}


def listed(specs: dict[str, Any], expected: set[str]) -> int:
    seen: set[str] = set()
    for spec in specs.values():
        seen |= spec_prefixes(spec) & expected
    return len(seen)


# --------------------------------------------------------------------------- results


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


@dataclass
class Change:
    first_ms: float
    first_shows: bool
    visible_s: float | None  # from the change to the end of the first response that lists it
    visible_ms: float | None  # that response's own latency
    requests: int
    bound_s: float
    max_ms: float = 0.0  # the slowest request while waiting


@dataclass
class Result:
    manager: str
    size: int
    expected: int
    listed: int = 0
    total: int = 0
    body_kb: float = 0.0
    first_ms: float | None = None
    warm: list[float] = field(default_factory=list)
    spaced: list[float] = field(default_factory=list)
    change: Change | None = None
    error: str | None = None
    missed: dict[str, int] = field(default_factory=dict)
    note: str = ""

    @property
    def median(self) -> float | None:
        return statistics.median(self.warm) * 1000 if self.warm and self.error is None else None

    @property
    def spaced_median(self) -> float | None:
        return statistics.median(self.spaced) * 1000 if self.spaced and self.error is None else None


def new_environment(box: Sandbox, home: Path, tag: str) -> tuple[Path, Path]:
    """A fresh venv with ipykernel's files in a new project, renamed into ~/projects at once.

    Returns (project folder, environment prefix). Built in the sandbox first (a real
    ``python -m venv --without-pip``, then the files ``pip install ipykernel`` leaves that the
    managers look at), so the farm sees one atomic change: a new folder in ~/projects.
    """
    base = PYENV
    python = next(
        (p / "bin" / "python3.11" for p in sorted(base.glob("3.11.*")) if (p / "bin" / "python3.11").exists()),
        Path(sys.executable),
    )
    minor = subprocess.run(
        [str(python), "-c", "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.strip()
    stage = box.path("stage", tag) / f"kkbench-new-{tag}"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    (stage / "pyproject.toml").write_text(f'[project]\nname = "kkbench-new-{tag}"\nversion = "0.1.0"\n')
    (stage / ".git").mkdir()
    (stage / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    prefix = stage / ".venv"
    subprocess.run([str(python), "-m", "venv", "--without-pip", str(prefix)], check=True, timeout=60)
    sp = prefix / "lib" / f"python{minor}" / "site-packages"
    for dist, ver in (("ipykernel", "6.29.5"), ("ipython", "8.26.0")):
        d = sp / f"{dist}-{ver}.dist-info"
        d.mkdir(parents=True)
        (d / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {ver}\n")
        (d / "INSTALLER").write_text("pip\n")
        (d / "RECORD").write_text("")
    (sp / "ipykernel").mkdir()
    (sp / "ipykernel" / "__init__.py").write_text('__version__ = "6.29.5"\n')
    kdir = prefix / "share" / "jupyter" / "kernels" / "python3"
    kdir.mkdir(parents=True)
    kernel = {"argv": ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"], "display_name": "Python 3"}
    (kdir / "kernel.json").write_text(json.dumps(kernel) + "\n")
    (prefix / "bin" / "ipython").write_text(f"#!{prefix}/bin/python\nfrom IPython import start_ipython\n")
    (prefix / "bin" / "ipython").chmod(0o755)
    target = home / "projects" / stage.name
    target.parent.mkdir(exist_ok=True)
    os.rename(stage, target)
    return target, Path(os.path.realpath(target / ".venv"))


def time_change(server: Server, box: Sandbox, home: Path, tag: str, bound: float) -> Change:
    """Add an environment, time the first request after it, then poll until it is listed (bounded)."""
    project, prefix = new_environment(box, home, tag)
    t0 = time.perf_counter()
    try:
        want = {str(prefix)}
        _, first, specs = server.kernelspecs()
        shows = listed(specs, want) == 1
        change = Change(first * 1000, shows, None, None, 1, bound, first * 1000)
        if shows:
            change.visible_s, change.visible_ms = time.perf_counter() - t0, first * 1000
            return change
        while time.perf_counter() - t0 < bound:
            time.sleep(0.05)
            _, seconds, specs = server.kernelspecs()
            change.requests += 1
            change.max_ms = max(change.max_ms, seconds * 1000)
            if listed(specs, want):
                change.visible_s, change.visible_ms = time.perf_counter() - t0, seconds * 1000
                break
        return change
    finally:
        shutil.rmtree(project, ignore_errors=True)


def warm_up(server: Server, res: Result, expected: set[str], layouts: dict[str, str]) -> None:
    """The first request (cold), then requests until two listings in a row agree."""
    status, first, body = server.get("/api/kernelspecs")
    res.first_ms = first * 1000
    if status != 200:
        res.error = f"HTTP {status}"
        return
    deadline = time.monotonic() + 120
    previous = b""
    while time.monotonic() < deadline:
        status, _, body = server.get("/api/kernelspecs")
        if status != 200:
            res.error = f"HTTP {status}"
            return
        if body == previous:
            break
        previous = body
        time.sleep(0.3)
    specs = json.loads(body)["kernelspecs"]
    res.listed, res.total, res.body_kb = listed(specs, expected), len(specs), len(body) / 1024
    seen: set[str] = set()
    for spec in specs.values():
        seen |= spec_prefixes(spec)
    for prefix in sorted(expected - seen):
        res.missed[layouts[prefix]] = res.missed.get(layouts[prefix], 0) + 1


def interleaved(servers: list[tuple[Server, Result]], rounds: int, pause: float, spaced: bool) -> None:
    """`rounds` rounds of one request to each server (rotating who goes first), `pause` s between rounds."""
    live = [(s, r) for s, r in servers if r.error is None]
    for i in range(rounds):
        if pause:
            time.sleep(pause)
        order = live[i % len(live) :] + live[: i % len(live)] if live else []
        for server, res in order:
            status, seconds, _ = server.get("/api/kernelspecs")
            if status != 200:
                res.error = f"HTTP {status}"
                continue
            (res.spaced if spaced else res.warm).append(seconds)


# --------------------------------------------------------------------------- configuration of each manager


def write_config(config_dir: Path, data: dict[str, Any]) -> None:
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "jupyter_server_config.json").write_text(json.dumps(data, indent=1) + "\n")


def kk_config() -> dict[str, Any]:
    # list_all: every kernel in /api/kernelspecs, as stock lists every written kernelspec (a server's default is
    # the short list since issue 16, with which the provider's rows would list one kernel).
    return {"KernelKeeperSpecManager": {"env_paths": list(STANDALONE_DIRS), "list_all": True}}


NBV_REGISTER = """
import json, sys
from nb_venv_kernels.registry import register_environment
n = 0
for p in json.load(open(sys.argv[1])):
    try:
        n += register_environment(p, require_kernelspec=True)[0]
    except ValueError:
        pass
print(n)
"""

PROFILE_WORKER = """
import cProfile, io, json, os, pstats, statistics, sys, time
from traitlets import Unicode
from traitlets.config import Config, Configurable
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_server.services.kernelspecs.handlers import is_kernelspec_model, kernelspec_model
from kernelkeeper.provider import KernelKeeperSpecManager
from kernelkeeper.discovery import changed, discover
class App(Configurable):  # the manager's parent inside a server: it gives the base_url
    base_url = Unicode("/")
cfg = Config(json.load(open(os.path.join(os.environ["JUPYTER_CONFIG_DIR"], "jupyter_server_config.json"))))
m = KernelKeeperSpecManager(config=cfg, parent=App())
m.cache_seconds = m._cache.cache_seconds = 3600.0  # the per-request work alone, no revalidation
while m._cache.scans < 1:
    m.get_all_specs(); time.sleep(0.05)
def med(f, n=15):
    ts = []
    for _ in range(n):
        t = time.perf_counter(); f(); ts.append(time.perf_counter() - t)
    return statistics.median(ts) * 1000
class H:
    base_url = "/"
def handler(specs):  # what MainKernelSpecHandler does with get_all_specs() (there: one thread task per non-model)
    model = {n: i if is_kernelspec_model(i) else kernelspec_model(H, n, i["spec"], i["resource_dir"])
             for n, i in specs.items()}
    return json.dumps({"default": "python3", "kernelspecs": model})
kk_specs = m.get_all_specs()
out = {
  "kernels": len(kk_specs),
  "models": sum(map(is_kernelspec_model, kk_specs.values())),
  "watched": len(m._cache._snapshot),
  "get_all_specs_ms": med(m.get_all_specs),
  "handler_ms": med(lambda: handler(kk_specs)),
  "json_kb": len(handler(kk_specs)) / 1024,
  "revalidate_ms": med(lambda: changed(m._cache._snapshot)),
  "discover_ms": med(lambda: discover(m._context()), n=3),
}
os.environ["JUPYTER_DATA_DIR"] = sys.argv[1]
s = KernelSpecManager()
stock_specs = s.get_all_specs()
out["stock_kernels"] = len(stock_specs)
out["stock_get_all_specs_ms"] = med(s.get_all_specs)
out["stock_handler_ms"] = med(lambda: handler(stock_specs))
out["stock_json_kb"] = len(handler(stock_specs)) / 1024
prof = cProfile.Profile(); prof.enable()
for _ in range(10): m.get_all_specs()
prof.disable()
buf = io.StringIO(); pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(12)
out["profile"] = buf.getvalue()
print(json.dumps(out))
"""


# --------------------------------------------------------------------------- one size


def bench_size(
    box: Sandbox, n: int, seed: int, k: int, spaced: int, peers: Path | None, timeout: float
) -> tuple[list[Result], dict[str, Any]]:
    farm_root = box.root / f"farm-{n}"
    manifest = make_farm(farm_root, n, seed)
    home = Path(manifest.home)
    expected = {e.prefix for e in manifest.envs if e.has_ipykernel and not e.broken}
    layouts = {e.prefix: e.layout for e in manifest.envs}
    extras: dict[str, Any] = {"n": manifest.n, "expected": len(expected), "build_s": manifest.build_seconds}
    dev_python = Path(sys.executable)
    print(f"N={n}: {manifest.n} environments, {len(expected)} healthy with ipykernel", file=sys.stderr)

    def env_for(tag: str) -> dict[str, str]:
        return box.env(home, f"{n}-{tag}", box.path(f"{n}-{tag}", "data"), box.path(f"{n}-{tag}", "config"))

    # kernelkeeper's default discovery (no settings), for the record.
    env = env_for("default")
    env.pop("KERNELKEEPER_CONFIG")
    envs = json.loads(run([str(dev_python), "-m", "kernelkeeper", "envs", "--json"], env, timeout)[1])
    found = {os.path.realpath(e["prefix"]) for e in envs if e.get("healthy") and e.get("has_ipykernel")}
    extras["kk_default_found"] = len(found & expected)

    # Each manager's server and what it is told.
    plans: list[tuple[str, Path, str, dict[str, str]]] = []
    env = env_for("kk")  # (a) kernelkeeper's provider, nothing written
    write_config(Path(env["JUPYTER_CONFIG_DIR"]), kk_config())
    plans.append(("kernelkeeper provider", dev_python, KK_CLASS, env))
    env = env_for("stock")  # (b) the kernelspecs `kernelkeeper sync` writes for the same environments
    sync = json.loads(run([str(dev_python), "-m", "kernelkeeper", "sync", "--json"], env, timeout)[1])
    extras["sync_actions"] = len(sync.get("actions", []))
    extras["written"] = len(list((Path(env["JUPYTER_DATA_DIR"]) / "kernels").glob("*/kernel.json")))
    plans.append(("stock KernelSpecManager", dev_python, STOCK_CLASS, env))
    if peers is not None:
        env = env_for("ek")  # (c1) environment_kernels
        write_config(Path(env["JUPYTER_CONFIG_DIR"]), env_kernels_config(conda_extra=["~/work/conda-envs"]))
        plans.append(("environment_kernels", peers, EK_CLASS, env))
        env = env_for("nbv")  # (c2) nb_venv_kernels: every farm environment offered to its registry
        write_config(Path(env["JUPYTER_CONFIG_DIR"]), {})
        todo = box.root / f"nbv-{n}.json"
        todo.write_text(json.dumps([e.prefix for e in manifest.envs]))
        extras["nbv_registered"] = int(run([str(peers), "-c", NBV_REGISTER, str(todo)], env, timeout)[1].strip())
        plans.append(("nb_venv_kernels", peers, NBV_CLASS, env))

    results = [Result(name, n, len(expected)) for name, *_ in plans]
    with contextlib.ExitStack() as stack:
        servers: list[tuple[Server, Result]] = []
        for (_name, python, cls, env), res in zip(plans, results):
            tag = {KK_CLASS: "kk", STOCK_CLASS: "stock", EK_CLASS: "ek", NBV_CLASS: "nbv"}[cls]
            servers.append((stack.enter_context(Server(python, cls, env, box.path(f"{n}-{tag}"), timeout)), res))
        for server, res in servers:
            warm_up(server, res, expected, layouts)
            if res.error:
                res.error = f"{res.error}: {server_error(server.log_tail(20000))}"
        interleaved(servers, k, 0.0, spaced=False)
        interleaved(servers, spaced, 1.2, spaced=True)
        for (server, res), (_, _, cls, _) in zip(servers, plans):
            if res.error is None:
                bound = 10.0 if cls == KK_CLASS else 2.0
                res.change = time_change(server, box, home, f"{cls.split('.')[0]}{n}", bound)
    return results, extras


def server_error(log: str) -> str:
    """The exception line of the last traceback in a server log."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    for line in reversed(lines):
        if "Error:" in line or "Exception:" in line:
            return line[:300]
    return lines[-1][:300] if lines else "?"


def profile_kk(box: Sandbox, n: int, timeout: float) -> dict[str, Any]:
    home = Path(Manifest.load(box.root / f"farm-{n}").home)
    env = box.env(home, f"{n}-kk", box.path(f"{n}-kk", "data"), box.path(f"{n}-kk", "config"))
    _, out = run([sys.executable, "-c", PROFILE_WORKER, str(box.path(f"{n}-stock", "data"))], env, timeout)
    result: dict[str, Any] = json.loads(out)
    return result


# --------------------------------------------------------------------------- report


def ms(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "—"
    return f"{a / b:.2f}×"


def change_cell(c: Change | None) -> str:
    if c is None:
        return "—"
    first = f"first request {ms(c.first_ms)} ms, {'lists it' if c.first_shows else 'not yet'}"
    if c.visible_s is None:
        return f"{first}; not listed within {c.bound_s:.0f} s ({c.requests} requests)"
    return (
        f"{first}; listed {c.visible_s:.2f} s after the change ({c.requests} requests; "
        f"slowest meanwhile {ms(c.max_ms)} ms)"
    )


def report(
    path: Path,
    command: str,
    facts: list[str],
    results: list[Result],
    extras: dict[int, dict[str, Any]],
    prof: dict[str, Any] | None,
    k: int,
    spaced: int,
    wall: float,
) -> None:
    by = {(r.size, r.manager): r for r in results}
    lines = [
        "## Provider: GET /api/kernelspecs",
        "",
        f"Reproduce: `{command}` (one run, {wall:.0f} s; same farms, same machine session).",
        "",
        *facts,
        "",
        "All four servers of a size run at once and are asked in turn (round-robin, rotating who goes first), "
        "so every manager is measured under the same machine load. **warm** = median and p95 of "
        f"{k} rounds back to back (kernelkeeper then sees a request every few hundred ms: some are served from "
        f"its cache, some revalidate). **spaced** = median of {spaced} rounds each started 1.2 s after the "
        "previous, i.e. past kernelkeeper's `cache_seconds` (1 s): each of its requests makes the worker stat "
        "every watched folder before answering. **listed** = healthy farm environments with ipykernel the "
        "listing points at (by prefix) / all of them (kernels in the response). Ratios are of warm medians "
        "(spaced medians in brackets). Times in ms, measured by the client from sending the request to the "
        "last byte.",
        "",
        "| N | manager | listed (total) | first | warm median | warm p95 | spaced median "
        "| vs stock | vs kk | body KB | after a new environment appears |",
        "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in results:
        stock = by.get((r.size, "stock KernelSpecManager"))
        kk = by.get((r.size, "kernelkeeper provider"))
        warm = ms(r.median) if r.error is None else f"fails: {r.error.split(':')[0]}"
        p95_cell = ms(p95(r.warm) * 1000) if r.warm and r.error is None else "—"
        vs_stock = f"{ratio(r.median, stock.median if stock else None)} "
        vs_stock += f"({ratio(r.spaced_median, stock.spaced_median if stock else None)})"
        vs_kk = (
            f"{ratio(r.median, kk.median if kk else None)} ({ratio(r.spaced_median, kk.spaced_median if kk else None)})"
        )
        lines.append(
            f"| {r.size} | {r.manager} | {r.listed}/{r.expected} ({r.total}) | {ms(r.first_ms)} | {warm} "
            f"| {p95_cell} | {ms(r.spaced_median)} | {vs_stock} | {vs_kk} | {r.body_kb:.0f} "
            f"| {change_cell(r.change)} |"
        )
    lines += ["", "### Targets (warm medians; spaced in brackets)", ""]
    for n in sorted(extras):
        kk, stock = by.get((n, "kernelkeeper provider")), by.get((n, "stock KernelSpecManager"))
        if kk is None or stock is None or kk.median is None or stock.median is None:
            continue

        def verdict(ok: bool) -> str:
            return "met" if ok else "**missed**"

        line = (
            f"- N={n}: no slower than stock ({ms(kk.median)} vs {ms(stock.median)} ms): "
            f"{verdict(kk.median <= stock.median)}"
        )
        if kk.spaced_median is not None and stock.spaced_median is not None:
            line += (
                f" ({ms(kk.spaced_median)} vs {ms(stock.spaced_median)}: "
                f"{verdict(kk.spaced_median <= stock.spaced_median)})"
            )
        for peer in ("environment_kernels", "nb_venv_kernels"):
            p = by.get((n, peer))
            if p is None:
                continue
            if p.median is None:
                line += f"; faster than {peer}: it cannot serve the listing ({p.error})"
                continue
            line += f"; faster than {peer} ({ms(p.median)} ms): {verdict(kk.median < p.median)}"
            if kk.spaced_median is not None and p.spaced_median is not None:
                line += f" ({ms(p.spaced_median)}: {verdict(kk.spaced_median < p.spaced_median)})"
        lines.append(line)
    lines += ["", "### Notes per size", ""]
    for n, x in sorted(extras.items()):
        lines.append(
            f"- N={n}: farm of {x['n']} environments, {x['expected']} healthy with ipykernel (built in "
            f"{x['build_s']} s). kernelkeeper's default discovery (no settings) finds {x['kk_default_found']} of "
            f"those; with the `env_paths` below, all the table says. `kernelkeeper sync` wrote {x['written']} "
            f"kernelspecs for the stock server."
            + (f" nb_venv_kernels' registry took {x['nbv_registered']} environments." if "nbv_registered" in x else "")
        )
        for r in results:
            if r.size != n:
                continue
            if r.missed:
                missed = ", ".join(
                    f"{layout} {count}" for layout, count in sorted(r.missed.items(), key=lambda i: -i[1])
                )
                lines.append(f"  - {r.manager} does not list: {missed} (farm layouts)")
            if r.error:
                lines.append(f"  - {r.manager}: `{r.error}` (first request {ms(r.first_ms)} ms)")
    lines += [
        "",
        "### Method",
        "",
        "- Each manager runs in its own `python -m jupyter_server` (127.0.0.1, free port, token auth, "
        "`--allow-root`, `--ServerApp.kernel_spec_manager_class=...` on the command line); each server's process "
        "group is killed at the end. HOME is the farm's home; XDG_*, JUPYTER_DATA_DIR, JUPYTER_PATH, "
        "JUPYTER_CONFIG_DIR and JUPYTER_RUNTIME_DIR point into a fresh sandbox; PATH is "
        "`/usr/local/bin:/usr/bin:/bin`. "
        "The run checks that the real home's and the system's Jupyter folders did not change.",
        "- first = the first `/api/kernelspecs` after the server answered `/api/status` (cold: kernelkeeper's "
        "first scan, environment_kernels' scan). Then requests until two bodies in a row are equal (warm-up).",
        f"- kernelkeeper provider: `c.KernelKeeperSpecManager.env_paths = {list(STANDALONE_DIRS)}` (the farm "
        "keeps standalone environments there, which default discovery does not scan), everything else at its "
        "default (`cache_seconds` 1.0, `refresh_timeout` 0.25); empty JUPYTER_DATA_DIR. Its `get_all_specs()` "
        "entries are the server's REST models (made once by jupyter_server's own `kernelspec_model`, cached) plus "
        "`resource_dir`, which get_all_specs' contract asks for: that key is why its body is ~10% larger.",
        "- stock: jupyter_client's `KernelSpecManager` over the kernelspecs `kernelkeeper sync` wrote into the "
        "server's JUPYTER_DATA_DIR (the same folders as `[discovery] paths`, via KERNELKEEPER_CONFIG).",
        "- environment_kernels: `virtualenv_env_dirs` = every tool's env folder + `~/<code folder>/*{1,3}` (it "
        "globs `BASE/*/`, so project `.venv`s are out of reach), `conda_env_dirs` = `~`, `~/miniconda3/envs`, "
        "`~/.conda/envs`, `~/work/conda-envs`, `<projects>/.pixi/envs`; `use_conda_directly` off (no conda "
        "executable), `find_r_envs` off, `refresh_interval` 0 (scan on first use, then serve that). It checks each "
        "candidate by running `python -c 'import ipykernel'`: the farm's conda, pixi and pyenv prefixes are "
        "interpreter symlinks without a pyvenv.cfg, so that import runs in the real pyenv Python and fails — "
        "those misses are an artefact of the farm, not of environment_kernels.",
        "- nb_venv_kernels: every farm environment offered to `nb_venv_kernels.registry.register_environment(path, "
        "require_kernelspec=True)` (what `nb_venv_kernels register` does; conda and pixi prefixes too) in the farm's "
        "home (`~/.venv/environments.txt`), then `VEnvKernelSpecManager`. It lists registered environments only "
        "and caches for 60 s.",
        "- After a change (each server in turn, after the spaced rounds): a new project with a real "
        "`python3.11 -m venv --without-pip` .venv plus the files ipykernel's install leaves (dist-info, package, "
        "share/jupyter/kernels/python3) is built in the sandbox and renamed into `~/projects` in one step; the "
        "first request after it is timed (kernelkeeper serves its cached list while its last check is under "
        "`cache_seconds` old), then requests follow 50 ms apart until one lists it (kernelkeeper: up to 10 s; "
        "the others, which cannot see it by design, 2 s).",
        f"- Peers run from `{PEERS_VENV.relative_to(REPO)}` (made on first use) with the same jupyter_server and "
        "jupyter_client versions as the dev venv.",
    ]
    if prof is not None:
        lines += [
            "",
            f"### Where kernelkeeper's warm request goes (N={prof['n']}, in-process, medians of 15)",
            "",
            f"- `get_all_specs()` inside a server (its parent gives the base_url): {ms(prof['get_all_specs_ms'])} ms "
            f"for {prof['kernels']} kernels, {prof['models']} of them ready REST models (cached; rebuilt only when "
            f"discovery, a kernel.json or a kernelspec folder changes); the stock manager over {prof['stock_kernels']} "
            f"written kernelspecs: {ms(prof['stock_get_all_specs_ms'])} ms (it reads every kernel.json each time).",
            f"- The server's handler on top: a ready model is used as is, any other entry becomes one through "
            f"`kernelspec_model` (2 exists + 1 glob in its resource_dir; in jupyter_server 2.x one thread task "
            f"each), then json.dumps: {ms(prof['handler_ms'])} ms for kernelkeeper's {prof['json_kb']:.0f} KB vs "
            f"{ms(prof['stock_handler_ms'])} ms for stock's {prof['stock_json_kb']:.0f} KB (serially here; the "
            "thread tasks cost the server more).",
            f"- Revalidation after `cache_seconds` (`changed()` over {prof['watched']} watched folders, worker "
            f"thread, the request waits for it): {ms(prof['revalidate_ms'])} ms. A full rescan (`discover()`): "
            f"{ms(prof['discover_ms'])} ms; when the last one took longer than `refresh_timeout` (250 ms), a request "
            "after a change takes the cached list at once instead of waiting, and the change shows once the rescan "
            "ends.",
            "",
            "cProfile of 10 `get_all_specs()` calls, by own time:",
            "",
            "```",
            prof["profile"].strip()[:4000],
            "```",
        ]
    path.write_text("\n".join(lines) + "\n")


def machine_facts(root: Path, peers: dict[str, str] | None) -> list[str]:
    names = ("kernelkeeper", "jupyter_server", "jupyter_client", "tornado", "traitlets")
    versions = ", ".join(f"{name} {dist_version(name)}" for name in names)
    facts = [
        f"- {common.machine()}, load average at start {common.load_average()}",
        f"- {versions}; Python {platform.python_version()} (`{sys.executable}`)",
        f"- farms and sandbox under `{root}` ({common.filesystem(root)}); farm seed as below",
    ]
    if peers is not None:
        facts.append(
            f"- peers: environment_kernels {peers['environment_kernels']}, nb_venv_kernels "
            f"{peers['nb_venv_kernels']} with jupyter_server {peers['jupyter_server']} / "
            f"jupyter_client {peers['jupyter_client']}, Python {peers['python']} (`{PEERS_VENV / 'bin' / 'python'}`)"
        )
    return facts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("-k", type=int, default=30, help="warm requests per server (default 30)")
    parser.add_argument("--spaced", type=int, default=8, help="kk requests 1.2 s apart (default 8)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=180.0, help="bound for any one step, in s")
    parser.add_argument("--no-peers", action="store_true")
    common.sandbox_options(parser)
    parser.add_argument("--out", type=Path, default=BENCH / "RESULTS-provider.md")
    load = parser.add_argument_group("--load: the provider under load (issue 13); its section of --out is replaced")
    load.add_argument("--load", action="store_true", help="run the load benchmark instead (sizes 1000 2000)")
    load.add_argument("--starts", type=int, default=3, help="server starts per manager (default 3)")
    load.add_argument("--rounds", type=int, default=10, help="rounds of 50 concurrent requests (default 10)")
    load.add_argument("--churn-seconds", type=float, default=60.0)
    load.add_argument("--idle-seconds", type=float, default=600.0, help="idle window (default 600 = 10 min)")
    load.add_argument("--latency-repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if args.load:
        from bench_provider_load import main_load

        if args.sizes == [10, 100, 1000]:
            args.sizes = [1000, 2000]
        return main_load(args, argv)
    started = time.perf_counter()
    guard = common.Guard(
        common.guarded_paths(
            (".local/share/jupyter", ".jupyter", ".venv", ".uv", ".config/kernelkeeper"), python_dirs=False
        )
    )
    peer_versions = None if args.no_peers else peers_venv()
    peers = None if peer_versions is None else PEERS_VENV / "bin" / "python"
    results: list[Result] = []
    extras: dict[int, dict[str, Any]] = {}
    prof: dict[str, Any] | None = None
    with common.sandbox(Sandbox, "kk-provider-bench-", args.tmp, args.keep) as box:
        facts = machine_facts(box.root, peer_versions)
        facts = [f.replace("farm seed as below", f"farm seed {args.seed}") for f in facts]
        # discovery settings for `kernelkeeper sync`/`envs`, the same folders as the provider's env_paths
        paths = ", ".join(f'"{p}"' for p in STANDALONE_DIRS)
        (box.root / "kernelkeeper.toml").write_text(f"[discovery]\npaths = [{paths}]\n")
        for n in args.sizes:
            res, extra = bench_size(box, n, args.seed, args.k, args.spaced, peers, args.timeout)
            results += res
            extras[n] = extra
        largest = max(args.sizes)
        prof = profile_kk(box, largest, args.timeout)
        prof["n"] = largest
    changed = guard.changes("bench_provider")
    if changed:
        raise BenchError(f"the run changed guarded folders: {list(changed)}")
    command = common.reproduce_command("bench_provider.py", argv)
    report(args.out, command, facts, results, extras, prof, args.k, args.spaced, time.perf_counter() - started)
    print(args.out.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
