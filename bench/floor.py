"""The physical floor of discovery, and kernelkeeper's time as a ratio to it.

The floor is the least a program must do to learn what ``kernelkeeper envs``
reports from the same farm: list the same folders (the project walk, the tools'
env folders, each environment's parent and site-packages), read each
environment's ``pyvenv.cfg`` (or list its ``conda-meta``), ``readlink`` its
interpreter, and list its ``lib`` folder. Which folders and files those are is
taken from one untimed kernelkeeper discovery, so the floor does exactly the
I/O discovery needs, in plain ``os`` calls, with no logic.

For each farm size (default 1,000 and 10,000 environments) and in one run:

* first discovery in a fresh process (imports done before the clock starts),
  kernelkeeper vs the floor, median of ``-k`` fresh processes, warm file cache;
* a second discovery in the same process with nothing changed
  (``state.discover_cached``: inotify-validated; and the plain stat-validation
  of every watched path, for filesystems without inotify);
* the system calls of each (``strace -c -f``, the imports-only process
  subtracted);
* ``kernelkeeper envs --json`` start-up: a whole process over an empty HOME.

Writes bench/RESULTS-floor.md (``python bench/collect.py`` folds it into
RESULTS.md).

    python bench/floor.py                    # N = 1000, 10000; k = 5
    python bench/floor.py --sizes 1000 -k 3

strace comes from Debian (``apt-get install strace``); without it the syscall
columns say so.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import common  # noqa: E402
from run import default_farm_dir, get_farm  # noqa: E402

SRC = BENCH.parent / "src"


# --------------------------------------------------------------------------- worker (a fresh process)


def _context(home: str) -> Any:
    from kernelkeeper.context import Context

    env = {"HOME": home, "PATH": common.BASE_PATH}
    return Context.from_environ(env=env, cwd=Path(home))


def plan_ops(home: str) -> dict[str, Any]:
    """What the floor does, taken from one discovery: folders to list, files to read, links to read."""
    from kernelkeeper.discovery import discover

    found = discover(_context(home))
    # The watched folders, but each conda-meta/ once: the floor lists those with the environments.
    listed = [p for p in found.watched if os.path.basename(p) != "conda-meta" and os.path.isdir(p)]
    cfgs, metas, links, libs = [], [], [], []
    # For the floor with the report's values (see `floor_report`): what each environment's I/O is.
    envs = []
    # For the floor with the project files (see `floor_files`).
    reads, extra_lists = [], []
    for env in found.environments:
        prefix = str(env.prefix)
        cfg = os.path.join(prefix, "pyvenv.cfg")
        has_cfg = os.path.isfile(cfg)
        envs.append([prefix, has_cfg, str(env.python) if env.python is not None else None, env.kinds[0], env.name])
        if has_cfg:
            cfgs.append(cfg)
        else:
            metas.append(os.path.join(prefix, "conda-meta"))
            if env.minor is not None and "virtualenv" not in env.kinds:
                # A base Python (conda, pyenv, system) imports from dist-packages and the user site too.
                extra_lists += [
                    os.path.join(prefix, "lib", "python3", "dist-packages"),
                    os.path.join(prefix, "local", "lib", f"python{env.minor}", "dist-packages"),
                    os.path.join(home, ".local", "lib", f"python{env.minor}", "site-packages"),
                ]
        if env.python is not None:
            links.append(str(env.python))
        libs.append(os.path.join(prefix, "lib"))
        if env.project is not None:
            project = os.path.realpath(env.project)
            pyproject = os.path.join(project, "pyproject.toml")
            if prefix.startswith(project + os.sep) and os.path.isfile(pyproject):
                reads.append(pyproject)  # which tool manages an in-project env: a kind reported
        if {"pipenv", "virtualenvwrapper"} & set(env.kinds):
            reads.append(os.path.join(prefix, ".project"))  # the project those tools link: reported
    listed_set = set(listed)  # what the first floor lists already (a user site discovery watches)
    return {
        "listed": listed,
        "cfgs": cfgs,
        "metas": metas,
        "links": links,
        "libs": libs,
        "reads": list(dict.fromkeys(reads)),
        "extra_lists": [p for p in dict.fromkeys(extra_lists) if p not in listed_set],
        "environments": len(found.environments),
        "envs": envs,
        "walked": list(found.signatures),
    }


def _listings_and_cfgs(ops: dict[str, Any]) -> int:
    """The folder listings and pyvenv.cfg reads both floors start with."""
    n = 0
    for folder in ops["listed"]:
        try:
            with os.scandir(folder) as it:
                for entry in it:
                    n += entry.is_dir(follow_symlinks=False)
        except OSError:
            pass
    for cfg in ops["cfgs"]:
        n += len(_read(cfg))
    return n


def _read(path: str) -> bytes:
    """A small file's bytes in the fewest system calls: open, one read (these files are far below
    64 KB), close (b"" when it cannot be read). Not ``open()``, whose buffered file adds an fstat,
    an lseek and a read to meet EOF."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return b""
    try:
        return os.read(fd, 1 << 16)
    except OSError:
        return b""
    finally:
        os.close(fd)


def floor(ops: dict[str, Any]) -> int:
    """The I/O alone. Returns a count so nothing is optimised away.

    Plain try/except, not contextlib.suppress: the floor must not pay for a context manager.
    """
    n = _listings_and_cfgs(ops) + _listed(ops["metas"])
    for link in ops["links"]:
        try:  # noqa: SIM105
            n += len(os.readlink(link))
        except OSError:
            pass
    return n + _listed(ops["libs"])


def _listed(folders: list[str]) -> int:
    """os.listdir of each folder (one call per list, not per folder: the floor pays no call per item)."""
    n = 0
    for folder in folders:
        try:  # noqa: SIM105
            n += len(os.listdir(folder))
        except OSError:
            pass
    return n


def floor_report(ops: dict[str, Any]) -> int:
    """`floor`'s I/O, and the values the report is made of, built from what it read with no logic.

    The same calls as `floor` (one listing per folder, one read per pyvenv.cfg, one listing per
    conda-meta and lib/, one readlink per interpreter), and from them what every discovery must
    hand its callers: a signature per walked folder (its subfolders' names and inodes, for the
    provider's change detection), an `Environment` per environment with its paths as `Path`,
    the list in the report's order, and the watched paths. What each environment *is* (its kind,
    its name) is taken as given from the untimed discovery: nothing is decided here, so this is
    the least any Python discovery that returns these values can cost. The cyclic GC is paused,
    as `discovery.discover` pauses it.
    """
    import gc

    gc.disable()
    try:
        return _report(ops)
    finally:
        gc.enable()


def _report(ops: dict[str, Any]) -> int:
    from kernelkeeper.discovery import _order
    from kernelkeeper.environments import Environment, as_path

    walked = set(ops["walked"])
    signatures = {}
    n = 0
    for folder in ops["listed"]:
        try:
            with os.scandir(folder) as it:
                if folder in walked:
                    sig = [(entry.name, entry.inode()) for entry in it if entry.is_dir()]
                    sig.sort()
                    signatures[folder] = tuple(sig)
                else:
                    for entry in it:
                        n += entry.is_dir(follow_symlinks=False)
        except OSError:
            pass
    environments = []
    watched = list(signatures)
    for prefix, has_cfg, python, kind, name in ops["envs"]:
        version = impl = None
        if has_cfg:
            text = _read(f"{prefix}/pyvenv.cfg").decode()
            cfg = {}
            for line in text.splitlines():
                key, sep, value = line.partition("=")
                if sep:
                    cfg[key.strip().lower()] = value.strip()
            version = cfg.get("version_info") or cfg.get("version")
            impl = cfg.get("implementation")
        else:
            try:  # noqa: SIM105
                n += len(os.listdir(f"{prefix}/conda-meta"))
            except OSError:
                pass
        if python is not None:
            try:  # noqa: SIM105
                n += len(os.readlink(python))
            except OSError:
                pass
        site = None
        try:
            for entry in os.listdir(f"{prefix}/lib"):
                if entry.startswith("python"):
                    site = f"{prefix}/lib/{entry}/site-packages"
                    break
        except OSError:
            pass
        environments.append(
            Environment(
                as_path(prefix),
                as_path(python) if python is not None else None,
                version,
                (kind,),
                name,
                None,
                False,
                (),
                impl,
                as_path(site) if site is not None else None,
            )
        )
        watched.append(os.path.dirname(prefix))
        if site is not None:
            watched.append(site)
    environments.sort(key=_order)
    return n + len(environments) + len(dict.fromkeys(watched))


def floor_files(ops: dict[str, Any]) -> int:
    """`floor` plus what it leaves out that ``kernelkeeper envs`` reports, in plain os calls too.

    `floor` learns kinds and health from pyvenv.cfg, conda-meta and a readlink only; the
    report also says which tool manages an in-project env (its project's pyproject.toml),
    which project a pipenv or virtualenvwrapper env belongs to (its ``.project``),
    whether a base Python has ipykernel in dist-packages or the user site (those
    folders), and whether the interpreter runs: a readlink cannot tell a dangling link,
    so this floor stats the interpreter instead.
    """
    n = _listings_and_cfgs(ops) + _listed(ops["metas"] + ops["libs"] + ops["extra_lists"])
    for link in ops["links"]:
        try:  # noqa: SIM105
            n += os.stat(link).st_size > 0
        except OSError:
            pass
    for path in ops["reads"]:
        n += len(_read(path))
    return n


def worker(mode: str, home: str, ops_file: str | None) -> None:
    """One measurement in this fresh process; prints JSON."""
    out: dict[str, Any] = {}
    if mode in ("kk", "kk-imports"):
        from kernelkeeper import state
        from kernelkeeper.discovery import changed, discover, snapshot

        if mode == "kk":
            ctx = _context(home)
            t = time.perf_counter()
            found = discover(ctx)
            out["first"] = time.perf_counter() - t
            out["environments"] = len(found.environments)
    elif mode.startswith("floor"):
        ops = json.loads(Path(ops_file).read_text()) if ops_file else {}
        if mode.startswith("floor-report"):
            import kernelkeeper.discovery  # noqa: F401  # imports before the clock, as for kernelkeeper
        if mode in FLOORS:
            t = time.perf_counter()
            FLOORS[mode](ops)
            out["first"] = time.perf_counter() - t
    elif mode == "kk-second":
        from kernelkeeper import state
        from kernelkeeper.discovery import changed, snapshot

        ctx = _context(home)
        t = time.perf_counter()
        first = state.discover_cached(ctx)
        out["cached_first"] = time.perf_counter() - t
        seconds = []
        for _ in range(5):
            t = time.perf_counter()
            again = state.discover_cached(_context(home))
            seconds.append(time.perf_counter() - t)
            assert again is first
        out["second"] = statistics.median(seconds)
        snap = snapshot(first.watched)
        t = time.perf_counter()
        assert changed(snap, first.signatures) is None
        out["stat_validate"] = time.perf_counter() - t
        out["watched"] = len(first.watched)
    print(json.dumps(out))


FLOORS = {"floor": floor, "floor-files": floor_files, "floor-report": floor_report}


# --------------------------------------------------------------------------- parent


def _worker_argv(mode: str, home: Path, ops: Path | None) -> list[str]:
    argv = [sys.executable, str(Path(__file__).resolve()), "--worker", mode, "--home", str(home)]
    return argv + (["--ops", str(ops)] if ops else [])


def _env() -> dict[str, str]:
    return {"PATH": common.BASE_PATH, "HOME": "/nonexistent", "PYTHONPATH": str(SRC)}


def run_worker(mode: str, home: Path, ops: Path | None) -> dict[str, Any]:
    proc = subprocess.run(_worker_argv(mode, home, ops), capture_output=True, text=True, timeout=600, env=_env())
    if proc.returncode != 0:
        raise common.BenchError(f"worker {mode} failed: {proc.stderr[-2000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


_STRACE_ROW = re.compile(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$")


def syscalls(mode: str, home: Path, ops: Path | None) -> dict[str, int] | None:
    strace = shutil.which("strace")
    if strace is None:
        return None
    with tempfile.NamedTemporaryFile("r", suffix=".strace") as out:
        argv = [strace, "-c", "-f", "-o", out.name, *_worker_argv(mode, home, ops)]
        subprocess.run(argv, capture_output=True, text=True, timeout=900, env=_env(), check=True)
        counts: dict[str, int] = {}
        for line in Path(out.name).read_text().splitlines():
            m = _STRACE_ROW.match(line)
            if m and m.group(2) != "total":
                counts[m.group(2)] = int(m.group(1))
        return counts


def net_syscalls(mode: str, home: Path, ops: Path | None) -> tuple[int, dict[str, int]] | None:
    """Syscalls of the measured work: the run minus the same process with only its imports."""
    full = syscalls(mode, home, ops)
    base = syscalls(f"{mode}-imports", home, ops)
    if full is None or base is None:
        return None
    diff = {k: full.get(k, 0) - base.get(k, 0) for k in set(full) | set(base)}
    diff = {k: v for k, v in diff.items() if v > 0}
    return sum(diff.values()), dict(sorted(diff.items(), key=lambda kv: -kv[1])[:6])


def startup(k: int) -> float:
    """`kernelkeeper envs --json` over an empty HOME: the start-up before any discovery work."""
    with tempfile.TemporaryDirectory() as empty:
        env = {**_env(), "HOME": empty}
        argv = [sys.executable, "-m", "kernelkeeper", "envs", "--json", "--no-default-roots"]
        times = []
        for _ in range(k + 1):
            t = time.perf_counter()
            subprocess.run(argv, capture_output=True, timeout=60, env=env, check=True, cwd=empty)
            times.append(time.perf_counter() - t)
        bare = []
        for _ in range(k + 1):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], capture_output=True, timeout=60, env=env, check=True)
            bare.append(time.perf_counter() - t)
    return statistics.median(times[1:]) - statistics.median(bare[1:]), statistics.median(times[1:])


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--home", help=argparse.SUPPRESS)
    parser.add_argument("--ops", help=argparse.SUPPRESS)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("-k", type=int, default=5, help="fresh processes per measurement (median)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--farm-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=BENCH / "RESULTS-floor.md")
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.home, args.ops)
        return 0

    rows = [
        "| N | found | floor | kernelkeeper | ratio | floor + project files | ratio to it | "
        "floor + report values | its ratio to the floor | syscalls floor | "
        "syscalls floor + project files | syscalls kernelkeeper | second (inotify) | "
        "second (stat, no inotify) | watched paths |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    detail: list[str] = []
    firsts: dict[int, float] = {}
    base = args.farm_dir or default_farm_dir()
    load_start = common.load_average()
    for n in args.sizes:
        manifest = get_farm(base, n, args.seed, False)
        home = Path(manifest.home)
        common.warm(home)
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            ops_path = Path(f.name)
        plan = subprocess.run(
            [
                sys.executable,
                "-c",
                f"import sys, json; sys.path.insert(0, {str(BENCH)!r}); import floor; "
                f"print(json.dumps(floor.plan_ops({str(home)!r})))",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            env=_env(),
            check=True,
        )
        ops_path.write_text(plan.stdout)
        ops = json.loads(plan.stdout)
        kk, fl, ff, fr = [], [], [], []
        for _ in range(args.k + 1):  # alternate, first round untimed (warm-up)
            kk.append(run_worker("kk", home, None)["first"])
            fl.append(run_worker("floor", home, ops_path)["first"])
            ff.append(run_worker("floor-files", home, ops_path)["first"])
            fr.append(run_worker("floor-report", home, ops_path)["first"])
        kk_t, fl_t, ff_t = statistics.median(kk[1:]), statistics.median(fl[1:]), statistics.median(ff[1:])
        fr_t = statistics.median(fr[1:])
        firsts[n] = kk_t
        second = run_worker("kk-second", home, None)
        kk_sys = net_syscalls("kk", home, None)
        fl_sys = net_syscalls("floor", home, ops_path)
        ff_sys = net_syscalls("floor-files", home, ops_path)
        fr_sys = net_syscalls("floor-report", home, ops_path)
        ops_path.unlink()
        rows.append(
            f"| {n:,} | {ops['environments']:,} | {ms(fl_t)} | {ms(kk_t)} | {kk_t / fl_t:.2f}× | "
            f"{ms(ff_t)} | {kk_t / ff_t:.2f}× | {ms(fr_t)} | {fr_t / fl_t:.2f}× | "
            f"{f'{fl_sys[0]:,}' if fl_sys else 'no strace'} | {f'{ff_sys[0]:,}' if ff_sys else 'no strace'} | "
            f"{f'{kk_sys[0]:,}' if kk_sys else 'no strace'} | "
            f"{ms(second['second'])} | {ms(second['stat_validate'])} | {second['watched']:,} |"
        )
        if kk_sys and fl_sys:
            detail.append(f"- N = {n:,}: floor {fl_sys[1]}; kernelkeeper {kk_sys[1]}")
        if fr_sys and fl_sys:
            detail.append(f"- N = {n:,}, floor + report values: {fr_sys[0]:,} syscalls (the floor's {fl_sys[0]:,})")
        detail.append(
            f"- N = {n:,}, floor + project files adds: {len(ops['reads']):,} project files read, "
            f"{len(ops['extra_lists']):,} dist-packages/user-site folders listed, the interpreters stat'ed "
            "instead of readlink'ed"
        )
    if len(args.sizes) >= 2:
        lo, hi = args.sizes[0], args.sizes[-1]
        detail.append(
            f"- growth {lo:,} → {hi:,} environments ({hi / lo:.0f}×): kernelkeeper's first discovery "
            f"{firsts[hi] / firsts[lo]:.1f}×"
        )
    start_net, start_total = startup(args.k)
    facts = [
        f"- kernelkeeper at {common.source_state()}",
        f"- {common.machine()}; load average {load_start} at start, {common.load_average()} at end",
        f"- farms under `{base}` ({common.filesystem(base)}), built by bench/farm.py with seed {args.seed}",
        f"- `kernelkeeper envs --json` over an empty HOME: {ms(start_total)} for the whole process, "
        f"{ms(start_net)} more than `python -c pass` (the start-up before discovery begins: imports)",
    ]
    method = [
        f"- Each time is the median of {args.k} fresh processes (after one untimed warm-up round), kernelkeeper "
        "and the three floors alternating; imports happen before the clock starts.",
        "- The floor lists every folder the discovery watched (project walk, tool folders, env parents, "
        "site-packages, PATH), reads each pyvenv.cfg (or lists conda-meta), readlinks each interpreter and lists "
        "each lib/ — taken from one untimed discovery of the same farm — in plain os calls (a file is "
        "open, one read, close: the fewest calls).",
        "- The floor + project files also reads what the report needs beyond that (`floor_files`): the "
        "pyproject.toml of each project with an in-project env (which tool manages it: a kind), the "
        "`.project` of each pipenv and virtualenvwrapper env (its project), the dist-packages and user "
        "site of base Pythons (ipykernel), and stats each interpreter (a readlink cannot tell a dangling "
        "link: health). The first floor and its ratio are the issue's own measure, unchanged.",
        "- The floor + report values (`floor_report`) makes the floor's calls and builds from what they "
        "read the values every discovery must return, with no logic deciding anything (each environment's "
        "kind and name are given): a signature per walked folder (subfolder names and inodes), an "
        "`Environment` with `Path` fields per environment, the list in the report's order, the watched "
        "paths. Its ratio to the floor is what those values alone cost, before any discovery logic.",
        "- Syscalls: `strace -c -f` of the worker minus the same worker doing only its imports.",
        "- Second discovery: `state.discover_cached` called again in the same process with nothing changed "
        "(median of 5); the stat column is one `discovery.changed` pass over every watched path, what a "
        "filesystem without inotify (NFS) costs.",
        *detail,
    ]
    text = common.section(
        "## Discovery against its floor",
        "Reproduce with:",
        common.reproduce_command("floor.py", argv),
        facts,
        rows,
        method,
    )
    args.out.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
