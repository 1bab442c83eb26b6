"""Overlay kernels and "Python (this project)": kernel start-to-first-result as ratios to plain ipykernel kernels.

One run, in a throwaway sandbox (HOME, XDG_*, every Jupyter folder, IPYTHONDIR and KERNELKEEPER_OVERLAYS
in a temp dir), measures:

1. Kernel start-to-first-result (``start_new_kernel`` + ``execute('1+1')`` until its result; shutdown not
   timed) for one real project venv (``python3.11 -m venv`` + ``packaging==23.2``):
   a. ``overlay``: ``kernelkeeper add PROJECT`` on that venv without ipykernel -> a kernel on the ipykernel
      overlay (built by that ``add`` under KERNELKEEPER_OVERLAYS), vs
   b. ``plain``: a second, identical venv that gets ``uv pip install ipykernel`` and
      ``python -m ipykernel install --user --name plain``.
2. "Python (this project)" (``kernelkeeper add --this-project``), started with ``cwd=`` the project folder:
   on the venv WITH ipykernel vs ``plain`` (and, extra, on the overlay venv vs ``overlay``); and the
   launcher alone: ``python -I -S launch.py -f CF`` (the kernelspec's own argv) in a fake project whose
   ``.venv/bin/python`` is ``/bin/true``, minus spawning ``/bin/true`` with the argv the launcher would
   give it; plus ``launch.plan()`` in-process and ``python -I -S -c pass`` for reference.

All kernels are started round-robin (the order rotates every round) after one warm-up each.

    python bench/bench_overlay.py        # writes bench/RESULTS-overlay.md

Run it with the dev venv (kernelkeeper, jupyter_client and uv installed). Needs PyPI (the mirror) for
packaging and ipykernel. Nothing is written outside the temp dir except the results file; the run checks
that the real home's and the system's Jupyter and kernelkeeper folders did not change.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import timeit
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import common  # noqa: E402
from common import (  # noqa: E402
    BASE_PATH,
    PYENV,
    BenchError,
    diff,
    execute,
    find_uv,
    network_env,
    run,
    shutdown_kernel,
    snapshot,
    source_state,
)

RESULTS = BENCH / "RESULTS-overlay.md"
HEADING = '## Overlay kernels and "Python (this project)"'
PROBE = (
    "import sys, os, ipykernel, packaging\n"
    "'|'.join([sys.executable, sys.prefix, os.path.dirname(ipykernel.__file__), packaging.__version__, "
    "os.path.dirname(packaging.__file__), os.getcwd(), str(os.environ.get('VIRTUAL_ENV'))])"
)
PROBE_FIELDS = ("sys.executable", "sys.prefix", "ipykernel from", "packaging", "packaging from", "cwd", "VIRTUAL_ENV")


# --------------------------------------------------------------------------- sandbox and processes


class Sandbox(common.Sandbox):
    @property
    def home(self) -> Path:
        return self.path("home")

    def env(self) -> dict[str, str]:
        """What kernels and the tools see: nothing of the caller's, every Jupyter/XDG folder in the sandbox."""
        # PATH: uv only (kernelkeeper builds the overlay with the uv it finds on PATH); no python, no jupyter.
        env = self.clean_env(self.home, self.path("jupyter-data"), path=f"{self.path('bin')}:{BASE_PATH}")
        env["KERNELKEEPER_OVERLAYS"] = str(self.root / "overlays")
        return env

    def tool_env(self) -> dict[str, str]:
        """For kernelkeeper, uv and pip: the sandbox, the index settings, byte-code caches in the sandbox."""
        env = self.env()
        env.update(network_env())
        env["UV_CACHE_DIR"] = str(self.path("uv-cache"))
        env["PYTHONPYCACHEPREFIX"] = str(self.path("pycache"))  # kernelkeeper's own .pyc stay out of src/
        return env


def spawn_seconds(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """(wall, CPU user+sys) seconds of one short process (fork/exec to exit), nothing captured."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    proc.returncode = rc = os.waitstatus_to_exitcode(status)
    if rc != 0:
        raise BenchError(f"exit {rc}: {' '.join(argv)}")
    return elapsed, usage.ru_utime + usage.ru_stime


# --------------------------------------------------------------------------- statistics and formatting


@dataclass
class Timing:
    times: list[float] = field(default_factory=list)  # wall
    cpu: list[float] = field(default_factory=list)  # user + sys of the process (and its exec'd image)

    def add(self, wall: float, cpu: float) -> None:
        self.times.append(wall)
        self.cpu.append(cpu)

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    def summary(self) -> str:
        t = self.times
        sd = statistics.stdev(t) if len(t) > 1 else 0.0
        return f"{fmt(self.median)} (n={len(t)}; min {fmt(min(t))}, max {fmt(max(t))}; σ {fmt(sd)})"


def fmt(seconds: float) -> str:
    if seconds >= 10:
        return f"{seconds:.1f} s"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 0.01:
        return f"{seconds * 1000:.0f} ms"
    if seconds >= 0.001:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds * 1e6:.0f} µs"


def paired(a: Timing, b: Timing) -> str:
    """Median of the per-round differences a - b and in how many rounds a was slower."""
    d = [x - y for x, y in zip(a.times, b.times)]
    slower = sum(x > 0 for x in d)
    return f"{statistics.median(d) * 1000:+.0f} ms (slower in {slower} of {len(d)} rounds)"


# --------------------------------------------------------------------------- setup


def base_python(minor: str) -> Path:
    """The newest pyenv CPython ``minor``.x."""
    found = [v / "bin" / f"python{minor}" for v in PYENV.glob(f"{minor}.*") if (v / "bin" / f"python{minor}").exists()]
    if not found:
        raise BenchError(f"no pyenv Python {minor} under {PYENV}")
    return max(found, key=lambda p: [int(x) if x.isdigit() else -1 for x in p.parents[1].name.split(".")])


def project_venv(box: Sandbox, name: str, base: Path, package: str, uv: str, timeout: float) -> Path:
    """A project folder with pyproject.toml and ``.venv`` (``pythonX.Y -m venv``) holding ``package``."""
    project = box.home / "projects" / name
    project.mkdir(parents=True)
    (project / "pyproject.toml").write_text(
        f'[project]\nname = "{name}"\nversion = "0"\ndependencies = ["{package}"]\n'
    )
    env = box.tool_env()
    run([str(base), "-m", "venv", str(project / ".venv")], env, timeout, cwd=project)
    python = project / ".venv" / "bin" / "python"
    run([uv, "pip", "install", "--quiet", "--python", str(python), package], env, timeout, cwd=project)
    return project


def fake_project(box: Sandbox, name: str, minor: str, with_ipykernel: bool) -> Path:
    """A project whose ``.venv/bin/python`` is /bin/true: what the launcher execs exits at once."""
    project = box.home / "fake" / name
    prefix = project / ".venv"
    site = prefix / "lib" / f"python{minor}" / "site-packages"
    site.mkdir(parents=True)
    (prefix / "bin").mkdir()
    (prefix / "pyvenv.cfg").write_text(f"home = /usr/bin\nversion = {minor}.0\n")
    os.symlink("/bin/true", prefix / "bin" / "python")
    if with_ipykernel:
        (site / "ipykernel-7.4.0.dist-info").mkdir()
    (project / "pyproject.toml").write_text(f'[project]\nname = "{name}"\n')
    deep = project / "notebooks" / "2024" / "analysis"
    deep.mkdir(parents=True)
    return deep


# --------------------------------------------------------------------------- kernels


def one_kernel(name: str, cwd: Path, timeout: float, code: str = "1+1") -> tuple[float, float, str, str]:
    """Start kernel `name` in `cwd`, execute `code`, wait for its result.

    Returns (wall seconds to the result, CPU seconds of the kernel process over its whole life, result, ip).
    The CPU time is what the reaped child used (RUSAGE_CHILDREN delta): launcher, exec'd kernel, shutdown.
    """
    import resource

    from jupyter_client.manager import start_new_kernel

    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)

    log_path = os.path.join(os.environ["JUPYTER_RUNTIME_DIR"], f"kernel-{name}.log")
    started = time.perf_counter()
    with open(log_path, "ab") as log:
        km, kc = start_new_kernel(kernel_name=name, startup_timeout=timeout, cwd=str(cwd), stdout=log, stderr=log)
    try:
        result = execute(kc, code, name, timeout)
        elapsed = time.perf_counter() - started
        ip = str(km.ip)
    finally:
        kc.stop_channels()
        shutdown_kernel(km)
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    return elapsed, cpu, result, ip


@dataclass
class KernelCase:
    label: str  # the row name
    kernel: str  # the kernelspec name
    cwd: Path
    timing: Timing = field(default_factory=Timing)
    identity: dict[str, str] = field(default_factory=dict)


def identify(case: KernelCase, timeout: float, box: Sandbox) -> None:
    """The warm-up: what the kernel runs (interpreter, where ipykernel and packaging come from, cwd)."""
    _, _, result, ip = one_kernel(case.kernel, case.cwd, timeout, PROBE)
    if ip != "127.0.0.1":
        raise BenchError(f"kernel {case.kernel} bound {ip}, not 127.0.0.1")
    values = str(ast.literal_eval(result)).split("|")
    case.identity = {k: v.replace(str(box.root), "$SANDBOX") for k, v in zip(PROBE_FIELDS, values)}


# --------------------------------------------------------------------------- launcher alone


@dataclass
class LauncherResult:
    direct: Timing  # spawn /bin/true with the argv the launcher would exec
    launcher: Timing  # the kernelspec's argv (python -I -S launch.py -f CF) -> exec /bin/true
    launcher_overlay: Timing  # same, env without ipykernel -> overlay branch
    bare: Timing  # python -I -S -c pass
    imports: Timing  # python -I -S -c "import <launch.py's module-level imports>"
    import_line: str
    plan_us: float  # launch.plan() in-process, env with ipykernel
    plan_overlay_us: float
    argv: list[str]


def bench_launcher(box: Sandbox, spec_argv: list[str], minor: str, rounds: int) -> LauncherResult:
    env = box.env()
    deep = fake_project(box, "fakeproj", minor, with_ipykernel=True)
    deep_overlay = fake_project(box, "fakeoverlay", minor, with_ipykernel=False)
    cf = str(box.path("jupyter-runtime") / "kernel-fake.json")
    argv = [a.replace("{connection_file}", cf) for a in spec_argv]
    true_argv = [str(deep.parents[2] / ".venv" / "bin" / "python"), "-m", "ipykernel_launcher", "-f", cf]
    bare = [argv[0], "-I", "-S", "-c", "pass"]
    source = Path(spec_argv[spec_argv.index("-S") + 1])
    modules = [
        alias.name
        for node in ast.parse(source.read_text()).body
        if isinstance(node, ast.Import)
        for alias in node.names
    ]
    import_line = f"import {', '.join(modules)}"
    imports = [argv[0], "-I", "-S", "-c", import_line]
    res = LauncherResult(Timing(), Timing(), Timing(), Timing(), Timing(), import_line, 0.0, 0.0, argv)
    cases = [
        (res.direct, true_argv, deep),
        (res.launcher, argv, deep),
        (res.launcher_overlay, argv, deep_overlay),
        (res.bare, bare, deep),
        (res.imports, imports, deep),
    ]
    for _, a, cwd in cases:  # warm-up
        spawn_seconds(a, env, cwd)
    for r in range(rounds):
        for i in range(len(cases)):
            timing, a, cwd = cases[(i + r) % len(cases)]
            timing.add(*spawn_seconds(a, env, cwd))
    # The decision alone, in this process (launch.py is standard library only; it reads os.environ).
    import importlib.util

    spec = importlib.util.spec_from_file_location("kk_launch_bench", source)
    assert spec is not None and spec.loader is not None
    launch = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(launch)
    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update(env)
        for folder, attr in ((deep, "plan_us"), (deep_overlay, "plan_overlay_us")):
            executable, _, _, notice = launch.plan(str(folder), ["-f", cf])
            if notice or not executable.endswith("/.venv/bin/python"):
                raise BenchError(f"launch.plan({folder}) did not pick the fake env: {executable}, {notice}")
            t = timeit.Timer(lambda folder=folder: launch.plan(str(folder), ["-f", cf]))
            n, _ = t.autorange()
            best = min(t.repeat(repeat=5, number=n)) / n
            setattr(res, attr, best * 1e6)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return res


# --------------------------------------------------------------------------- report


def machine_facts(box: Sandbox) -> list[str]:
    return [
        f"- {common.machine()}, load average (1, 5, 15 min) at start {common.load_average()}",
        f"- sandbox under `{box.root.parent}` ({common.filesystem(box.root)})",
    ]


def versions(box: Sandbox, python: Path, uv: str, timeout: float) -> str:
    _, kk = run([sys.executable, "-m", "kernelkeeper", "--version"], box.tool_env(), timeout)
    _, uv_v = run([uv, "--version"], box.tool_env(), timeout)
    _, inner = run(
        [str(python), "-c", "import sys, ipykernel, packaging; print(sys.version.split()[0], ipykernel.__version__)"],
        box.env(),
        timeout,
    )
    py, ipk = inner.split()
    return (
        f"- {kk.strip()} (source at commit {source_state()}), jupyter_client {version('jupyter_client')}, "
        f"run by Python {platform.python_version()} (`{sys.executable}`, also the launcher's interpreter); "
        f"project venvs: Python {py}, ipykernel {ipk} (plain venv and overlay alike, from PyPI), {uv_v.strip()}"
    )


def report(
    command: str,
    facts: list[str],
    cases: dict[str, KernelCase],
    la: LauncherResult,
    setup: dict[str, Any],
    changed: list[str],
    phases: common.Phases,
    args: argparse.Namespace,
) -> str:
    ov, pl, tp, tpo = cases["overlay"], cases["plain"], cases["this-project"], cases["this-project-overlay"]

    def ms(x: float) -> str:
        return f"{x * 1000:+.1f} ms"

    def cpu(a: Timing, b: Timing | None = None) -> str:
        return fmt(a.cpu_median) + (f" vs {fmt(b.cpu_median)} ({ms(a.cpu_median - b.cpu_median)})" if b else "")

    def verdict(x: float) -> str:
        return "meets" if x < 0.050 else "**misses**"

    added = la.launcher.median - la.direct.median
    added_min = min(la.launcher.times) - min(la.direct.times)
    added_cpu = la.launcher.cpu_median - la.direct.cpu_median
    added_ov = la.launcher_overlay.median - la.direct.median
    noise = max(statistics.stdev(c.timing.times) for c in cases.values() if len(c.timing.times) > 1)
    rows = [
        "| measurement | kernelkeeper: wall | baseline: wall | ratio of wall medians | paired wall difference, "
        "median | CPU user+sys, medians (difference) |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| 1. start → `1+1`: **overlay** kernel (`kernelkeeper add PROJECT`, venv without ipykernel) "
        f"vs `plain` (identical venv + `uv pip install ipykernel`) | {ov.timing.summary()} | {pl.timing.summary()} "
        f"| **{ov.timing.median / pl.timing.median:.2f}** | {paired(ov.timing, pl.timing)} "
        f"| {cpu(ov.timing, pl.timing)} |",
        f"| 2. start → `1+1`: **Python (this project)**, cwd = the project with ipykernel, vs `plain` "
        f"| {tp.timing.summary()} | {pl.timing.summary()} | **{tp.timing.median / pl.timing.median:.2f}** "
        f"| {paired(tp.timing, pl.timing)} | {cpu(tp.timing, pl.timing)} |",
        f"| (extra) start → `1+1`: Python (this project), cwd = the overlay project, vs the overlay kernel "
        f"| {tpo.timing.summary()} | {ov.timing.summary()} | {tpo.timing.median / ov.timing.median:.2f} "
        f"| {paired(tpo.timing, ov.timing)} | {cpu(tpo.timing, ov.timing)} |",
        f"| 2. **launcher alone**: `python -I -S launch.py -f CF` → decides → `execve` of the fake env's "
        f"`bin/python` (= `/bin/true`), cwd 3 folders below the project, vs spawning `/bin/true` with the "
        f"same argv directly | {la.launcher.summary()} | {la.direct.summary()} "
        f"| {la.launcher.median / la.direct.median:.1f} "
        f"| **{ms(added)} added** (medians; {ms(added_min)} between the minima) — target < 50 ms: "
        f"{verdict(added)} by the wall median, {verdict(added_min)} by the minima "
        f"| {cpu(la.launcher, la.direct)} — target {verdict(added_cpu)} by CPU |",
        f"| (same, env without ipykernel → overlay branch) | {la.launcher_overlay.summary()} "
        f"| {la.direct.summary()} | {la.launcher_overlay.median / la.direct.median:.1f} "
        f"| {ms(added_ov)} added (medians) | {cpu(la.launcher_overlay, la.direct)} |",
        f"| reference: `python -I -S -c pass` (the launcher's interpreter, bare) | {la.bare.summary()} | "
        f"| | {ms(la.bare.median - la.direct.median)} over `/bin/true` | {cpu(la.bare)} |",
        f"| reference: `python -I -S -c '{la.import_line}'` (launch.py's module-level imports, nothing else) "
        f"| {la.imports.summary()} | | | {ms(la.imports.median - la.bare.median)} over bare `-c pass` "
        f"| {cpu(la.imports, la.bare)} over bare |",
        f"| reference: `launch.plan()` in-process (the decision: walk up, find `.venv`, check ipykernel) "
        f"| {la.plan_us:.0f} µs (overlay branch {la.plan_overlay_us:.0f} µs; best of 5 autoranged loops) | | | | |",
    ]
    ident = []
    for c in cases.values():
        shown = ", ".join(f"{k} `{v}`" for k, v in c.identity.items())
        cwd = str(c.cwd).replace(str(setup["root"]), "$SANDBOX")
        ident.append(f"  - `{c.label}` (kernelspec `{c.kernel}`, cwd `{cwd}`): {shown}")
    env_note = setup["overlay_env_changes"]
    method = [
        f"- **Setup** (not timed in the table): two identical projects, `{args.package}` in `pyproject.toml`, "
        f"each `python{args.minor} -m venv .venv` + `uv pip install {args.package}` "
        f"({setup['venvs']:.0f} s for both). `overlayproj`: `kernelkeeper add PROJECT --name overlay` built the "
        f"overlay under `KERNELKEEPER_OVERLAYS` (`{setup['overlay_cmd']}`) and wrote the kernel in "
        f"{setup['add_overlay']:.1f} s (one-time cost per Python minor version). `plainproj`: "
        f"`uv pip install ipykernel` ({setup['uv_ipykernel']:.1f} s, uv cache warm from the overlay build) and "
        f"`python -m ipykernel install --user --name plain`. `kernelkeeper add --this-project` wrote "
        f"`python-this-project` (argv `{' '.join(la.argv[:4])} …`).",
        f"- **Kernel starts**: in this process, `jupyter_client.manager.start_new_kernel(kernel_name, cwd=the "
        f"project folder)` (waits for kernel_info), `execute('1+1')`, wait on iopub for the result; shutdown is "
        f"not timed. One warm-up start each (the identity probe below, which also writes byte code caches), then "
        f"{len(pl.timing.times)} rounds; every round starts each of the 4 kernels once, the order rotating by one "
        f"each round, so the paired difference compares starts seconds apart. All kernels bound 127.0.0.1. "
        f"Largest run-to-run σ of any kernel: {fmt(noise)} — differences smaller than that are noise on this "
        f"loaded machine. The CPU column is the kernel process's user+sys time over its whole life (launcher, "
        f"exec'd kernel, the `1+1`, shutdown; `RUSAGE_CHILDREN` after it is reaped): less sensitive to other "
        f"jobs than wall time. What each kernel runs (the warm-up probe):",
        *ident,
        "- **Launcher alone**: a fake project (`pyproject.toml` + `.venv/pyvenv.cfg` + "
        "`lib/pythonX.Y/site-packages/ipykernel-*.dist-info`) whose `.venv/bin/python` is a symlink to "
        "`/bin/true`; the `python-this-project` kernelspec's argv runs in `notebooks/2024/analysis` below it, "
        "walks up, and `execve`s `/bin/true -m ipykernel_launcher -f CF`, which exits. The baseline spawns that "
        "same `/bin/true` argv directly, so the difference is exactly what the launcher adds before the real "
        "interpreter starts (interpreter start with `-I -S` + reading launch.py + the decision + exec). "
        f"{len(la.launcher.times)} rotating rounds of the 5 commands after one warm-up each, wall time around "
        "`Popen` + `os.wait4` (which also gives the process's CPU time, exec'd image included).",
        "- Environment of every process and kernel: HOME, XDG_*, JUPYTER_DATA_DIR, JUPYTER_PATH, "
        "JUPYTER_CONFIG_DIR, JUPYTER_RUNTIME_DIR, IPYTHONDIR and KERNELKEEPER_OVERLAYS in the sandbox, PATH = "
        "a folder holding only `uv` + /usr/local/bin:/usr/bin:/bin; kernelkeeper/uv/pip processes also get the "
        "index/certificate variables and PYTHONPYCACHEPREFIX in the sandbox. Kernels get no "
        "PYTHONPYCACHEPREFIX: it would make Python ignore the overlay's compiled byte code.",
        "- The overlay venv, checked before and after kernels ran on it: "
        + (
            "unchanged."
            if not env_note
            else "**changed** — "
            + "; ".join(f"after {who}: {', '.join(f'`{c}`' for c in what[:6])}" for who, what in env_note.items())
        ),
        "- "
        + (
            "The real home's and the system's Jupyter (and kernelkeeper) folders were the same after the run as before."
            if not changed
            else "**WARNING: these folders outside the sandbox changed during the run (by this run or another "
            f"process): {', '.join(f'`{c}`' for c in changed)}.**"
        ),
        phases.line("Wall time"),
    ]
    return common.section(
        HEADING,
        "Reproduce (from the repository root, about 3-4 min on 2 cores, needs PyPI for packaging and ipykernel):",
        command,
        facts,
        rows,
        method,
    )


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=12, help="rounds of kernel starts after the warm-up (default 12)")
    parser.add_argument("--launcher-runs", type=int, default=40, help="rounds of the launcher commands (default 40)")
    parser.add_argument("--minor", default="3.11", help="pyenv Python of the project venvs (default 3.11)")
    parser.add_argument("--package", default="packaging==23.2", help="the project's own package")
    parser.add_argument("--timeout", type=float, default=60.0, help="per kernel start / short process (default 60 s)")
    parser.add_argument("--budget", type=float, default=270.0, help="stop starting kernel rounds after this (s)")
    common.sandbox_options(parser)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    guard = common.Guard(
        common.guarded_paths(
            (".local/share/jupyter", ".local/share/kernelkeeper", ".jupyter", ".ipython", ".config/kernelkeeper")
        )
    )

    def say(msg: str) -> None:
        print(f"[{time.perf_counter() - started:5.0f} s] {msg}", file=sys.stderr, flush=True)

    with common.sandbox(Sandbox, "kk-bench-overlay-", args.tmp, args.keep) as box:
        uv = find_uv()
        os.symlink(uv, box.path("bin") / "uv")
        kk = [sys.executable, "-m", "kernelkeeper"]
        install_timeout = max(args.timeout, 300)
        setup: dict[str, Any] = {"root": box.root}
        phases = common.Phases()
        facts = machine_facts(box)
        say(f"sandbox {box.root}; {facts[0][2:]}")
        base = base_python(args.minor)
        say(f"two project venvs ({base} -m venv + uv pip install {args.package}) ...")
        t0 = time.perf_counter()
        ov_proj = project_venv(box, "overlayproj", base, args.package, uv, install_timeout)
        pl_proj = project_venv(box, "plainproj", base, args.package, uv, install_timeout)
        setup["venvs"] = time.perf_counter() - t0
        tool = box.tool_env()
        say("kernelkeeper add overlayproj (builds the overlay) ...")
        secs, _ = run([*kk, "add", str(ov_proj), "--name", "overlay", "--json"], tool, install_timeout, ov_proj)
        setup["add_overlay"] = secs
        overlay_json = json.loads(run([*kk, "overlay", "list", "--json"], tool, args.timeout)[1])
        if len(overlay_json) != 1:
            raise BenchError(f"expected one overlay, got {overlay_json}")
        setup["overlay_cmd"] = " ".join(
            Path(w).name if i == 0 else w.replace(str(box.root), "$SANDBOX")
            for i, w in enumerate(str(overlay_json[0].get("built_by")).split())
        )
        say("uv pip install ipykernel into plainproj + ipykernel install --user --name plain ...")
        pl_python = pl_proj / ".venv" / "bin" / "python"
        setup["uv_ipykernel"], _ = run(
            [uv, "pip", "install", "--quiet", "--python", str(pl_python), "ipykernel"], tool, install_timeout, pl_proj
        )
        run([str(pl_python), "-m", "ipykernel", "install", "--user", "--name", "plain"], box.env(), args.timeout)
        run([*kk, "add", "--this-project", "--json"], tool, args.timeout, pl_proj)
        kernels = box.root / "jupyter-data" / "kernels"
        specs = {p.name: json.loads((p / "kernel.json").read_text()) for p in kernels.iterdir()}
        if set(specs) != {"overlay", "plain", "python-this-project"}:
            raise BenchError(f"unexpected kernelspecs: {sorted(specs)}")
        facts.append(versions(box, pl_python, uv, args.timeout))
        phases.done("setup")

        cases = {
            "overlay": KernelCase("overlay", "overlay", ov_proj),
            "plain": KernelCase("plain", "plain", pl_proj),
            "this-project": KernelCase("this-project", "python-this-project", pl_proj),
            "this-project-overlay": KernelCase("this-project-overlay", "python-this-project", ov_proj),
        }
        # From here on this process (jupyter_client and the kernels it starts) lives in the sandbox.
        os.environ.clear()
        os.environ.update(box.env())
        ov_env = [ov_proj / ".venv"]
        state = snapshot(ov_env)
        setup["overlay_env_changes"] = {}
        say("warm-up / identity probe of each kernel ...")
        for key in ("this-project-overlay", "overlay", "plain", "this-project"):
            identify(cases[key], args.timeout, box)
            if key in ("this-project-overlay", "overlay"):
                now = snapshot(ov_env)
                changes = diff(state, now)
                if changes:
                    who = "Python (this project)" if key == "this-project-overlay" else "the `overlay` kernelspec"
                    setup["overlay_env_changes"][f"the first start of {who}"] = next(iter(changes.values()))
                state = now
        checks = [
            (cases["overlay"].identity["ipykernel from"].startswith("$SANDBOX/overlays/"), "overlay ipykernel"),
            (cases["this-project-overlay"].identity["ipykernel from"].startswith("$SANDBOX/overlays/"), "tp overlay"),
            ("/plainproj/.venv/" in cases["plain"].identity["ipykernel from"], "plain ipykernel"),
            ("/plainproj/.venv/" in cases["this-project"].identity["ipykernel from"], "this-project ipykernel"),
        ]
        checks += [
            (c.identity["packaging"] == args.package.split("==")[-1], f"{k} packaging") for k, c in cases.items()
        ]
        checks += [
            (c.identity["cwd"] == str(c.cwd).replace(str(box.root), "$SANDBOX"), f"{k} cwd") for k, c in cases.items()
        ]
        bad = [what for ok, what in checks if not ok]
        if bad:
            raise BenchError(f"kernels do not run what they should ({bad}): {[c.identity for c in cases.values()]}")
        order = list(cases)
        for r in range(args.runs):
            if r >= 3 and time.perf_counter() - started > args.budget:
                say(f"time budget reached after {r} rounds")
                break
            say(f"kernel round {r + 1}/{args.runs}")
            for i in range(len(order)):
                case = cases[order[(i + r) % len(order)]]
                seconds, cpu, result, _ = one_kernel(case.kernel, case.cwd, args.timeout)
                if result != "2":
                    raise BenchError(f"kernel {case.label} said 1+1 = {result}")
                case.timing.add(seconds, cpu)
        end_changes = diff(state, snapshot(ov_env))
        if end_changes:
            setup["overlay_env_changes"]["the timed rounds"] = next(iter(end_changes.values()))
        phases.done("kernel starts")
        say("launcher alone ...")
        la = bench_launcher(box, specs["python-this-project"]["argv"], args.minor, args.launcher_runs)
        phases.done("launcher")
    changed = guard.changes("bench_overlay")
    source_after = source_state()
    if source_after not in facts[2]:
        facts.append(f"- **kernelkeeper's source changed during the run: now at {source_after}**")
    phases["total"] = time.perf_counter() - started
    command = common.reproduce_command("bench_overlay.py", argv)
    text = report(command, facts, cases, la, setup, list(changed), phases, args)
    args.output.write_text(text)
    print(text)
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
