"""Kernel-side benchmarks (issue 3): `sync`, `list --json` and kernel start, each as a ratio to a peer.

One run measures, in a throwaway HOME (every Jupyter and XDG folder points into a temp dir):

1. ``kernelkeeper sync --json`` over a 1,000-environment farm (bench/farm.py, every environment made
   with ipykernel) into an empty kernels folder, then the no-op second sync; fresh processes.
   Peers: ``python -m ipykernel install --user --name X`` and ``jupyter kernelspec install`` of
   pre-made folders, each run for a sample of environments and *extrapolated* to all of them; and
   jupyter_client's ``KernelSpecManager.install_kernel_spec`` for every pre-made folder in one
   process (measured in full; it writes files only, it finds nothing).
2. ``kernelkeeper list --json`` vs ``jupyter kernelspec list --json`` with 1,000 kernelspecs
   present, median of k fresh-process runs each (alternating).
3. Kernel start-to-first-result (``start_new_kernel``, execute ``1+1``, wait for the result) of the
   kernelspec ``kernelkeeper add`` writes vs the one ``python -m ipykernel install --user`` writes
   for the same real venv (a pyenv Python + ipykernel from PyPI via uv), median of alternating runs.

    python bench/bench_kernels.py            # writes bench/RESULTS-kernels.md

Run it with a Python that has kernelkeeper and jupyter_client installed (the dev venv); the
``jupyter`` command is taken from the same bin folder.  Nothing is written outside the temp dir
except the results file; the run checks that the real home's and the system's Jupyter folders
did not change.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import platform
import shutil
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import common  # noqa: E402
import farm  # noqa: E402
from common import (  # noqa: E402
    BASE_PATH,
    PYENV,
    BenchError,
    execute,
    find_uv,
    network_env,
    run,
    shutdown_kernel,
    source_state,
    warm,
)

RESULTS = BENCH / "RESULTS-kernels.md"


# --------------------------------------------------------------------------- sandbox


class Sandbox(common.Sandbox):
    def env(self, home: Path, data_dir: Path) -> dict[str, str]:
        """A clean environment: nothing of the caller's, every Jupyter/XDG folder in the sandbox."""
        env = self.clean_env(home, data_dir, path=f"{home / '.pyenv' / 'bin'}:{home / '.pyenv' / 'shims'}:{BASE_PATH}")
        env["PYENV_ROOT"] = str(home / ".pyenv")
        # Byte-code caches of every process go to the sandbox too (warm after the warm-up runs).
        env["PYTHONPYCACHEPREFIX"] = str(self.path("pycache"))
        return env


# --------------------------------------------------------------------------- statistics and formatting


@dataclass
class Timing:
    times: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.times)

    def spread(self) -> str:
        return f"min {fmt(min(self.times))}, max {fmt(max(self.times))}"


def fmt(seconds: float) -> str:
    if seconds >= 100:
        return f"{seconds:.0f} s"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    return f"{seconds * 1000:.0f} ms"


def ratio(kk: float, peer: float) -> str:
    if kk <= peer:
        return f"kernelkeeper **{peer / kk:.1f}× faster**"
    return f"kernelkeeper **{kk / peer:.1f}× slower**"


# --------------------------------------------------------------------------- setup


@contextlib.contextmanager
def every_env_gets_ipykernel() -> Iterator[None]:
    """farm.py gives a third of the environments ipykernel; here every one it builds gets it."""
    original = farm.FarmBuilder.make

    def make(self: farm.FarmBuilder, layout: str, ipykernel: bool, broken: bool) -> None:
        original(self, layout, True, broken)

    setattr(farm.FarmBuilder, "make", make)  # noqa: B010
    try:
        yield
    finally:
        setattr(farm.FarmBuilder, "make", original)  # noqa: B010


def real_venv(box: Sandbox, home: Path, minor: str, timeout: float) -> tuple[Path, str]:
    """`python3.X -m venv` in a project, then `uv pip install ipykernel` from PyPI; returns (python, its version)."""
    pythons = farm.real_pythons()
    if minor not in pythons:
        raise BenchError(f"no pyenv Python {minor} under {PYENV}")
    base = PYENV / pythons[minor] / "bin" / f"python{minor}"
    prefix = home / "projects" / "realproj" / ".venv"
    (prefix.parent / "pyproject.toml").parent.mkdir(parents=True, exist_ok=True)
    (prefix.parent / "pyproject.toml").write_text('[project]\nname = "realproj"\nversion = "0"\n')
    env = box.env(home, box.path("jupyter-setup"))
    run([str(base), "-m", "venv", "--without-pip", str(prefix)], env, timeout)
    uv = find_uv()
    uv_env = dict(env, UV_CACHE_DIR=str(box.path("uv-cache")))
    uv_env.update(network_env())
    python = prefix / "bin" / "python"
    run([uv, "pip", "install", "--quiet", "--python", str(python), "ipykernel"], uv_env, timeout)
    _, version = run([str(python), "-c", "import ipykernel; print(ipykernel.__version__)"], env, timeout)
    return python, version.strip()


# --------------------------------------------------------------------------- 1. sync


@dataclass
class SyncResult:
    n_envs: int
    adds: int
    fresh: Timing
    noop: Timing
    data_dir: Path
    added: list[dict[str, Any]]
    ipykernel_install: Timing
    kernelspec_install: Timing
    ksm_all: float
    sample: int
    farm_seconds: float
    missed: collections.Counter[str]


def bench_sync(
    box: Sandbox, n: int, rounds: int, sample: int, real_python: Path, kk: list[str], jupyter: str, timeout: float
) -> SyncResult:
    farm_root = box.root / "farm"
    with every_env_gets_ipykernel():
        manifest = farm.make_farm(farm_root, n)
    home = Path(manifest.home)
    warm(home)
    fresh, noop = Timing(), Timing()
    data_dir = box.root / "jupyter-sync-warmup"
    run([*kk, "sync", "--dry-run", "--json"], box.env(home, data_dir), timeout, cwd=box.root)  # warm-up
    added: list[dict[str, Any]] = []
    for r in range(rounds):
        if r:
            shutil.rmtree(data_dir)
        data_dir = box.root / f"jupyter-sync-{r}"
        env = box.env(home, data_dir)
        seconds, out = run([*kk, "sync", "--json"], env, timeout, cwd=box.root)
        fresh.times.append(seconds)
        actions = json.loads(out)["actions"]
        added = [a for a in actions if a["action"] == "add"]
        if len(added) != len(actions) or any(a.get("error") for a in actions):
            raise BenchError(f"fresh sync did more than adds: {actions[:3]}")
        on_disk = [p for p in (data_dir / "kernels").iterdir() if (p / "kernel.json").is_file()]
        if len(on_disk) != len(added):
            raise BenchError(f"sync reported {len(added)} adds, {len(on_disk)} kernelspecs on disk")
        seconds, out = run([*kk, "sync", "--json"], env, timeout, cwd=box.root)
        noop.times.append(seconds)
        if json.loads(out)["actions"]:
            raise BenchError(f"second sync was not a no-op: {json.loads(out)['actions'][:3]}")
    kk_envs = {os.path.realpath(a["env"]) for a in added}
    missed = collections.Counter(
        e.layout
        for e in manifest.envs
        if e.has_ipykernel and not e.broken and os.path.realpath(e.prefix) not in kk_envs
    )

    # Peer a: `python -m ipykernel install --user --name X` per environment (sampled).
    names = [a["kernel"] for a in added[: sample + 1]]
    env = box.env(home, box.root / "jupyter-peer-ipykernel")
    ipk = Timing()
    for i, name in enumerate(names):
        seconds, _ = run(
            [str(real_python), "-m", "ipykernel", "install", "--user", "--name", name, "--display-name", name],
            env,
            timeout,
            cwd=box.root,
        )
        if i:  # the first is a warm-up
            ipk.times.append(seconds)
    # Peer b: `jupyter kernelspec install --user` of a pre-made folder per environment (sampled).
    premade = box.path("premade")
    for a in added:
        shutil.copytree(Path(a["path"]), premade / a["kernel"])
    env = box.env(home, box.root / "jupyter-peer-kernelspec")
    ksi = Timing()
    for i, name in enumerate(names):
        seconds, _ = run(
            [jupyter, "kernelspec", "install", "--user", "--name", name, str(premade / name)], env, timeout
        )
        if i:
            ksi.times.append(seconds)
    # Peer c: every pre-made folder through jupyter_client's API, one process (writes only).
    data = box.root / "jupyter-peer-ksm"
    script = (
        "import os, sys\nfrom jupyter_client.kernelspec import KernelSpecManager\n"
        "m = KernelSpecManager()\nd = sys.argv[1]\n"
        "for n in sorted(os.listdir(d)):\n    m.install_kernel_spec(os.path.join(d, n), n, user=True)\n"
    )
    ksm_seconds, _ = run([sys.executable, "-c", script, str(premade)], box.env(home, data), timeout)
    if len(list((data / "kernels").iterdir())) != len(added):
        raise BenchError("KernelSpecManager peer did not write every kernelspec")
    return SyncResult(
        manifest.n,
        len(added),
        fresh,
        noop,
        data_dir,
        added,
        ipk,
        ksi,
        ksm_seconds,
        sample,
        manifest.build_seconds,
        missed,
    )


# --------------------------------------------------------------------------- 2. list


@dataclass
class ListResult:
    total: int
    managed: int
    kk: Timing
    jupyter: Timing
    kk_statuses: dict[str, int]
    kk_count: int
    jupyter_count: int


def bench_list(
    box: Sandbox, sync: SyncResult, target: int, k: int, kk: list[str], jupyter: str, timeout: float
) -> ListResult:
    """Top the synced kernels folder up to `target` with hand-made (ipykernel-install style) kernelspecs."""
    manifest = farm.Manifest.load(box.root / "farm")
    kernels = sync.data_dir / "kernels"
    have = {a["env"] for a in sync.added}
    candidates = [e for e in manifest.envs if e.has_ipykernel and not e.broken]
    candidates.sort(key=lambda e: e.prefix in have)  # environments without a kernel first
    i = 0
    while sum((p / "kernel.json").is_file() for p in kernels.iterdir()) < target:
        e = candidates[i % len(candidates)]
        folder = kernels / f"hand-{i:04d}"
        folder.mkdir()
        spec = {
            "argv": [e.python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": f"{e.name} (by hand)",
            "language": "python",
            "metadata": {"debugger": True},
        }
        (folder / "kernel.json").write_text(json.dumps(spec, indent=1) + "\n")
        i += 1
    env = box.env(Path(manifest.home), sync.data_dir)
    kk_argv = [*kk, "list", "--json"]
    jp_argv = [jupyter, "kernelspec", "list", "--json"]
    run(kk_argv, env, timeout)
    run(jp_argv, env, timeout)  # warm-ups
    kt, jt = Timing(), Timing()
    kk_out = jp_out = ""
    for r in range(k):
        order = [(kk_argv, kt), (jp_argv, jt)] if r % 2 == 0 else [(jp_argv, jt), (kk_argv, kt)]
        for argv, timing in order:
            seconds, out = run(argv, env, timeout)
            timing.times.append(seconds)
            if argv is kk_argv:
                kk_out = out
            else:
                jp_out = out
    kk_list = json.loads(kk_out)
    statuses = collections.Counter(str(x["status"]) for x in kk_list)
    return ListResult(
        target,
        sync.adds,
        kt,
        jt,
        dict(statuses),
        len(kk_list),
        len(json.loads(jp_out)["kernelspecs"]),
    )


# --------------------------------------------------------------------------- 3. kernel start


@dataclass
class KernelResult:
    kk: Timing
    plain: Timing
    kk_ready: Timing
    plain_ready: Timing
    python: str
    ipykernel: str
    identity: dict[str, str]
    ip: str
    shutdown_max: float


def one_kernel(name: str, timeout: float, probe: str = "1+1") -> tuple[float, float, str, str, float]:
    """Start `name`, execute `probe`, wait for its result; returns (to ready, to result, result, ip, shutdown s)."""
    from jupyter_client.manager import start_new_kernel

    started = time.perf_counter()
    with open(os.path.join(os.environ["JUPYTER_RUNTIME_DIR"], "kernels.log"), "ab") as log:
        km, kc = start_new_kernel(kernel_name=name, startup_timeout=timeout, stdout=log, stderr=log)
    try:
        ready = time.perf_counter() - started
        result = execute(kc, probe, name, timeout)
        to_result = time.perf_counter() - started
        ip = str(km.ip)
    finally:
        kc.stop_channels()
        down = time.perf_counter()
        shutdown_kernel(km)
        shutdown = time.perf_counter() - down
    return ready, to_result, result, ip, shutdown


def bench_kernels(
    box: Sandbox, home: Path, python: Path, ipk_version: str, runs: int, kk: list[str], timeout: float
) -> KernelResult:
    data = box.root / "jupyter-kernels"
    env = box.env(home, data)
    prefix = python.parent.parent
    run([*kk, "add", str(prefix), "--name", "kk-real", "--json"], env, timeout, cwd=prefix.parent)
    run([str(python), "-m", "ipykernel", "install", "--user", "--name", "plain"], env, timeout)
    specs = {n: json.loads((data / "kernels" / n / "kernel.json").read_text()) for n in ("kk-real", "plain")}
    if specs["kk-real"]["argv"][0] != specs["plain"]["argv"][0]:
        raise BenchError(f"the two kernelspecs run different interpreters: {specs}")
    # From here on this process (jupyter_client and the kernels it starts) lives in the sandbox.
    os.environ.clear()
    os.environ.update(env)
    probe = "import sys, os; f'{sys.executable}, {os.environ.get(\"VIRTUAL_ENV\")}'"
    identity = {  # also the warm-ups
        n: one_kernel(n, timeout, probe)[2].strip("'").replace(str(box.root), "$SANDBOX") for n in ("kk-real", "plain")
    }
    shown = str(python).replace(str(box.root), "$SANDBOX")
    res = KernelResult(Timing(), Timing(), Timing(), Timing(), shown, ipk_version, identity, "", 0.0)
    for r in range(runs):
        for name in ("kk-real", "plain") if r % 2 == 0 else ("plain", "kk-real"):
            ready, to_result, result, ip, shutdown = one_kernel(name, timeout)
            if result != "2":
                raise BenchError(f"kernel {name} said 1+1 = {result}")
            res.ip = ip
            res.shutdown_max = max(res.shutdown_max, shutdown)
            (res.kk if name == "kk-real" else res.plain).times.append(to_result)
            (res.kk_ready if name == "kk-real" else res.plain_ready).times.append(ready)
    return res


# --------------------------------------------------------------------------- report


def machine_facts(box: Sandbox, kk_version: str) -> list[str]:
    return [
        f"- {common.machine()}, load average at start {common.load_average()}",
        f"- {kk_version} (source at commit {source_state()}) and "
        f"jupyter_client {version('jupyter_client')} / jupyter_core "
        f"{version('jupyter_core')} (the `jupyter` command) run by Python {platform.python_version()} "
        f"(`{sys.executable}`)",
        f"- sandbox (HOME, farm, every Jupyter/XDG folder) under `{box.root.parent}` ({common.filesystem(box.root)})",
    ]


def report(
    command: str,
    facts: list[str],
    s: SyncResult,
    li: ListResult,
    ke: KernelResult,
    args: argparse.Namespace,
    changed: list[str],
    phases: common.Phases,
) -> str:
    n_adds = s.adds
    ipk_total = s.ipykernel_install.mean * n_adds
    ksi_total = s.kernelspec_install.mean * n_adds
    kk_fresh = s.fresh.median
    paired = [(a - b) * 1000 for a, b in zip(ke.kk.times, ke.plain.times)]
    slower = sum(d > 0 for d in paired)
    noise_ms = (statistics.pstdev(ke.plain.times) + statistics.pstdev(ke.kk.times)) / 2 * 1000
    missed = ", ".join(f"{c} {layout}" for layout, c in s.missed.most_common()) or "none"
    rows = [
        "| measurement | kernelkeeper | peer | peer time | ratio |",
        "| --- | --- | --- | --- | --- |",
        f"| `sync`, {s.n_envs}-env farm, empty kernels folder → {n_adds} adds | {fmt(kk_fresh)} "
        f"(median of {len(s.fresh.times)}; {s.fresh.spread()}) "
        f"| `python -m ipykernel install --user --name X` × {n_adds}, **extrapolated**: mean of "
        f"{len(s.ipykernel_install.times)} runs ({fmt(s.ipykernel_install.mean)} each) × {n_adds} "
        f"| ≈ {fmt(ipk_total)} | {ratio(kk_fresh, ipk_total)} |",
        f"| same | | `jupyter kernelspec install --user` of a pre-made folder × {n_adds}, **extrapolated**: "
        f"mean of {len(s.kernelspec_install.times)} runs ({fmt(s.kernelspec_install.mean)} each) × {n_adds} "
        f"| ≈ {fmt(ksi_total)} | {ratio(kk_fresh, ksi_total)} |",
        f"| same | | jupyter_client `KernelSpecManager.install_kernel_spec` of all {n_adds} pre-made folders "
        "in one process, **measured** (writes only: no discovery, folders made beforehand) "
        f"| {fmt(s.ksm_all)} | {ratio(kk_fresh, s.ksm_all)} |",
        f"| second `sync` (no-op, {n_adds} kernels present) | {fmt(s.noop.median)} "
        f"(median of {len(s.noop.times)}; {s.noop.spread()}) | no peer: the manual way has no check, "
        f"it re-runs the installs | — | — |",
        f"| `list --json`, {li.total} kernelspecs in the user folder | {fmt(li.kk.median)} "
        f"(median of {len(li.kk.times)}; {li.kk.spread()}) | `jupyter kernelspec list --json`, same kernels "
        f"| {fmt(li.jupyter.median)} "
        f"(median of {len(li.jupyter.times)}; {li.jupyter.spread()}) | {ratio(li.kk.median, li.jupyter.median)} |",
        f"| kernel start → `1+1` result | {fmt(ke.kk.median)} (median of {len(ke.kk.times)}; {ke.kk.spread()}) "
        f"| kernelspec of `python -m ipykernel install --user --name plain`, same venv "
        f"| {fmt(ke.plain.median)} (median of {len(ke.plain.times)}; {ke.plain.spread()}) "
        f"| {ke.kk.median / ke.plain.median:.2f} (median of paired differences {statistics.median(paired):+.0f} ms; "
        f"kernelkeeper's slower in {slower} of {len(paired)} pairs; run-to-run σ {noise_ms:.0f} ms) |",
    ]
    method = [
        f"- **sync**: `bench/farm.py` builds {s.n_envs} environments on disk ({s.farm_seconds:.0f} s) in "
        "every layout it knows, with ipykernel's files in every one of them (farm.py's own default is a "
        "third); the pyenv versions keep farm.py's choice and ~0.5 % are broken on purpose. "
        f"`kernelkeeper sync --json` runs as a fresh process with the farm as HOME into an empty "
        f"`JUPYTER_DATA_DIR`, {len(s.fresh.times)} rounds (a new empty folder each round), each followed by "
        "the second sync, which must report no action. One `sync --dry-run` warms the caches first. "
        f"Environments with ipykernel that sync gave no kernel: {missed}.",
        f"- **sync peers**: the farm's environments hold ipykernel's files but not a runnable ipykernel, so "
        f"`ipykernel install` runs {s.sample} times (after 1 warm-up) with the interpreter of one real venv "
        f"(`{ke.python}`, ipykernel {ke.ipykernel}), once per kernel name; per environment a person would run "
        "that environment's own interpreter, which costs the same. `jupyter kernelspec install` runs "
        f"{s.sample} times (after 1 warm-up) on copies of the folders kernelkeeper wrote. Both totals are "
        "the per-run mean times the number of adds: extrapolated, not measured.",
        f"- **list**: the synced kernels folder topped up to {li.total} kernelspecs with "
        f"{li.total - li.managed} hand-made ones (ipykernel-install style kernel.json, interpreter of a farm "
        f"environment); {len(li.kk.times)} alternating fresh-process runs of each after one warm-up each. "
        f"kernelkeeper listed {li.kk_count} ({', '.join(f'{v} {k}' for k, v in sorted(li.kk_statuses.items()))}), "
        f"jupyter listed {li.jupyter_count}. kernelkeeper's list also checks each interpreter and its ipykernel.",
        f"- **kernel start**: one real venv (`python{args.minor} -m venv`, then `uv pip install ipykernel` "
        f"from PyPI), `kernelkeeper add` → `kk-real`, `python -m ipykernel install --user --name plain` → "
        "`plain` (same argv[0]; kk-real adds the env block that activates the venv). In this process, "
        f"`jupyter_client.manager.start_new_kernel` (waits for kernel_info), `execute('1+1')`, wait on iopub "
        f"for the result; then shutdown (not timed; slowest {fmt(ke.shutdown_max)}). One warm-up each, then "
        f"{len(ke.kk.times)} alternating runs each. Kernels bound {ke.ip}. sys.executable, VIRTUAL_ENV in the "
        f"kernel: kk-real `{ke.identity['kk-real']}`, plain `{ke.identity['plain']}`.",
        "- Every process gets a clean environment: HOME, XDG_*, JUPYTER_DATA_DIR, JUPYTER_PATH, "
        "JUPYTER_CONFIG_DIR, JUPYTER_RUNTIME_DIR, IPYTHONDIR and PYTHONPYCACHEPREFIX point into the sandbox. "
        + (
            "The real home's and the system's Jupyter folders were the same after the run as before."
            if not changed
            else "**WARNING: these folders outside the sandbox changed during the run (by this run or by another "
            f"process; stderr lists the entries): {', '.join(f'`{c}`' for c in changed)}.**"
        ),
        phases.line("Wall time of the run"),
    ]
    return common.section(
        "## Kernels: sync, list, kernel start",
        "Reproduce (from the repository root, about 3 minutes on 2 cores, needs PyPI for ipykernel):",
        command,
        facts,
        rows,
        method,
    )


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1000, help="environments in the farm (default 1000)")
    parser.add_argument("--rounds", type=int, default=3, help="fresh+no-op sync rounds (default 3)")
    parser.add_argument("--sample", type=int, default=20, help="peer installs timed per peer (default 20)")
    parser.add_argument("--list-total", type=int, default=1000, help="kernelspecs present for list (default 1000)")
    parser.add_argument("-k", type=int, default=5, help="fresh-process runs of each list command (default 5)")
    parser.add_argument("--kernel-runs", type=int, default=10, help="kernel starts of each kernelspec (default 10)")
    parser.add_argument("--minor", default="3.12", help="pyenv Python of the real venv (default 3.12)")
    parser.add_argument("--timeout", type=float, default=120.0, help="per process / kernel (default 120 s)")
    common.sandbox_options(parser)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    jupyter = Path(sys.executable).parent / "jupyter"
    if not jupyter.exists():
        raise SystemExit(f"no `jupyter` beside {sys.executable}: pip install jupyter_client into that venv")
    kk = [sys.executable, "-m", "kernelkeeper"]
    started = time.perf_counter()
    guard = common.Guard(common.guarded_paths((".local/share/jupyter", ".jupyter", ".ipython", ".config/kernelkeeper")))
    with common.sandbox(Sandbox, "kk-bench-kernels-", args.tmp, args.keep) as box:
        phases = common.Phases()
        _, kk_version = run([*kk, "--version"], box.env(box.path("home0"), box.path("jupyter0")), args.timeout)
        facts = machine_facts(box, kk_version.strip())
        print(f"sandbox {box.root}", file=sys.stderr)
        print(f"real venv (python{args.minor} -m venv + uv pip install ipykernel) ...", file=sys.stderr)
        kernel_home = box.path("kernel-home")
        python, ipk_version = real_venv(box, kernel_home, args.minor, max(args.timeout, 300))
        phases.done("real venv")
        print(f"sync of a {args.n}-environment farm ...", file=sys.stderr)
        s = bench_sync(box, args.n, args.rounds, args.sample, python, kk, str(jupyter), args.timeout)
        phases.done("farm + sync + peers")
        print(f"list with {args.list_total} kernelspecs ...", file=sys.stderr)
        li = bench_list(box, s, args.list_total, args.k, kk, str(jupyter), args.timeout)
        phases.done("list")
        print("kernel starts ...", file=sys.stderr)
        ke = bench_kernels(box, kernel_home, python, ipk_version, args.kernel_runs, kk, args.timeout)
        phases.done("kernel starts")
    changed = list(guard.changes("bench_kernels"))
    source_after = source_state()
    if source_after not in facts[1]:
        facts.append(f"- **kernelkeeper's source changed during the run: now at {source_after}**")
    phases["total"] = time.perf_counter() - started
    text = report(common.reproduce_command("bench_kernels.py", argv), facts, s, li, ke, args, changed, phases)
    args.output.write_text(text)
    print(text)
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
