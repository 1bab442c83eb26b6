"""The server's walk for the kernels its notebooks name (issue 16), on a big root: how long, and whether it waits.

The short list also lists the kernels named by the notebooks under the server's root (so stock JupyterLab
starts them without a prompt): one walk in a daemon thread at start, then a re-read of what the contents
service opens, saves, renames or deletes (src/kernelkeeper/notebook_kernels.py). This measures it on a root of
``--n`` notebooks (default 5,000) in folders two levels deep, each ~``--kb`` KB with its metadata after the
cells (as nbformat writes it), plus what the walk must skip: .git, node_modules and .venv folders with
thousands of files, and an environment (pyvenv.cfg) holding notebooks.

For each setup — (a) the walk on (the default), (b) ``list_notebook_kernels = False`` — a real jupyter_server
with kernelkeeper's extension over that root:

- start: from the process start until ``/api/status`` answers (the walk runs beside the server's start);
- the walk: its time and count from the server's log line;
- the event loop while a big folder is walked: all notebooks are in ``big/``; a client renames it through
  the contents API (``PATCH /api/contents/big``), which makes the server re-walk the renamed folder, while
  another thread sends ``GET /api/status`` every 5 ms for 3 s; the latency of those requests (median, p99,
  max) is what a person's requests would wait, against the same window in (b).

``python bench/bench_notebook_walk.py --n 5000`` prints a Markdown table (also ``--n 50000``: the caps).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import secrets
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import common  # noqa: E402
from bench_provider import free_port  # noqa: E402

WALK_LINE = re.compile(
    r"kernelkeeper \| (\d+) notebooks under .* name (\d+) kernels \((.*?); (\d+) folders, ([\d.]+) s\)"
)
REREAD_LINE = re.compile(r"kernelkeeper \| re-read .*: (\d+) notebooks name (\d+) kernels \(([\d.]+) s")


def notebook_bytes(kernel: str, kb: int) -> bytes:
    import nbformat

    nb = nbformat.v4.new_notebook()
    for i in range(8):
        cell = nbformat.v4.new_code_cell(f"import numpy as np\nx{i} = np.arange({i})\nprint(x{i})")
        cell.outputs = [nbformat.v4.new_output("stream", text="y" * (kb * 1024 // 8))]
        nb.cells.append(cell)
    nb.metadata["kernelspec"] = {"name": kernel, "display_name": kernel, "language": "python"}
    nb.metadata["language_info"] = {"name": "python", "version": "3.11.7"}
    return nbformat.writes(nb).encode()


def make_root(root: Path, n: int, kb: int) -> dict[str, int]:
    """``n`` notebooks under root/big/pNNN/topic-M/, and the noise the walk skips."""
    per_project = 100
    made = 0
    for p in range((n + per_project - 1) // per_project):
        body = notebook_bytes(f"venv-project-{p:03d}-py3.11", kb)
        for j in range(min(per_project, n - made)):
            folder = root / "big" / f"p{p:03d}" / f"topic-{j % 5}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"analysis-{j:03d}.ipynb").write_bytes(body)
            made += 1
    noise = 0
    for skipped in (".git/objects", "web/node_modules/pkg", "big/p000/.venv/lib/python3.11/site-packages/x"):
        folder = root / skipped
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(3000):
            (folder / f"f{i}.ipynb" if i % 10 == 0 else folder / f"f{i}.py").write_bytes(b"{}")
            noise += 1
    env = root / "tools" / "env"
    (env / "share").mkdir(parents=True, exist_ok=True)
    (env / "pyvenv.cfg").write_text("home = /usr/bin\n")
    for i in range(200):
        (env / "share" / f"example-{i}.ipynb").write_bytes(body)
        noise += 1
    return {"notebooks": made, "skipped_files": noise}


@contextlib.contextmanager
def server(env: dict[str, str], root: Path, log: Path, timeout: float) -> Iterator[tuple[int, str, float]]:
    port, token = free_port(), secrets.token_hex(16)
    argv = [
        sys.executable, "-m", "jupyter_server", "--allow-root", "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--ServerApp.root_dir={root}",
        f"--IdentityProvider.token={token}", "--ServerApp.open_browser=False",
    ]  # fmt: skip
    started = time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, env=env, cwd=root, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        while True:
            if proc.poll() is not None:
                raise common.BenchError(f"server exited {proc.returncode}: {log.read_text()[-2000:]}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                if request(port, token, "GET", "/api/status")[0] == 200:
                    break
            if time.perf_counter() - started > timeout:
                raise common.BenchError(f"server not ready in {timeout} s: {log.read_text()[-2000:]}")
            time.sleep(0.02)
        yield port, token, time.perf_counter() - started
    finally:
        common.stop_group(proc, 15)


def request(port: int, token: str, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=data, headers={"Authorization": f"token {token}"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def wait_for(log: Path, pattern: re.Pattern[str], timeout: float) -> re.Match[str] | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = pattern.search(log.read_text(errors="replace"))
        if m:
            return m
        time.sleep(0.05)
    return None


def poll_status(port: int, token: str, seconds: float, out: list[float]) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        request(port, token, "GET", "/api/status")
        out.append(time.perf_counter() - t0)
        time.sleep(0.005)


def run_setup(box: common.Sandbox, root: Path, walk: bool, timeout: float) -> dict[str, Any]:
    tag = "walk" if walk else "off"
    home = box.path(tag, "home")
    config_dir = box.path(tag, "config")
    config = {
        "ServerApp": {"jpserver_extensions": {"kernelkeeper": True}},
        "KernelKeeperSpecManager": {"list_notebook_kernels": walk, "default_roots": False},
    }
    (config_dir / "jupyter_server_config.json").write_text(json.dumps(config))
    env = box.clean_env(home, box.path(tag, "data"), folder=(tag,), config_dir=config_dir)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    log = box.path(tag) / "server.log"
    result: dict[str, Any] = {"setup": tag}
    with server(env, root, log, timeout) as (port, token, ready):
        result["ready"] = ready
        if walk:
            m = wait_for(log, WALK_LINE, timeout)
            if m is None:
                raise common.BenchError(f"no walk line in {log}")
            result["walk"] = {
                "notebooks": int(m.group(1)),
                "kernels": int(m.group(2)),
                "how": m.group(3),
                "folders": int(m.group(4)),
                "seconds": float(m.group(5)),
            }
        time.sleep(1.0)
        latencies: list[float] = []
        baseline: list[float] = []
        poll_status(port, token, 1.0, baseline)
        poller = threading.Thread(target=poll_status, args=(port, token, 3.0, latencies))
        poller.start()
        time.sleep(0.1)
        status, _ = request(port, token, "PATCH", "/api/contents/big", {"path": "big-renamed"})
        poller.join()
        if status != 200:
            raise common.BenchError(f"rename answered {status}")
        if walk:
            m = wait_for(log, REREAD_LINE, timeout)
            result["reread"] = {"notebooks": int(m.group(1)), "seconds": float(m.group(3))} if m else None
        request(port, token, "PATCH", "/api/contents/big-renamed", {"path": "big"})  # back, for the next setup
        wait_for(log, re.compile(r"(?s)re-read .*re-read"), 30 if walk else 0.1)
        result["baseline"] = baseline
        result["latencies"] = latencies
    return result


def ms(values: list[float], q: float | None = None) -> str:
    if not values:
        return "?"
    if q is None:
        return f"{max(values) * 1000:.1f} ms"
    ordered = sorted(values)
    return f"{ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000:.1f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=5000, help="notebooks in the root")
    parser.add_argument("--kb", type=int, default=16, help="size of each notebook's outputs, KB")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each setup, alternating (b) first")
    parser.add_argument("--timeout", type=float, default=120)
    common.sandbox_options(parser)
    args = parser.parse_args(argv)
    with common.sandbox(common.Sandbox, "kk-walk-bench-", args.tmp, args.keep) as box:
        root = box.path("root")
        made = make_root(root, args.n, args.kb)
        size = sum(f.stat().st_size for f in root.rglob("*.ipynb"))
        # Alternating, (b) first: the first server start of a run also pays for cold imports.
        results = [run_setup(box, root, walk, args.timeout) for _ in range(args.repeats) for walk in (False, True)]
    print(f"- {common.machine()}; load average {common.load_average()}; source {common.source_state()}")
    print(
        f"- root: {made['notebooks']:,} notebooks of ~{args.kb} KB outputs under big/ (2 levels), "
        f"{made['skipped_files']:,} files in folders the walk skips; {size / 2**20:,.0f} MB of .ipynb in all"
    )
    print()
    print("| setup | server start → /api/status | walk at start | re-walk of big/ after a rename "
          "| /api/status during the 3 s after the rename: median, p99, max | the 1 s before: median, max |")
    print("|---|--:|---|---|---|---|")
    for r in sorted(results, key=lambda r: r["setup"] != "walk"):
        walk = r.get("walk")
        at_start = (
            f"{walk['notebooks']:,} notebooks, {walk['kernels']} kernels, {walk['folders']:,} folders, "
            f"{walk['seconds']:.2f} s ({walk['how']})" if walk else "—"
        )
        reread = r.get("reread")
        again = f"{reread['notebooks']:,} notebooks, {reread['seconds']:.2f} s" if reread else "—"
        lat, base = r["latencies"], r["baseline"]
        print(
            f"| {'(a) walk on (default)' if r['setup'] == 'walk' else '(b) list_notebook_kernels = False'} "
            f"| {r['ready']:.2f} s | {at_start} | {again} "
            f"| {statistics.median(lat) * 1000:.1f} ms, {ms(lat, 0.99)}, {ms(lat)} ({len(lat)} requests) "
            f"| {statistics.median(base) * 1000:.1f} ms, {ms(base)} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
