"""Notebook-declared environments: the cache hit's cost at kernel start, and the first build against `uv run --with`.

Run from the repository root (needs PyPI for packaging and ipykernel; a sandbox under /tmp, removed at the end):

    .venv/bin/python bench/bench_notebook_envs.py --runs 6

1. start → `1+1` of "Python (this project)" for a notebook declaring `packaging==23.2` whose environment is cached
   (the launcher reads the notebook, keys the declaration, execs the cached env on the ipykernel overlay), against
   (a) a plain kernel of the same Python (a venv with packaging and ipykernel installed, `-m ipykernel_launcher`),
   (b) the overlay kernel of the same cached environment (`kernelkeeper add ENV`), the floor for (1).
2. first build of a new declaration (`launch.plan`: the launcher keys it, forks the builder, which runs
   `uv sync --script` into the cache; overlay already there; wheel, index pages and interpreter in uv's cache),
   timed in a process shaped like the kernel's launcher (`python -I -S`, "build_in_launcher") and, as before, in
   this bench's own process ("build"), against `uv run --no-project --isolated --with <same deps> python -c
   'import packaging'`: the first such run (uv makes its `--with` environment) and a second (uv 0.13 caches that
   environment even with `--isolated`, so it only resolves); and against the bare `uv sync --script` the builder
   runs. `--pairs` rounds, one new packaging version each, order rotated. Online, both sides revalidate their
   cached index page and wheel metadata with the index (this machine's PyPI mirror sends no Cache-Control, so uv
   revalidates on every run): that is most of the time and most of the noise. The same rounds are then run with
   UV_OFFLINE=1: the local work alone.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))


def start_and_run(kernel: str, cwd: Path, env: dict[str, str]) -> float:
    from jupyter_client.manager import start_new_kernel

    t = time.perf_counter()
    km, kc = start_new_kernel(kernel_name=kernel, startup_timeout=120, cwd=str(cwd), env=env)
    try:
        kc.execute_interactive("1+1", timeout=60)
        return time.perf_counter() - t
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


#: One packaging version per round: each round's declaration, and its `uv run --with`, are new to uv.
VERSIONS = [
    "24.2", "24.1", "24.0", "23.1", "23.0", "22.0", "21.3", "21.2", "21.1", "21.0", "20.9", "20.8",
    "20.7", "20.4", "20.3", "20.1", "20.0", "19.2", "19.1", "19.0", "18.0", "17.1", "16.8", "16.7",
]  # fmt: skip


#: launch.plan timed inside a process shaped like the kernel's launcher (``python -I -S launch.py``: 11 MB,
#: standard library only), not inside this bench's 60+ MB one, where the builder's fork and exit cost ~5 ms more.
IN_LAUNCHER = """
import sys, time
sys.path.insert(0, sys.argv[1].rpartition("/")[0])
import launch
t = time.perf_counter()
notice = launch.plan(sys.argv[2], [])[3]
print(time.perf_counter() - t)
print(notice)
"""


def timed(cmd: list[str], env: dict[str, str], cwd: Path | None = None) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, cwd=cwd, capture_output=True, stdin=subprocess.DEVNULL)
    return time.perf_counter() - t


def measure_builds(
    rounds: int, uv: str, env: dict[str, str], notebook: Any, launch: Any, box: Path, *, offline: bool
) -> dict[str, list[float]]:
    """Per round, order rotated: the launcher's first build of a new declaration (``launch.plan``), the
    bare ``uv sync --script`` it runs (same flags and environment, into a new folder), and the first
    ``uv run --with`` of the same dependency; then that ``uv run --with`` again (its ``--with``
    environment now cached by uv, even with ``--isolated``). The round's warm-up, ``uv pip install``
    into a throwaway venv, puts the wheel, the index pages and the interpreter into uv's cache
    without making uv's cached ``--with`` environment.
    """
    out: dict[str, list[float]] = {"build": [], "build_in_launcher": [], "uv_sync": [], "uv_run_again": []}
    if not offline:
        out["uv_run_first"] = []
    if offline:
        env = {**env, "UV_OFFLINE": "1"}
        os.environ["UV_OFFLINE"] = "1"
    try:
        for i in range(rounds):
            dep = f"packaging=={VERSIONS[i % len(VERSIONS)]}"
            where = box / ("off" if offline else "on") / str(i)
            if not offline:
                subprocess.run([uv, "venv", "-q", str(where / "warm")], check=True, env=env)
                subprocess.run(
                    [uv, "pip", "install", "-q", "--python", str(where / "warm/bin/python"), dep], check=True, env=env
                )
            nb = notebook(where / "nb" / "b.ipynb", dep)
            folder = where / "sync"
            folder.mkdir(parents=True)
            (folder / "script.py").write_text(f'# /// script\n# dependencies = ["{dep}"]\n# ///\n')
            drop = ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "PYTHONPATH")
            sync_env = {**{k: v for k, v in env.items() if k not in drop}, "VIRTUAL_ENV": str(folder / "env")}
            sync = [uv, "sync", "--script", str(folder / "script.py"), "--active", "--no-progress"]
            run = [uv, "run", "--no-project", "--isolated", "--with", dep, "python", "-c", "import packaging"]
            # Offline, uv's --with environment is the one the online rounds left: "again", not "first".
            names = ["build", "build_in_launcher", "uv_sync", "uv_run_again" if offline else "uv_run_first"]
            for name in names[i % 4 :] + names[: i % 4]:
                if name == "build":
                    shutil.rmtree(Path(launch.envs_root()), ignore_errors=True)
                    t = time.perf_counter()
                    notice = launch.plan(str(nb.parent), [])[3]
                    out[name].append(time.perf_counter() - t)
                    assert notice is None, notice
                elif name == "build_in_launcher":
                    shutil.rmtree(Path(launch.envs_root()), ignore_errors=True)
                    got = subprocess.run(
                        [sys.executable, "-I", "-S", "-c", IN_LAUNCHER, launch.__file__, str(nb.parent)],
                        env=env,
                        capture_output=True,
                        text=True,
                        check=True,
                    ).stdout.split("\n", 1)
                    assert got[1] == "None\n", got
                    out[name].append(float(got[0]))
                elif name == "uv_sync":
                    out[name].append(timed(sync, sync_env, folder))
                else:
                    out[name].append(timed(run, env))
            if not offline:
                out["uv_run_again"].append(timed(run, env))
    finally:
        os.environ.pop("UV_OFFLINE", None)
    return out


def summary(samples: dict[str, list[float]]) -> dict[str, Any]:
    med = {k: statistics.median(v) for k, v in samples.items()}
    out: dict[str, Any] = {"median_s": {k: round(v, 4) for k, v in med.items()}}
    for build in ("build_in_launcher", "build"):
        for base in ("uv_run_first", "uv_run_again"):
            if base in samples:
                paired = [b / r for b, r in zip(samples[build], samples[base])]
                out[f"ratio_{build}_vs_{base}"] = round(med[build] / med[base], 2)
                out[f"median_paired_ratio_{build}_vs_{base}"] = round(statistics.median(paired), 2)
        out[f"{build}_over_bare_sync_ms"] = round((med[build] - med["uv_sync"]) * 1000, 1)
    out["all_s"] = {k: [round(x, 3) for x in v] for k, v in samples.items()}
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=6, help="rounds of kernel starts (part 1)")
    ap.add_argument("--pairs", type=int, default=20, help="rounds of first builds against uv run --with (part 2)")
    args = ap.parse_args()
    box = Path(tempfile.mkdtemp(prefix="kk-bench-nbenv-"))
    venv_bin = Path(sys.executable).parent
    uv = str(venv_bin / "uv")
    base = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    env = {
        **os.environ,
        "HOME": str(box / "home"),
        "XDG_CACHE_HOME": str(box / "home/.cache"),
        "XDG_DATA_HOME": str(box / "home/.local/share"),
        "JUPYTER_DATA_DIR": str(box / "home/.local/share/jupyter"),
        "JUPYTER_PATH": str(box / "jp"),
        "JUPYTER_CONFIG_DIR": str(box / "home/.jupyter"),
        "JUPYTER_RUNTIME_DIR": str(box / "runtime"),
        "IPYTHONDIR": str(box / "ipython"),
        "UV_CACHE_DIR": str(box / "uv-cache"),
        "UV_PYTHON": base,
        "KERNELKEEPER_BUILD_WAIT": "300",
    }
    env.pop("VIRTUAL_ENV", None)
    os.environ.clear()
    os.environ.update(env)
    (box / "home").mkdir()
    try:
        import nbformat

        from kernelkeeper import launch
        from kernelkeeper.cli import main as kk

        def notebook(path: Path, dep: str) -> Path:
            nb = nbformat.v4.new_notebook()
            nb.cells = [nbformat.v4.new_code_cell(f'# /// script\n# dependencies = ["{dep}"]\n# ///')]
            path.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, str(path))
            return path

        nb = notebook(box / "nbs" / "a.ipynb", "packaging==23.2")
        t = time.perf_counter()
        exe = launch.plan(str(nb.parent), [])[0]  # first build, overlay included (not in the table)
        setup_build = time.perf_counter() - t
        cached_env = Path(exe).parent.parent
        kk(["add", "--this-project"])
        kk(["add", str(cached_env), "--name", "overlay"])
        plain = box / "plain"
        subprocess.run([uv, "venv", "-q", "--python", base, str(plain)], check=True, env=env)
        subprocess.run(
            [uv, "pip", "install", "-q", "--python", str(plain / "bin/python"), "packaging==23.2", "ipykernel"],
            check=True,
            env=env,
        )
        subprocess.run(
            [plain / "bin/python", "-m", "ipykernel", "install", "--user", "--name", "plain"],
            check=True,
            env=env,
            capture_output=True,
        )
        kenv = {**env, "JPY_SESSION_NAME": str(nb)}
        kernels = {"declared": "python-this-project", "plain": "plain", "overlay": "overlay"}
        times: dict[str, list[float]] = {k: [] for k in kernels}
        for spec in kernels.values():
            start_and_run(spec, nb.parent, kenv)  # warm-up (byte code, page cache)
        for i in range(args.runs):
            order = list(kernels)[i % 3 :] + list(kernels)[: i % 3]
            for name in order:
                times[name].append(start_and_run(kernels[name], nb.parent, kenv))
        # 2. first build vs uv run --with, each round on a dependency not used before (network: see module doc).
        pairs = measure_builds(args.pairs, uv, env, notebook, launch, box, offline=False)
        # The same rounds again with UV_OFFLINE=1 (everything is in uv's cache now): the local work alone.
        offline_pairs = measure_builds(args.pairs, uv, env, notebook, launch, box, offline=True)
        med = {k: statistics.median(v) for k, v in times.items()}
        report = {
            "runs": args.runs,
            "setup_first_build_with_overlay_s": round(setup_build, 2),
            "start_median_s": {k: round(v, 3) for k, v in med.items()},
            "start_all_s": {k: [round(x, 3) for x in v] for k, v in times.items()},
            "ratio_declared_vs_plain": round(med["declared"] / med["plain"], 2),
            "ratio_declared_vs_overlay": round(med["declared"] / med["overlay"], 2),
            "pairs": args.pairs,
            "first_build": summary(pairs),
            "first_build_offline": summary(offline_pairs),
        }
        print(json.dumps(report, indent=1))
        return 0
    finally:
        shutil.rmtree(box, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
