"""Notebook-declared environments: the cache hit's cost at kernel start, and the first build against `uv run --with`.

Run from the repository root (needs PyPI for packaging and ipykernel; a sandbox under /tmp, removed at the end):

    .venv/bin/python bench/bench_notebook_envs.py --runs 6

1. start → `1+1` of "Python (this project)" for a notebook declaring `packaging==23.2` whose environment is cached
   (the launcher reads the notebook, keys the declaration, execs the cached env on the ipykernel overlay), against
   (a) a plain kernel of the same Python (a venv with packaging and ipykernel installed, `-m ipykernel_launcher`),
   (b) the overlay kernel of the same cached environment (`kernelkeeper add ENV`), the floor for (1).
2. first build of a declaration (`uv sync --script` into the cache, overlay already there, uv's wheel cache warm)
   against `uv run --no-project --isolated --with <same deps> python -c 'import packaging'` (a fresh ephemeral env).
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


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=6)
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
        # 2. first build vs uv run --with, each on a new declaration (warm wheel cache, new environment).
        builds: list[float] = []
        uvrun: list[float] = []
        for i in range(args.runs):
            dep = [
                "packaging==24.1",
                "packaging==24.0",
                "packaging==23.1",
                "packaging==22.0",
                "packaging==21.3",
                "packaging==21.0",
                "packaging==20.9",
                "packaging==20.4",
            ][i % 8]
            warm = [uv, "run", "--no-project", "--isolated", "--with", dep, "python", "-c", "pass"]
            subprocess.run(warm, check=True, env=env, capture_output=True)  # the wheel in uv's cache for both
            shutil.rmtree(Path(launch.envs_root()), ignore_errors=True)
            path = notebook(box / f"b{i}" / "b.ipynb", dep)
            t = time.perf_counter()
            exe, _argv, _e, notice = launch.plan(str(path.parent), [])
            builds.append(time.perf_counter() - t)
            assert notice is None, notice
            t = time.perf_counter()
            subprocess.run(
                [uv, "run", "--no-project", "--isolated", "--with", dep, "python", "-c", "import packaging"],
                check=True,
                env=env,
                capture_output=True,
            )
            uvrun.append(time.perf_counter() - t)
        med = {k: statistics.median(v) for k, v in times.items()}
        report = {
            "runs": args.runs,
            "setup_first_build_with_overlay_s": round(setup_build, 2),
            "start_median_s": {k: round(v, 3) for k, v in med.items()},
            "start_all_s": {k: [round(x, 3) for x in v] for k, v in times.items()},
            "ratio_declared_vs_plain": round(med["declared"] / med["plain"], 2),
            "ratio_declared_vs_overlay": round(med["declared"] / med["overlay"], 2),
            "first_build_median_s": round(statistics.median(builds), 3),
            "uv_run_with_median_s": round(statistics.median(uvrun), 3),
            "ratio_build_vs_uv_run": round(statistics.median(builds) / statistics.median(uvrun), 2),
            "builds_s": [round(x, 3) for x in builds],
            "uv_run_s": [round(x, 3) for x in uvrun],
        }
        print(json.dumps(report, indent=1))
        return 0
    finally:
        shutil.rmtree(box, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
