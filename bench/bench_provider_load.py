"""Provider under load (issue 13): start-up, churn, concurrency, idle cost, change latency, memory.

At each size (default 1,000 and 2,000 environments, bench/farm.py) two real jupyter_server
processes run the same farm: kernelkeeper's provider enabled the way `kernelkeeper jupyter
enable` does it (the server extension: it also adds the kernel list's handler), and the
stock ``KernelSpecManager`` over the kernelspecs ``kernelkeeper sync`` wrote. Measured, for both:

* start: process start to the first 200 on ``/api/status`` (polled every 20 ms), then the
  first ``GET /api/kernelspecs`` (kernelkeeper: the first start scans and saves its state, the
  later starts answer from it); ``--starts`` starts each, alternating;
* concurrency: 50 ``GET /api/kernelspecs`` at once (one connection each), ``--rounds`` rounds,
  while ``/api/status`` is sampled every 50 ms on its own connection;
* churn: for ``--churn-seconds`` a new environment (a venv with ipykernel's files, built beside
  the farm and renamed into ``~/projects``) every 0.1 s, the oldest removed once ten exist, while
  ``/api/kernelspecs`` is requested every 0.5 s and ``/api/status`` sampled every 50 ms;
* idle: ``--idle-seconds`` with nothing changing and ``/api/kernelspecs`` every 10 s (a polling
  JupyterLab): the server's CPU time from /proc; and, in-process, the paths kernelkeeper's checks
  stat per minute (one check a second);
* change latency: a new environment renamed in, then requests every 50 ms until it is listed;
  the same for one renamed out;
* memory: the server's RSS before and after the churn.

    python bench/bench_provider.py --load --sizes 1000 2000 --idle-seconds 60
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import common
from bench_provider import STOCK_CLASS, Sandbox, Server, kk_config, listed, write_config
from farm import make_farm

BEGIN, END = "<!-- provider-load:begin -->", "<!-- provider-load:end -->"


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def one_get(port: int, token: str, path: str, timeout: float = 60) -> tuple[int, float, bytes]:
    """A request on a connection of its own (as fifty browser tabs make them)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        started = time.perf_counter()
        conn.request("GET", path, headers={"Authorization": f"token {token}"})
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, time.perf_counter() - started, body
    finally:
        conn.close()


SAMPLER = """
import http.client, json, sys, threading, time
port, token, path, every = int(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4])
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
ms, errors = [], 0
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
headers = {"Authorization": "token " + token}
next_at = time.monotonic()
while not stop.is_set():
    try:
        started = time.perf_counter()
        conn.request("GET", path, headers=headers)
        conn.getresponse().read()
        ms.append((time.perf_counter() - started) * 1000)
    except (OSError, http.client.HTTPException):
        errors += 1
        conn.close()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    next_at += every
    stop.wait(max(0.0, next_at - time.monotonic()))
print(json.dumps({"ms": ms, "errors": errors}))
"""


class Sampler:
    """GET ``path`` every ``every`` seconds on a kept-alive connection; latencies in ms.

    In a process of its own: the benchmark's other threads (fifty clients, the churn's
    file copies) hold this process's GIL, and a sampler thread among them would measure
    its own waiting as the server's.
    """

    def __init__(self, server: Server, path: str, every: float) -> None:
        self.server, self.path, self.every = server, path, every
        self.ms: list[float] = []
        self.errors = 0
        self._proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        argv = [sys.executable, "-c", SAMPLER, str(self.server.port), self.server.token, self.path, str(self.every)]
        self._proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        time.sleep(0.3)  # its imports, before the measured work starts

    def stop(self) -> list[float]:
        assert self._proc is not None
        out, _ = self._proc.communicate("", timeout=120)
        data = json.loads(out)
        self.ms, self.errors = data["ms"], data["errors"]
        return self.ms


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Envs:
    """Environments made fast: a template venv copied beside the farm, renamed into ~/projects in one step."""

    def __init__(self, box: Sandbox, home: Path, tag: str) -> None:
        from bench_provider import new_environment

        self.home, self.tag = home, tag
        self.stage = box.path("load-stage", tag)
        project, _prefix = new_environment(box, home, f"template-{tag}")
        self.template = self.stage / "template"
        shutil.rmtree(self.template, ignore_errors=True)
        os.rename(project, self.template)
        self.count = 0

    def make(self) -> Path:
        self.count += 1
        name = f"kkload-{self.tag}-{self.count}"
        staged = self.stage / name
        shutil.copytree(self.template, staged, symlinks=True)
        (staged / "pyproject.toml").write_text(f'[project]\nname = "{name}"\nversion = "0.1.0"\n')
        target = self.home / "projects" / name
        os.rename(staged, target)
        return target

    def remove(self, project: Path) -> None:
        gone = self.stage / f"gone-{project.name}"
        os.rename(project, gone)
        shutil.rmtree(gone, ignore_errors=True)


@dataclass
class Row:
    manager: str
    n: int
    kernels: int = 0
    starts: list[float] = field(default_factory=list)
    first_specs: list[tuple[float, int]] = field(default_factory=list)  # (ms, listed) per start
    cold_first: tuple[float, int] | None = None
    conc: list[float] = field(default_factory=list)
    conc_status: list[float] = field(default_factory=list)
    churn_specs: list[float] = field(default_factory=list)
    churn_status: list[float] = field(default_factory=list)
    idle_cpu_pct: float | None = None
    rss_before: float | None = None
    rss_after: float | None = None
    new_s: list[float] = field(default_factory=list)
    gone_s: list[float] = field(default_factory=list)
    etag_ms: float | None = None
    gzip_kb: float | None = None
    body_kb: float | None = None


def server_env(box: Sandbox, home: Path, n: int, tag: str) -> dict[str, str]:
    return box.env(home, f"{n}-{tag}", box.path(f"{n}-{tag}", "data"), box.path(f"{n}-{tag}", "config"))


def start(python: Path, cls: str | None, env: dict[str, str], workdir: Path, timeout: float) -> Server:
    server = Server(python, cls or "", env, workdir, timeout)
    server.poll = 0.02
    return server


def measure_start(server: Server, expected: set[str]) -> tuple[float, float, int]:
    """(s to the first 200 on /api/status, ms of the first /api/kernelspecs, environments it listed)."""
    t0 = time.perf_counter()
    server.__enter__()
    ready = time.perf_counter() - t0
    _, seconds, specs = server.kernelspecs()
    return ready, seconds * 1000, listed(specs, expected)


def concurrency(server: Server, rounds: int, row: Row) -> None:
    sampler = Sampler(server, "/api/status", 0.05)
    sampler.start()
    for _ in range(rounds):
        barrier = threading.Barrier(50)
        out: list[float] = []

        def one(barrier: threading.Barrier = barrier, out: list[float] = out) -> None:
            barrier.wait(30)
            status, seconds, _ = one_get(server.port, server.token, "/api/kernelspecs")
            if status == 200:
                out.append(seconds * 1000)

        threads = [threading.Thread(target=one, daemon=True) for _ in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        row.conc += out
        time.sleep(0.3)
    row.conc_status = sampler.stop()


def churn(server: Server, envs: Envs, seconds: float, row: Row) -> None:
    status = Sampler(server, "/api/status", 0.05)
    specs = Sampler(server, "/api/kernelspecs", 0.5)
    live: deque[Path] = deque()
    status.start()
    specs.start()
    next_at = time.monotonic()
    stop = next_at + seconds
    try:
        while time.monotonic() < stop:
            live.append(envs.make())
            if len(live) > 10:
                envs.remove(live.popleft())
            next_at += 0.1
            time.sleep(max(0.0, next_at - time.monotonic()))
    finally:
        row.churn_status = status.stop()
        row.churn_specs = specs.stop()
        while live:
            envs.remove(live.popleft())


def latency(server: Server, envs: Envs, row: Row, repeats: int, bound: float = 15.0) -> None:
    for _ in range(repeats):
        project = envs.make()
        prefix = {os.path.realpath(project / ".venv")}
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < bound:
            if listed(server.kernelspecs()[2], prefix):
                row.new_s.append(time.perf_counter() - t0)
                break
            time.sleep(0.05)
        time.sleep(1.5)
        envs.remove(project)
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < bound:
            if not listed(server.kernelspecs()[2], prefix):
                row.gone_s.append(time.perf_counter() - t0)
                break
            time.sleep(0.05)
        time.sleep(1.5)


CHECKS_WORKER = """
import json, os, sys, time
from traitlets.config import Config
from kernelkeeper.provider import KernelKeeperSpecManager
cfg = Config(json.load(open(os.path.join(os.environ["JUPYTER_CONFIG_DIR"], "jupyter_server_config.json"))))
m = KernelKeeperSpecManager(config=cfg, persist_state=False)
while m._cache.scans < 1:
    m._cache.get(); time.sleep(0.05)
c = m._cache
seconds = float(sys.argv[1])
checks, paths, cpu0, end = c.checks, c.paths_checked, time.process_time(), time.monotonic() + seconds
while time.monotonic() < end:
    time.sleep(1.0)
    c._checked = 0.0  # past cache_seconds: a check, as a request would make
    c.get()
print(json.dumps({"checks": c.checks - checks, "paths": c.paths_checked - paths, "scans": c.scans - 1,
                  "cpu": time.process_time() - cpu0, "watched": len(c._found.watched),
                  "polled": len(c._entry.watch.polled) if c._entry.watch else -1, "seconds": seconds}))
"""


def bench_size(box: Sandbox, n: int, args: Any) -> tuple[list[Row], dict[str, Any]]:
    manifest = make_farm(box.root / f"farm-{n}", n, args.seed)
    home = Path(manifest.home)
    expected = {e.prefix for e in manifest.envs if e.has_ipykernel and not e.broken}
    extras: dict[str, Any] = {"n": manifest.n, "expected": len(expected)}
    python = Path(sys.executable)
    print(f"N={n}: {manifest.n} environments, {len(expected)} healthy with ipykernel", file=sys.stderr)
    kk_env = server_env(box, home, n, "kk")
    config_dir = Path(kk_env["JUPYTER_CONFIG_DIR"])
    write_config(config_dir, kk_config())
    (config_dir / "jupyter_server_config.d").mkdir(exist_ok=True)  # what `kernelkeeper jupyter enable` writes
    (config_dir / "jupyter_server_config.d" / "kernelkeeper.json").write_text(
        json.dumps({"ServerApp": {"jpserver_extensions": {"kernelkeeper": True}}})
    )
    stock_env = server_env(box, home, n, "stock")
    common.run([str(python), "-m", "kernelkeeper", "sync", "--json"], stock_env, args.timeout)
    rows = {"kk": Row("kernelkeeper provider", n), "stock": Row("stock KernelSpecManager", n)}
    plans = {"kk": (None, kk_env), "stock": (STOCK_CLASS, stock_env)}

    # start-up: alternating, kernelkeeper's first start is the cold one (no saved state yet)
    for i in range(args.starts + 1):
        for tag in ("stock", "kk"):
            if tag == "stock" and i == 0:
                continue
            cls, env = plans[tag]
            # One working folder per manager, as a real server restarts in the same one: discovery's context (and
            # so the saved state's key) includes it.
            server = start(python, cls, env, box.path(f"{n}-{tag}"), args.timeout)
            try:
                ready, first_ms, count = measure_start(server, expected)
                if tag == "kk" and i == 0:
                    rows[tag].cold_first = (first_ms, count)
                    time.sleep(8)  # its state is saved from the worker after the first scan
                else:
                    rows[tag].starts.append(ready)
                    rows[tag].first_specs.append((first_ms, count))
            finally:
                server.__exit__(None, None, None)

    with contextlib.ExitStack() as stack:
        servers = {}
        for tag, (cls, env) in plans.items():
            server = start(python, cls, env, box.path(f"{n}-{tag}"), args.timeout)
            servers[tag] = stack.enter_context(server)
        for tag, server in servers.items():  # warm: until two answers in a row are equal
            last = None
            for _ in range(40):
                _, _, body = server.get("/api/kernelspecs")
                if body == last:
                    break
                last = body
                time.sleep(0.3)
            specs = json.loads(body)["kernelspecs"]
            rows[tag].kernels = len(specs)
            rows[tag].body_kb = len(body) / 1024
        kk = servers["kk"]
        rows["kk"].etag_ms, rows["kk"].gzip_kb = etag_probe(kk)
        # idle: both servers at once, a poll every 10 s each
        pids = {tag: s.proc.pid for tag, s in servers.items() if s.proc is not None}
        cpu0 = {tag: proc_cpu_seconds(pid) for tag, pid in pids.items()}
        t0 = time.monotonic()
        while time.monotonic() - t0 < args.idle_seconds:
            time.sleep(min(10.0, max(0.0, args.idle_seconds - (time.monotonic() - t0))))
            for server in servers.values():
                server.get("/api/kernelspecs")
        wall = time.monotonic() - t0
        for tag, pid in pids.items():
            rows[tag].idle_cpu_pct = 100 * (proc_cpu_seconds(pid) - cpu0[tag]) / wall
        _, out = common.run([str(python), "-c", CHECKS_WORKER, str(args.idle_seconds)], kk_env, args.timeout * 4)
        extras["checks"] = json.loads(out)
        for tag, server in servers.items():
            print(f"N={n} {tag}: concurrency", file=sys.stderr)
            concurrency(server, args.rounds, rows[tag])
        for tag, server in servers.items():
            print(f"N={n} {tag}: churn", file=sys.stderr)
            envs = Envs(box, home, f"{n}{tag}")
            rows[tag].rss_before = proc_rss_mb(pids[tag])
            churn(server, envs, args.churn_seconds, rows[tag])
            rows[tag].rss_after = proc_rss_mb(pids[tag])
            time.sleep(3)
        print(f"N={n}: change latency", file=sys.stderr)
        latency(kk, Envs(box, home, f"{n}lat"), rows["kk"], args.latency_repeats)
    return list(rows.values()), extras


def etag_probe(server: Server) -> tuple[float | None, float | None]:
    """(ms of a 304 answer to If-None-Match, KB of the gzipped body)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        auth = {"Authorization": f"token {server.token}"}
        conn.request("GET", "/api/kernelspecs", headers={**auth, "Accept-Encoding": "gzip"})
        resp = conn.getresponse()
        body = resp.read()
        etag = resp.getheader("Etag")
        gz = len(body) / 1024 if resp.getheader("Content-Encoding") == "gzip" else None
        if etag is None:
            return None, gz
        times = []
        for _ in range(20):
            started = time.perf_counter()
            conn.request("GET", "/api/kernelspecs", headers={**auth, "If-None-Match": etag})
            resp = conn.getresponse()
            resp.read()
            if resp.status == 304:
                times.append((time.perf_counter() - started) * 1000)
        return (statistics.median(times) if times else None), gz
    finally:
        conn.close()


def f(value: float | None, digits: int = 1) -> str:
    if value is None or value != value:
        return "–"
    return f"{value:.{digits}f}" if value < 100 else f"{value:.0f}"


def report(
    out: Path, command: str, facts: list[str], rows: list[Row], extras: dict[int, dict[str, Any]], took: float
) -> None:
    lines = [
        BEGIN,
        "## Provider under load (issue 13)",
        "",
        f"Reproduce (one run, {took:.0f} s; both managers over the same farm, same machine session):",
        "",
        "```bash",
        command,
        "```",
        "",
        *facts,
        f"- load average at the end {common.load_average()}; other helpers' jobs share these 2 cores, so absolute "
        "times are noisy: compare the two managers of a size, measured in the same minutes",
        "",
        "Times in ms unless said. **start** = process start to the first 200 on `/api/status`, median of the starts "
        "(kernelkeeper: starts with a saved state; the cold first start is in **first list**). **first list** = the "
        "first `GET /api/kernelspecs` after start, ms (healthy farm environments with ipykernel it listed / all). "
        "**50×** = 50 concurrent `GET /api/kernelspecs` (plain, no gzip), all rounds. **status** = `/api/status` "
        "sampled every 50 ms meanwhile: p99 / max / samples over 50 ms. **churn** = a new environment every 0.1 s "
        "(oldest removed), `/api/kernelspecs` every 0.5 s.",
        "",
        "| N | manager | kernels | start s | first list (cold) | 50× p50 | 50× p99 | status during 50× "
        "| churn list p50/p99 | status during churn | idle CPU % of a core | RSS MB before → after churn |",
        "| ---: | --- | ---: | ---: | --- | ---: | ---: | --- | --- | --- | ---: | --- |",
    ]
    for r in rows:
        firsts = ", ".join(f"{f(ms)} ({c}/{extras[r.n]['expected']})" for ms, c in r.first_specs)
        cold = f" (cold {f(r.cold_first[0])}, {r.cold_first[1]}/{extras[r.n]['expected']})" if r.cold_first else ""
        over = f"{sum(1 for v in r.conc_status if v > 50)} of {len(r.conc_status)}"
        cover = f"{sum(1 for v in r.churn_status if v > 50)} of {len(r.churn_status)}"
        lines.append(
            f"| {r.n} | {r.manager} | {r.kernels} | {f(statistics.median(r.starts), 2) if r.starts else '–'} "
            f"| {firsts}{cold} | {f(pct(r.conc, 0.5))} | {f(pct(r.conc, 0.99))} "
            f"| {f(pct(r.conc_status, 0.99))} / {f(max(r.conc_status, default=None))} / {over} "
            f"| {f(pct(r.churn_specs, 0.5))} / {f(pct(r.churn_specs, 0.99))} "
            f"| {f(pct(r.churn_status, 0.99))} / {f(max(r.churn_status, default=None))} / {cover} "
            f"| {f(r.idle_cpu_pct, 2)} | {f(r.rss_before)} → {f(r.rss_after)} |"
        )
    lines += ["", "### Ratios and targets", ""]
    sizes = sorted({r.n for r in rows})
    for n in sizes:
        kk = next(r for r in rows if r.n == n and r.manager.startswith("kernelkeeper"))
        st = next(r for r in rows if r.n == n and r.manager.startswith("stock"))
        ks, ss = statistics.median(kk.starts), statistics.median(st.starts)
        status_max = max([*kk.conc_status, *kk.churn_status], default=float("nan"))
        x = extras[n]["checks"]
        per_min = 60 / x["seconds"]
        lines += [
            f"- N={n}: start {ks:.2f} s vs stock {ss:.2f} s = {ks / ss:.2f}× (target ≤ 1.10×); first list after a "
            f"restart {', '.join(f(ms) for ms, _ in kk.first_specs)} ms (target ≤ 50), listing "
            f"{', '.join(str(c) for _, c in kk.first_specs)} of {extras[n]['expected']}; "
            f"50× p99 {f(pct(kk.conc, 0.99))} ms "
            f"(target ≤ 300; stock {f(pct(st.conc, 0.99))}); `/api/status` max {f(status_max)} ms under 50× and churn "
            f"(target ≤ 50; stock {f(max([*st.conc_status, *st.churn_status], default=None))})",
            f"- N={n}: idle {f(kk.idle_cpu_pct, 2)}% of one core (stock {f(st.idle_cpu_pct, 2)}%) with a request every "
            f"10 s; checks in-process, one a second: {x['checks'] * per_min:.0f} checks and {x['paths'] * per_min:.0f} "
            f"paths stat'ed per minute of {x['watched']} watched ({x['polled']} polled: missing or on a network "
            f"filesystem; inotify for the rest), {x['scans']} rescans, {100 * x['cpu'] / x['seconds']:.2f}% of a core",
            f"- N={n}: a new environment listed after {', '.join(f'{s:.2f}' for s in kk.new_s)} s, a removed one gone "
            f"after {', '.join(f'{s:.2f}' for s in kk.gone_s)} s; 304 for a matching If-None-Match in "
            f"{f(kk.etag_ms)} ms; body {f(kk.body_kb)} KB, gzipped {f(kk.gzip_kb)} KB (stock body {f(st.body_kb)} KB)",
        ]
    lines += [
        "",
        "Method: each server is a `python -m jupyter_server` subprocess (127.0.0.1, free port, token, `--allow-root`), "
        "HOME the farm's home, every Jupyter/XDG folder in the sandbox. kernelkeeper is enabled by the "
        "`jupyter_server_config.d/kernelkeeper.json` file `kernelkeeper jupyter enable` writes (the extension sets the "
        "manager and adds the kernel list handler), with `env_paths` naming the farm's standalone folders; stock runs "
        "`--ServerApp.kernel_spec_manager_class=jupyter_client.kernelspec.KernelSpecManager` over what `kernelkeeper "
        "sync` wrote. Churn and latency environments are a real `python -m venv --without-pip` with ipykernel's "
        "files, copied and renamed into `~/projects` in one step. CPU from /proc/PID/stat (utime+stime), RSS from "
        "/proc/PID/status.",
        END,
    ]
    text = out.read_text() if out.exists() else ""
    block = "\n".join(lines) + "\n"
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + block + text[text.index(END) + len(END) + 1 :]
    else:
        text = text.rstrip("\n") + "\n\n" + block
    out.write_text(text)


def main_load(args: Any, argv: list[str] | None) -> int:
    from bench_provider import machine_facts

    started = time.perf_counter()
    guard = common.Guard(
        common.guarded_paths((".local/share/jupyter", ".jupyter", ".config/kernelkeeper"), python_dirs=False)
    )
    rows: list[Row] = []
    extras: dict[int, dict[str, Any]] = {}
    with common.sandbox(Sandbox, "kk-provider-load-", args.tmp, args.keep) as box:
        facts = [x.replace("farm seed as below", f"farm seed {args.seed}") for x in machine_facts(box.root, None)]
        paths = ", ".join(f'"{p}"' for p in common.STANDALONE_DIRS)
        (box.root / "kernelkeeper.toml").write_text(f"[discovery]\npaths = [{paths}]\n")
        for n in args.sizes:
            r, x = bench_size(box, n, args)
            rows += r
            extras[n] = x
    changed = guard.changes("bench_provider --load")
    if changed:
        raise common.BenchError(f"the run changed guarded folders: {list(changed)}")
    report(
        args.out,
        common.reproduce_command("bench_provider.py", argv),
        facts,
        rows,
        extras,
        time.perf_counter() - started,
    )
    print(args.out.read_text()[args.out.read_text().index(BEGIN) :])
    return 0
