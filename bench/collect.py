"""Assemble bench/RESULTS.md from the sections each benchmark writes.

Each benchmark writes its own file (run it to refresh that section):

* RESULTS-discovery.md  python bench/run.py --kk-src src   (envs vs findpython, pythonfinder, environment_kernels)
* RESULTS-floor.md       python bench/floor.py                       (discovery against the least I/O it needs)
* RESULTS-kernels.md    python bench/bench_kernels.py               (sync, list, kernel start vs ipykernel install)
* RESULTS-provider.md   python bench/bench_provider.py              (GET /api/kernelspecs vs stock, environment_kernels,
                                                                     nb_venv_kernels)
* RESULTS-notebook-envs.md python bench/bench_notebook_envs.py      (PEP 723 notebook environments vs uv run --with)
* RESULTS-overlay.md    python bench/bench_overlay.py               (overlay kernels, "Python (this project)" launch)
* RESULTS-lab.md        python bench/bench_lab.py                   (JupyterLab's launcher and /api/kernelspecs at
                                                                     ~363 kernels: stock, list_all, short list)

then ``python bench/collect.py``.
"""

from __future__ import annotations

from pathlib import Path

BENCH = Path(__file__).resolve().parent
SECTIONS = (
    "RESULTS-discovery.md",
    "RESULTS-floor.md",
    "RESULTS-kernels.md",
    "RESULTS-provider.md",
    "RESULTS-overlay.md",
    "RESULTS-notebook-envs.md",
    "RESULTS-lab.md",
)
HEADER = """# kernelkeeper benchmarks

Every number below comes from one run of the command given in its section, on
a 2-core machine; other jobs loaded it during some runs, so each section gives
the load average it started with (the provider section ran last, with nothing
else running). Ratios are measured within one run, against the peers a
person would pick instead. `python bench/collect.py` rebuilds this file from
the per-benchmark files beside it.

"""


def main() -> None:
    parts = [HEADER]
    for name in SECTIONS:
        path = BENCH / name
        if path.exists():
            text = path.read_text(encoding="utf-8").strip()
            parts.append(text.replace("\n# ", "\n## ", 1) if text.startswith("# ") else text)
            parts.append(f"\n\n_(from bench/{name})_\n\n---\n\n")
    (BENCH / "RESULTS.md").write_text("".join(parts).rstrip("-\n ") + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
