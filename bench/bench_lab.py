"""The kernel list in a real JupyterLab at 300+ kernels (issue 16): /api/kernelspecs size and time to a launcher.

A farm (bench/farm.py; N = 1,000 by default: 312 healthy environments with ipykernel at seed 0; N = 1,120
gives 360, near the issue's 363), three JupyterLab servers over it, one after the other:

(a) stock     jupyter_client's KernelSpecManager over the kernelspecs ``kernelkeeper sync`` writes for the
              farm (kernelkeeper's front-end extension disabled: stock JupyterLab);
(b) list_all  kernelkeeper's provider listing every kernel (the behaviour before the short list);
(c) short     kernelkeeper's provider with its default short list (and its front-end extension).

For each: the bytes of ``GET /api/kernelspecs`` on the wire, plain and with ``Accept-Encoding: gzip``; then
in Debian's chromium (Playwright, headless, 1600×1000, as tests/lab drives it) the time from navigation
(``/lab?reset``) until the launcher is usable: every kernel's Notebook and Console tile is in the page
(plus kernelkeeper's "All kernels…" tile where the extension is on). One untimed navigation warms the
browser cache and the server; the next ``--repeats`` are timed, each in a new page.

``python bench/bench_lab.py --n 1000 1120`` writes bench/RESULTS-lab.md.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import common  # noqa: E402
from bench_provider import KK_CLASS, STOCK_CLASS, Sandbox, free_port, kk_config  # noqa: E402
from common import STANDALONE_DIRS, BenchError, run  # noqa: E402
from farm import make_farm  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@dataclass
class Result:
    name: str
    n: int = 0  # farm size
    expected: int = 0  # healthy environments with ipykernel in the farm
    kernels: int = 0  # in /api/kernelspecs
    plain: int = 0  # bytes
    gzip: int = 0  # bytes on the wire with Accept-Encoding: gzip (== plain when the server does not compress)
    tiles: int = 0  # launcher tiles (every category)
    height: int = 0  # the launcher's scrollHeight, px
    seconds: list[float] = field(default_factory=list)
    error: str | None = None


@contextlib.contextmanager
def lab_server(env: dict[str, str], workdir: Path, ksm_class: str, timeout: float) -> Iterator[tuple[int, str]]:
    """A JupyterLab subprocess in its own session: (port, token); its process group is ended on the way out."""
    root = workdir / "root"
    root.mkdir(parents=True, exist_ok=True)
    port, token = free_port(), secrets.token_hex(16)
    argv = [
        sys.executable, "-m", "jupyterlab", "--allow-root", "--no-browser", "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--ServerApp.root_dir={root}",
        f"--IdentityProvider.token={token}", f"--ServerApp.kernel_spec_manager_class={ksm_class}",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]  # fmt: skip
    log = workdir / "lab.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            argv, env=env, cwd=root, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise BenchError(f"JupyterLab exited {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                if get(port, token, "/api/status")[0] == 200:
                    break
            if time.monotonic() > deadline:
                raise BenchError(f"JupyterLab not ready in {timeout:.0f} s:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)
        yield port, token
    finally:
        common.stop_group(proc, 10)


def get(port: int, token: str, path: str, encoding: str = "identity") -> tuple[int, bytes, dict[str, str]]:
    """(status, body as sent, headers): http.client does not decompress, so len(body) is what crossed the wire."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request("GET", path, headers={"Authorization": f"token {token}", "Accept-Encoding": encoding})
        resp = conn.getresponse()
        return resp.status, resp.read(), {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()


def measure_sizes(port: int, token: str, res: Result) -> None:
    status, plain, _ = get(port, token, "/api/kernelspecs")
    if status != 200:
        raise BenchError(f"/api/kernelspecs answered {status}")
    res.kernels = len(json.loads(plain)["kernelspecs"])
    res.plain = len(plain)
    status, body, headers = get(port, token, "/api/kernelspecs", "gzip")
    res.gzip = len(body) if headers.get("content-encoding") == "gzip" else len(plain)


# Every kernel's Notebook and Console tile, and "All kernels…" where the extension adds it.
READY = """([notebook, console]) => {
  const n = document.querySelectorAll('.jp-LauncherCard[data-category="Notebook"]').length;
  const c = document.querySelectorAll('.jp-LauncherCard[data-category="Console"]').length;
  return n >= notebook && c >= console;
}"""


def measure_launcher(p: Any, profile: Path, url: str, res: Result, extension: bool, repeats: int) -> None:
    context = p.chromium.launch_persistent_context(
        str(profile), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
        viewport={"width": 1600, "height": 1000}, timeout=120_000,
    )  # fmt: skip
    context.set_default_timeout(120_000)
    want = [res.kernels + (1 if extension else 0), res.kernels]
    try:
        for i in range(repeats + 1):  # the first one warms the browser cache and the server: not counted
            page = context.new_page()
            started = time.perf_counter()
            page.goto(url)
            page.wait_for_function(READY, arg=want, polling="raf")
            seconds = time.perf_counter() - started
            if i:
                res.seconds.append(seconds)
            res.tiles = page.locator(".jp-LauncherCard").count()
            res.height = int(page.evaluate("document.querySelector('.jp-Launcher-body')?.scrollHeight ?? 0"))
            page.close()
    finally:
        context.close()


def bench(box: Sandbox, n: int, seed: int, repeats: int, timeout: float) -> tuple[list[Result], dict[str, Any]]:
    from playwright.sync_api import sync_playwright

    manifest = make_farm(box.root / f"farm-{n}", n, seed)
    home = Path(manifest.home)
    expected = sum(1 for e in manifest.envs if e.has_ipykernel and not e.broken)
    extras: dict[str, Any] = {"expected": expected}
    print(f"N={n}: {manifest.n} environments, {expected} healthy with ipykernel", file=sys.stderr)
    share = str(Path(sys.prefix) / "share" / "jupyter")  # the prebuilt extension, where pip put it

    def env_for(tag: str, provider: dict[str, Any] | None, extension: bool) -> dict[str, str]:
        env = box.env(home, tag, box.path(tag, "data"), box.path(tag, "config"))
        env["JUPYTER_PATH"] = os.pathsep.join([env["JUPYTER_PATH"], share])
        config_dir = Path(env["JUPYTER_CONFIG_DIR"])
        config: dict[str, Any] = {"ServerApp": {"jpserver_extensions": {"kernelkeeper": provider is not None}}}
        if provider is not None:
            config["KernelKeeperSpecManager"] = {**kk_config()["KernelKeeperSpecManager"], **provider}
        (config_dir / "jupyter_server_config.json").write_text(json.dumps(config, indent=1) + "\n")
        (config_dir / "labconfig").mkdir(exist_ok=True)
        page_config = {"disabledExtensions": {} if extension else {"kernelkeeper": True}}
        (config_dir / "labconfig" / "page_config.json").write_text(json.dumps(page_config))
        settings = config_dir / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
        settings.mkdir(parents=True, exist_ok=True)
        (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
        return env

    plans: list[tuple[Result, str, dict[str, str], bool]] = []
    env = env_for(f"{n}-stock", None, extension=False)
    sync = json.loads(run([sys.executable, "-m", "kernelkeeper", "sync", "--json"], env, timeout)[1])
    extras["written"] = len(list((Path(env["JUPYTER_DATA_DIR"]) / "kernels").glob("*/kernel.json")))
    extras["sync_actions"] = len(sync.get("actions", []))
    plans.append(
        (Result("(a) stock manager, kernels written by `kernelkeeper sync`", n, expected), STOCK_CLASS, env, False)
    )
    env = env_for(f"{n}-all", {"list_all": True}, extension=True)
    plans.append((Result("(b) provider, `list_all = True` (the previous behaviour)", n, expected), KK_CLASS, env, True))
    env = env_for(f"{n}-short", {"list_all": False}, extension=True)
    plans.append((Result("(c) provider, default short list", n, expected), KK_CLASS, env, True))

    with sync_playwright() as p:
        for res, cls, env, extension in plans:
            tag = Path(env["JUPYTER_CONFIG_DIR"]).parent.name
            try:
                with lab_server(env, box.path(tag), cls, timeout) as (port, token):
                    measure_sizes(port, token, res)
                    url = f"http://127.0.0.1:{port}/lab?reset&token={token}"
                    measure_launcher(p, box.path(tag, "profile"), url, res, extension, repeats)
            except Exception as e:  # one setup failing is reported, the others still run
                res.error = f"{type(e).__name__}: {e}"[:2000]
            print(f"{res.name}: {res}", file=sys.stderr)
    return [r for r, *_ in plans], extras


def chromium_version() -> str:
    try:
        return subprocess.run([str(CHROMIUM), "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "chromium ?"


def kb(n: int) -> str:
    return f"{n / 1024:,.1f} KB"


def report(out: Path, command: str, facts: list[str], results: list[Result], extras: dict[int, dict[str, Any]]) -> None:
    rows = [
        "| farm | setup | kernels listed | `/api/kernelspecs` plain | gzip | launcher tiles | launcher height "
        "| navigation → usable launcher, median (min–max) |",
        "|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    for r in results:
        if r.error:
            rows.append(f"| {r.n} | {r.name} | error: {r.error.splitlines()[0]} | | | | | |")
            continue
        s = r.seconds
        timing = f"{statistics.median(s):.2f} s ({min(s):.2f}–{max(s):.2f})" if s else "—"
        rows.append(
            f"| N = {r.n:,} ({r.expected} with ipykernel) | {r.name} | {r.kernels} | {kb(r.plain)} | {kb(r.gzip)} "
            f"| {r.tiles} | {r.height:,} px | {timing} |"
        )
    method = [
        "- Farm: bench/farm.py at each N; "
        + "; ".join(
            f"N = {n:,}: {e['expected']} healthy environments with ipykernel, `kernelkeeper sync` wrote "
            f"{e['written']} kernelspecs for (a)"
            for n, e in extras.items()
        )
        + ". (a) also lists the server's own python3. The provider is told the farm's "
        f"standalone folders ({', '.join(STANDALONE_DIRS)}) as `env_paths`, `sync` the same as discovery paths.",
        "- Sizes: one `GET /api/kernelspecs` each with `Accept-Encoding: identity` and `gzip`, measured as the "
        "bytes of the body http.client received (it does not decompress); gzip equals plain where the server "
        "does not compress.",
        "- Launcher: JupyterLab in Debian's chromium via Playwright (headless, 1600×1000, one persistent profile "
        "per setup). One untimed navigation to `/lab?reset` first; then each timed run opens a new page, "
        "navigates, and stops when every listed kernel's Notebook and Console tile is in the launcher (and "
        'kernelkeeper\'s "All kernels…" tile for (b) and (c)), checked on every animation frame. '
        "Height is the launcher body's scrollHeight (the screen is 1000 px).",
        "- (a) runs with kernelkeeper's front-end extension disabled (stock JupyterLab); (b) and (c) with it.",
        "- Times are wall-clock on a shared 2-core machine (see the load average above): where the min–max ranges "
        "of two setups overlap, this run does not tell them apart.",
    ]
    text = common.section(
        f"# JupyterLab's launcher at {' and '.join(str(e['expected']) for e in extras.values())} kernels (issue 16)",
        "Reproduce (about 3 minutes a farm size):",
        command,
        facts,
        rows,
        method,
    )
    out.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, nargs="+", default=[1000], help="farm sizes (default 1000: 312 kernels)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=5, help="timed navigations per setup (default 5)")
    parser.add_argument("--timeout", type=float, default=180.0, help="bound for any one step, in s")
    common.sandbox_options(parser)
    parser.add_argument("--out", type=Path, default=BENCH / "RESULTS-lab.md")
    args = parser.parse_args(argv)
    if not CHROMIUM.exists():
        raise BenchError("needs Debian's chromium at /usr/bin/chromium (.ci/setup.sh)")
    guard = common.Guard(
        common.guarded_paths((".local/share/jupyter", ".jupyter", ".config/kernelkeeper"), python_dirs=False)
    )
    with common.sandbox(Sandbox, "kk-lab-bench-", args.tmp, args.keep) as box:
        paths = ", ".join(f'"{p}"' for p in STANDALONE_DIRS)
        (box.root / "kernelkeeper.toml").write_text(f"[discovery]\npaths = [{paths}]\n")
        names = ("kernelkeeper", "jupyterlab", "jupyter_server", "playwright")
        facts = [
            f"- {common.machine()}, load average at start {common.load_average()}",
            f"- {', '.join(f'{x} {dist_version(x)}' for x in names)}; Python {platform.python_version()}; "
            f"{chromium_version()} (`{CHROMIUM}`); source {common.source_state()}",
            f"- farm seed {args.seed}, sandbox under `{box.root}` ({common.filesystem(box.root)})",
        ]
        results: list[Result] = []
        extras: dict[int, dict[str, Any]] = {}
        for n in args.n:
            res, extras[n] = bench(box, n, args.seed, args.repeats, args.timeout)
            results += res
    changed = guard.changes("bench_lab")
    if changed:
        raise BenchError(f"the run changed guarded folders: {list(changed)}")
    command = f"python bench/bench_lab.py {' '.join(argv if argv is not None else sys.argv[1:])}".strip()
    report(args.out, command, facts, results, extras)
    print(args.out.read_text())
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
