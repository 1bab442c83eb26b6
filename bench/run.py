"""Benchmark `python -m kernelkeeper envs --json` against peer discovery tools.

For each farm size N (default 100, 1000, 10000) this builds an environment farm
(bench/farm.py), then runs kernelkeeper and each peer as a fresh process with
the farm as HOME, times it (median of k runs, warm file cache, same farm),
counts how many of the N manifest environments it reported (matched by the
realpath of the prefix, or of the interpreter's prefix), and writes the table
to bench/RESULTS-discovery.md (bench/collect.py assembles bench/RESULTS.md).

    python bench/run.py                       # N = 100, 1000, 10000; k = 5
    python bench/run.py --sizes 100 1000 -k 3 --timeout 120

Peers run from bench/.peers-venv, which this script creates and fills from
PyPI on first use (findpython, pythonfinder, environment_kernels + the
jupyter_client it imports but does not declare).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import common  # noqa: E402
from common import BASE_PATH, CODE_FOLDERS, REPO, env_kernels_config, load_average, warm  # noqa: E402
from farm import Manifest, make_farm  # noqa: E402

PEERS_VENV = BENCH / ".peers-venv"
PEER_PACKAGES = {
    "findpython": "0.9.0",
    "pythonfinder": "3.0.4",
    "environment_kernels": "1.2.0",
    "jupyter_client": "8.10.0",  # environment_kernels imports it without declaring it
}

# Where a user who wanted a PATH-based finder to see every environment would
# point PATH: one glob per tool location, as a line in ~/.bashrc could do.
PATH_GLOBS = (
    ".pyenv/versions/*/bin",
    ".pyenv/versions/*/envs/*/bin",
    "miniconda3/bin",
    "miniconda3/envs/*/bin",
    ".conda/envs/*/bin",
    ".virtualenvs/*/bin",
    ".local/share/virtualenvs/*/bin",
    ".cache/pypoetry/virtualenvs/*/bin",
    ".local/share/hatch/env/virtual/*/*/*/bin",
    ".local/share/pdm/venvs/*/bin",
    ".local/share/uv/python/*/bin",
    "venvs/*/bin",
    ".venvs/*/bin",
    "envs/*/bin",
)
PROJECT_ENV_DIRS = (".venv", "venv", "env", ".pixi/envs/*")


def favourable_path(home: Path) -> str:
    dirs: list[str] = []
    globs = list(PATH_GLOBS)
    for folder in CODE_FOLDERS:
        for depth in (1, 2, 3):
            for env_dir in PROJECT_ENV_DIRS:
                globs.append("/".join([folder, *["*"] * depth, env_dir, "bin"]))
    for pattern in globs:
        dirs.extend(str(p) for p in sorted(home.glob(pattern)))
    dirs = list(dict.fromkeys(dirs))
    return ":".join([str(home / ".pyenv" / "bin"), *dirs, BASE_PATH])


# --------------------------------------------------------------------------- tools


@dataclass
class Tool:
    name: str
    argv: list[str]
    env: dict[str, str]
    parse: Callable[[str], list[str]]  # stdout -> reported prefixes/interpreters
    config: str  # how it was configured, for the report


def prefix_of(python: str) -> str:
    parent = os.path.dirname(python)
    if os.path.basename(parent) in ("bin", "Scripts"):
        parent = os.path.dirname(parent)
    return os.path.realpath(parent)


def parse_kernelkeeper(stdout: str) -> list[str]:
    found: list[str] = []
    for env in json.loads(stdout):
        if env.get("prefix"):
            found.append(os.path.realpath(env["prefix"]))
        if env.get("python"):
            found.append(prefix_of(env["python"]))
    return found


def parse_peer(stdout: str) -> list[str]:
    return [prefix_of(p) for p in json.loads(stdout)["pythons"]]


def base_env(home: Path) -> dict[str, str]:
    return {
        "HOME": str(home),
        "PATH": f"{home / '.pyenv' / 'bin'}:{home / '.pyenv' / 'shims'}:{BASE_PATH}",
        "LANG": "C.UTF-8",
    }


#: Set by --kk-src: run kernelkeeper from a source tree instead of an installed copy.
KK_PYTHONPATH: dict[str, str] = {}


def make_tools(
    manifest: Manifest, kk_python: str, peers: list[str], defaults: bool
) -> tuple[list[Tool], int]:
    root, home = Path(manifest.root), Path(manifest.home)
    tools = [
        Tool(
            "kernelkeeper",
            [kk_python, "-m", "kernelkeeper", "envs", "--json"],
            {**base_env(home), **KK_PYTHONPATH},
            parse_kernelkeeper,
            "defaults: HOME only (PATH = ~/.pyenv/bin:~/.pyenv/shims:/usr/local/bin:/usr/bin:/bin)",
        )
    ]
    peer_python = str(PEERS_VENV / "bin" / "python")
    driver = str(BENCH / "peer_driver.py")
    cfg_dir = root / "peer-config"
    cfg_dir.mkdir(exist_ok=True)
    path_file = cfg_dir / "PATH"
    path_value = favourable_path(home)
    path_file.write_text(path_value + "\n")
    n_dirs = path_value.count(":") + 1 - 4  # less ~/.pyenv/bin and BASE_PATH
    jupyter_dir = cfg_dir / "jupyter"
    jupyter_dir.mkdir(exist_ok=True)
    (jupyter_dir / "jupyter_server_config.json").write_text(
        json.dumps(env_kernels_config(), indent=1) + "\n"
    )
    empty_jupyter = cfg_dir / "jupyter-empty"
    empty_jupyter.mkdir(exist_ok=True)
    for peer in peers:
        argv = [peer_python, driver, peer]
        if peer == "environment_kernels":
            env = {**base_env(home), "JUPYTER_CONFIG_DIR": str(jupyter_dir)}
            how = ("JUPYTER_CONFIG_DIR config: virtualenv_env_dirs = every tool's env dir "
                   "+ ~/<code folder>/*{1,3}; conda_env_dirs = ~, ~/miniconda3/envs, "
                   "~/.conda/envs, <projects>/.pixi/envs; use_conda_directly off")
        else:
            env = {**base_env(home), "KK_BENCH_PATH_FILE": str(path_file),
                   "PYENV_ROOT": str(home / ".pyenv")}
            how = ("PATH = ~/.pyenv/bin + the bin dir of every env, globbed from every tool's "
                   "env location and <code folder>/*{1,3}/{.venv,venv,env,.pixi/envs/*} "
                   "(see notes for the count); PYENV_ROOT=~/.pyenv")
        tools.append(Tool(peer, argv, env, parse_peer, how))
        if defaults:
            env = {**base_env(home), "JUPYTER_CONFIG_DIR": str(empty_jupyter)}
            how = ("its own defaults (~/.conda/envs, ~/.virtualenvs; conda not on PATH), "
                   "no config file" if peer == "environment_kernels"
                   else "its own defaults: HOME, ~/.pyenv/bin on PATH")
            tools.append(Tool(f"{peer} (defaults)", argv, env, parse_peer, how))
    return tools, n_dirs


# --------------------------------------------------------------------------- running


@dataclass
class Run:
    seconds: float
    timed_out: bool
    stdout: str = ""
    error: str = ""


def run_once(tool: Tool, cwd: Path, timeout: float) -> Run:
    p = common.run_process(tool.argv, tool.env, timeout, cwd)
    if p.timed_out:
        return Run(p.seconds, True)
    if p.returncode != 0:
        return Run(p.seconds, False, p.stdout, f"exit {p.returncode}: {p.stderr.strip()[-600:]}")
    return Run(p.seconds, False, p.stdout)


@dataclass
class Result:
    tool: Tool
    times: list[float] = field(default_factory=list)
    timed_out: bool = False
    error: str = ""
    found: set[str] | None = None
    stdout: str = ""

    @property
    def median(self) -> float | None:
        return statistics.median(self.times) if self.times else None


def measure(tool: Tool, cwd: Path, k: int, timeout: float, slow: float) -> Result:
    """One warm-up run, then k timed runs; a run slower than `slow` seconds is the only one."""
    result = Result(tool)
    first = run_once(tool, cwd, timeout)
    if first.timed_out:
        result.timed_out = True
        return result
    if first.error:
        result.error = first.error
        return result
    runs = [first] if first.seconds > slow else []
    while len(runs) < k and (not runs or runs[0].seconds <= slow):
        run = run_once(tool, cwd, timeout)
        if run.timed_out:
            result.timed_out = True
            return result
        runs.append(run)
    result.times = [r.seconds for r in runs]
    last = runs[-1]
    result.stdout = last.stdout
    if last.error:
        result.error = last.error
        return result
    try:
        result.found = set(tool.parse(last.stdout))
    except (ValueError, KeyError, TypeError) as exc:
        result.error = f"unreadable output: {exc!r}: {last.stdout[:300]!r}"
    return result


# --------------------------------------------------------------------------- setup


def ensure_peers_venv() -> dict[str, Any]:
    """bench/.peers-venv, made and filled from PyPI on first use; the versions in it and its Python's."""
    return common.ensure_venv(PEERS_VENV, PEER_PACKAGES)


def kernelkeeper_ready(kk_python: str) -> str:
    """'' when `python -m kernelkeeper envs --json --help` works, else why not."""
    try:
        proc = subprocess.run([kk_python, "-m", "kernelkeeper", "envs", "--json", "--help"],
                              capture_output=True, text=True, timeout=60, cwd="/",
                              env={"PATH": BASE_PATH, "HOME": "/nonexistent", **KK_PYTHONPATH})
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if proc.returncode != 0:
        return proc.stderr.strip()[-400:] or f"exit {proc.returncode}"
    return ""


def default_farm_dir() -> Path:
    # tmpfs: a 10,000-env farm (~480k inodes) builds in ~20 s there, minutes on this disk.
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else Path("/tmp")


def get_farm(base: Path, n: int, seed: int, rebuild: bool) -> Manifest:
    root = base / f"kk-farm-{n}"
    if not rebuild and (root / "manifest.json").exists():
        manifest = Manifest.load(root)
        if manifest.seed == seed and manifest.n == n:
            return manifest
    return make_farm(root, n, seed)


# --------------------------------------------------------------------------- report


def fmt_time(result: Result, timeout: float) -> str:
    if result.timed_out:
        return f"> {timeout:.0f} s"
    if result.error:
        return "error"
    m = result.median
    assert m is not None
    text = f"{m:.2f} s" if m < 10 else f"{m:.1f} s"
    return text + (f" ({len(result.times)} run)" if len(result.times) == 1 else "")


def summarize(n: int, manifest: Manifest, results: list[Result], timeout: float) -> list[str]:
    kk = results[0]
    kk_time = kk.median if not (kk.timed_out or kk.error) else None
    ipy = {e.prefix for e in manifest.envs if e.has_ipykernel}
    rows = []
    for r in results:
        t = fmt_time(r, timeout)
        if r.timed_out and kk_time:
            ratio = f"> {timeout / kk_time:.0f}×"
        elif r.median is not None and kk_time and not r.error:
            ratio = f"{r.median / kk_time:.1f}×"
        else:
            ratio = "—"
        if r.found is None:
            found, found_ipy = "—", "—"
        else:
            prefixes = {e.prefix for e in manifest.envs}
            hit = r.found & prefixes
            found = f"{len(hit)}/{len(prefixes)}"
            found_ipy = f"{len(hit & ipy)}/{len(ipy)}"
        rows.append(f"| {n} | {r.tool.name} | {t} | {ratio} | {found} | {found_ipy} |")
    return rows


def missed_report(manifest: Manifest, kk: Result) -> list[str]:
    if kk.found is None:
        return ["- kernelkeeper gave no result: " + ("timed out" if kk.timed_out else kk.error)]
    missed = [e for e in manifest.envs if e.prefix not in kk.found]
    if not missed:
        return ["- kernelkeeper found every environment."]
    by_layout: dict[str, list[str]] = {}
    for e in missed:
        extra = " (broken)" if e.broken else ""
        by_layout.setdefault(e.layout, []).append(e.prefix + extra)
    lines = [f"- kernelkeeper missed {len(missed)}:"]
    for layout, prefixes in sorted(by_layout.items(), key=lambda kv: -len(kv[1])):
        shown = ", ".join(f"`{p}`" for p in prefixes[:3])
        more = f" … and {len(prefixes) - 3} more" if len(prefixes) > 3 else ""
        lines.append(f"  - {layout}: {len(prefixes)} — {shown}{more}")
    return lines


def field_report(manifest: Manifest, kk_envs: list[dict[str, Any]]) -> list[str]:
    """Where kernelkeeper's fields for a found environment differ from the farm's truth."""
    want = manifest.by_prefix()
    diffs: dict[tuple[str, str], list[str]] = {}

    def real(p: object) -> str | None:
        return os.path.realpath(str(p)) if p else None

    for env in kk_envs:
        prefix = os.path.realpath(str(env.get("prefix", "")))
        entry = want.get(prefix)
        if entry is None:
            continue
        kinds = env.get("kinds") or [env.get("kind")]
        checks = {
            "kind": (entry.kind, kinds[0] if kinds else None),
            "version": (entry.version, env.get("version")),
            "has_ipykernel": (entry.has_ipykernel, env.get("has_ipykernel")),
            "healthy": (not entry.broken, env.get("healthy")),
            "project": (real(entry.project), real(env.get("project"))),
        }
        for name, (expected, got) in checks.items():
            if name == "version" and entry.broken:
                continue  # the farm's broken envs claim a Python that is gone
            if name == "kind" and entry.layout == "standalone":
                continue
            if expected != got:
                key = (entry.layout, f"{name}: expected {expected!r}, got {got!r}")
                if name == "project":
                    key = (entry.layout, "project: expected "
                           + ("none" if expected is None else "the farm's project")
                           + f", got {'none' if got is None else 'another path'}")
                diffs.setdefault(key, []).append(prefix)
    if not diffs:
        return ["- every found environment has the expected kind, version, has_ipykernel, "
                "healthy and project."]
    lines = ["- fields that differ from the farm's truth (layout: what — count, e.g.):"]
    for (layout, what), prefixes in sorted(diffs.items()):
        lines.append(f"  - {layout}: {what} — {len(prefixes)}, e.g. `{prefixes[0]}`")
    return lines


PEER_NOTES: tuple[str, ...] = (
    (
        '- Why peers miss what they miss: findpython and pythonfinder run every `python*` '
        'file they see (2–3 per env) to read its version, so their time grows with N; '
        "findpython's `-I` probe fails on Python 2.7; environment_kernels globs `BASE/*/` "
        '(dot folders such as `.venv` are never matched), keeps one kernel per folder name '
        '(all the `venv`, `env`, `default` folders collapse into one), and only lists envs '
        'with `bin/ipython` whose python imports ipykernel.'
    ),
    (
        '- environment_kernels 1.2.0 (its last release) installs on Python 3.11 but imports '
        'jupyter_client and traitlets without declaring them; with jupyter_client 8.10.0 its '
        '`get_all_specs()` works unpatched.'
    ),
)


def write_results(path: Path, command: str, facts: list[str], rows: list[str],
                  tools_used: list[Tool], notes: list[str]) -> None:
    configs = []
    seen = set()
    for t in tools_used:
        if t.name not in seen:
            seen.add(t.name)
            configs.append(f"- **{t.name}**: {t.config}")
    text = "\n".join(
        [
            "## Discovery: `kernelkeeper envs --json` vs findpython, pythonfinder, environment_kernels",
            "",
            "Reproduce with:",
            "",
            "```",
            command,
            "```",
            "",
            "### Machine",
            "",
            *facts,
            "",
            "### Results",
            "",
            "Time is the wall-clock median of the timed runs of a fresh process (after one "
            "untimed warm-up run; a tool slower than the `--slow` limit is run once). "
            "Ratio is time ÷ kernelkeeper's time on the same farm. Found counts the farm's "
            "environments the tool reported (prefix realpath, or the prefix of a reported "
            "interpreter); the last column counts those among the environments that have "
            "ipykernel (what environment_kernels looks for).",
            "",
            "| N | tool | time | ratio | found | found (with ipykernel) |",
            "| ---: | --- | ---: | ---: | ---: | ---: |",
            *rows,
            "",
            "### How each tool was configured",
            "",
            *configs,
            "",
            "### Method",
            "",
            "- `bench/farm.py` writes N environments as on-disk copies of what venv, virtualenv, "
            "uv, poetry, pipenv, virtualenvwrapper, conda, pyenv, pyenv-virtualenv, hatch, pdm "
            "and pixi leave behind (no tool runs); interpreter symlinks point at this machine's "
            "pyenv Pythons; about a third have ipykernel; ~0.5 % are broken (dangling "
            "`bin/python`). The manifest (`<farm>/manifest.json`) is the ground truth.",
            "- Every tool runs as a fresh process with `HOME=<farm>/home`, a clean environment "
            "(`HOME`, `PATH`, `LANG`, and what its configuration needs) and the farm root "
            "as working directory. The farm is walked once before timing so the file cache is "
            "warm.",
            "- Peers run from `bench/.peers-venv` (made by run.py). The farm's conda, pixi, pyenv "
            "and uv-python prefixes are not real installs: their interpreter is a symlink to a "
            "pyenv Python, so a peer that runs `import ipykernel` through them cannot see the "
            "farm's ipykernel there (only environment_kernels does this).",
            *PEER_NOTES,
            "",
            "### Notes",
            "",
            *notes,
            "",
        ]
    )
    path.write_text(text)


def machine_facts(kk_python: str, versions: dict[str, Any], farm_dir: Path,
                  load_at_start: str) -> list[str]:
    kk_version = subprocess.run(
        [kk_python, "-c", "import sys; print(sys.version.split()[0])"],
        capture_output=True, text=True,
    ).stdout.strip()
    peers = ", ".join(f"{n} {versions.get(n, '?')}" for n in PEER_PACKAGES)
    commit = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                            capture_output=True, text=True).stdout.strip() or "?"
    return [
        f"- kernelkeeper at commit `{commit}`",
        f"- {common.machine(cpu=False)}; load average (1, 5, 15 min) "
        f"{load_at_start} at start, {load_average()} at end (other work shares the machine)",
        f"- kernelkeeper run by Python {kk_version} (`{kk_python}`)",
        f"- peers run by Python {versions.get('python', '?')} in bench/.peers-venv: {peers}",
        f"- farms under `{farm_dir}` "
        + ("(tmpfs)" if str(farm_dir).startswith("/dev/shm") else ""),
    ]


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("-k", "--repeats", type=int, default=5, help="timed runs per tool")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per run")
    parser.add_argument("--slow", type=float, default=60,
                        help="a first run slower than this is the only run")
    parser.add_argument("--peers", nargs="*", default=["findpython", "pythonfinder",
                                                       "environment_kernels"])
    parser.add_argument("--no-defaults", action="store_true",
                        help="skip the peers' out-of-the-box configuration rows")
    parser.add_argument("--farm-dir", type=Path, default=default_farm_dir())
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rebuild", action="store_true", help="rebuild farms even if present")
    parser.add_argument("--kk-python", default=sys.executable,
                        help="interpreter with kernelkeeper installed (default: this one)")
    parser.add_argument("--kk-src", type=Path,
                        help="run kernelkeeper from this source dir (PYTHONPATH) instead")
    parser.add_argument("--out", type=Path, default=BENCH / "RESULTS-discovery.md")
    parser.add_argument("--wait", type=float, default=0,
                        help="seconds to wait for kernelkeeper to become runnable")
    args = parser.parse_args(argv)

    if args.kk_src:
        KK_PYTHONPATH["PYTHONPATH"] = str(args.kk_src.resolve())
    deadline = time.monotonic() + args.wait
    while (why := kernelkeeper_ready(args.kk_python)) and time.monotonic() < deadline:
        time.sleep(30)
    if why:
        print(f"kernelkeeper is not runnable with {args.kk_python}: {why}", file=sys.stderr)
        return 2

    load_at_start = load_average()
    versions: dict[str, Any] = ensure_peers_venv() if args.peers else {}
    command = "python bench/run.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    rows: list[str] = []
    notes: list[str] = []
    all_tools: list[Tool] = []
    for n in args.sizes:
        t0 = time.perf_counter()
        manifest = get_farm(args.farm_dir, n, args.seed, args.rebuild)
        notes += [f"### N = {n}", "",
                  f"- farm `{manifest.root}` built in {manifest.build_seconds} s"]
        print(f"N={n}: farm {manifest.root} ready ({time.perf_counter() - t0:.1f} s, "
              f"built in {manifest.build_seconds} s); warmed {warm(Path(manifest.home))} entries",
              flush=True)
        tools, n_dirs = make_tools(manifest, args.kk_python, args.peers, not args.no_defaults)
        notes.append(f"- the favourable PATH holds {n_dirs} env bin dirs")
        all_tools += tools
        results = []
        for tool in tools:
            r = measure(tool, Path(manifest.root), args.repeats, args.timeout, args.slow)
            results.append(r)
            found = "—" if r.found is None else len(r.found & set(manifest.by_prefix()))
            print(f"  {tool.name:32s} {fmt_time(r, args.timeout):>16s}  found {found}"
                  + (f"  ERROR {r.error}" if r.error else ""), flush=True)
            if r.error:
                notes.append(f"- {tool.name} failed: {r.error}")
        rows += summarize(n, manifest, results, args.timeout)
        notes += missed_report(manifest, results[0])
        if results[0].found is not None:
            notes += field_report(manifest, json.loads(results[0].stdout))
        notes.append("")
    facts = machine_facts(args.kk_python, versions, args.farm_dir, load_at_start)
    write_results(args.out, command, facts, rows, all_tools, notes)
    print(f"wrote {args.out}")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
