"""A machine with a JupyterHub: shared environments set up by an admin, two users with environments of their own.

Built once per module (about 25 s on two cores): real environments made by `python -m venv` and `uv venv` from the pyenv
Pythons, with ipykernel from PyPI (`uv pip install`); the admin registers the shared ones and enables the
provider with kernelkeeper's own commands; JupyterHub starts alice's and bob's single-user servers. The machine's
system-wide Jupyter folders are stood in for by `<tmp>/system` (the admin's kernelkeeper sees it as jupyter_core's
system folders through tests/shim, the single-user servers through JUPYTER_PATH / JUPYTER_CONFIG_PATH): nothing
is written to /usr/local. ipykernel comes through a uv cache kept in the temp folder across runs
($KK_HUB_UV_CACHE moves it).

Needs Debian's chromium and configurable-http-proxy: `.ci/setup.sh` installs both. Without them the hub tests
are skipped, unless KK_REQUIRE_HUB=1 (CI), which makes that a failure.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .hubrun import CHROMIUM, SYSTEM_PATH, Env, Hub, World, chp_command, run

# name -> (tool, Python minor). Kernel names and display names are kernelkeeper's defaults for them.
SHARED = {"sci": ("venv", "3.11"), "ml": ("uv", "3.12")}
USER_ENVS = {
    "alice": {"churn": ("uv", "3.12"), "reports": ("venv", "3.11")},
    "bob": {"physics": ("venv", "3.11"), "thesis": ("uv", "3.12")},
}
NO_IPYKERNEL = {"bob": "scratch"}  # a uv venv without ipykernel: not a kernel (the provider's default)


def _tool_env(base: Path) -> dict[str, str]:
    """What the env tools run with: a throwaway HOME and uv cache, plus the certificate/proxy settings."""
    from realenvs import _PASSTHROUGH

    env = {
        "PATH": SYSTEM_PATH,
        "HOME": str(base / "admin"),
        "LANG": "C.UTF-8",
        # uv's cache outlives the session (like uv's own in ~/.cache, but in the temp folder): later runs
        # install ipykernel without downloading it again.
        "UV_CACHE_DIR": os.environ.get("KK_HUB_UV_CACHE")
        or str(Path(tempfile.gettempdir()) / "kernelkeeper-hub-uv-cache"),
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_NO_PROGRESS": "1",
        "PIP_CONFIG_FILE": os.devnull,
        "NO_COLOR": "1",
    }
    env.update({k: os.environ[k] for k in _PASSTHROUGH if k in os.environ})
    return env


def _make_env(tool: str, python: Path, prefix: Path, env: dict[str, str], ipykernel: bool = True) -> None:
    uv = Path(sys.executable).parent / "uv"
    if tool == "venv":
        run([python, "-m", "venv", "--without-pip", prefix], env)
    else:
        run([uv, "venv", "-q", "--python", python, prefix], env)
    if ipykernel:
        run([uv, "pip", "install", "-q", "--python", prefix / "bin" / "python", "ipykernel"], env, timeout=180)


def _quiet_lab(home: Path) -> None:
    """The user's JupyterLab settings: no 'fetch Jupyter news?' toast over the screenshots, no update checks."""
    settings = home / ".jupyter" / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )


@pytest.fixture(scope="session")
def hub_tools() -> None:
    missing = []
    if not os.access(CHROMIUM, os.X_OK):
        missing.append(str(CHROMIUM))
    if chp_command() is None:
        missing.append("configurable-http-proxy")
    try:
        import jupyterhub  # noqa: F401
        import jupyterlab  # noqa: F401
        import playwright  # noqa: F401
    except ImportError as e:
        missing.append(str(e))
    if missing:
        _unavailable(f"the hub suite needs {', '.join(missing)}: run .ci/setup.sh")


def _unavailable(message: str) -> None:
    if os.environ.get("KK_REQUIRE_HUB") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def world(
    hub_tools: None, tmp_path_factory: pytest.TempPathFactory, pyenv_pythons: dict[str, tuple[str, Path]]
) -> Iterator[World]:
    t0 = time.monotonic()
    for minor in {m for _, m in SHARED.values()}:
        if minor not in pyenv_pythons:
            _unavailable(f"the hub suite needs a pyenv Python {minor}")
    base = Path(os.path.realpath(tmp_path_factory.mktemp("hub")))
    system = base / "system"
    homes = base / "homes"
    tools = _tool_env(base)
    (base / "admin").mkdir()

    shared = {n: Env(n, t, m, base / "shared" / "envs" / n, "shared") for n, (t, m) in SHARED.items()}
    user_envs = {
        user: {n: Env(n, t, m, homes / user / "projects" / n / ".venv", user) for n, (t, m) in envs.items()}
        for user, envs in USER_ENVS.items()
    }
    jobs = [(e.tool, pyenv_pythons[e.minor][1], e.prefix, True) for e in shared.values()]
    jobs += [(e.tool, pyenv_pythons[e.minor][1], e.prefix, True) for u in user_envs.values() for e in u.values()]
    jobs += [
        ("uv", pyenv_pythons["3.12"][1], homes / u / "projects" / n / ".venv", False) for u, n in NO_IPYKERNEL.items()
    ]
    for user in USER_ENVS:
        _quiet_lab(homes / user)

    admin_env = {"PATH": SYSTEM_PATH, "HOME": str(base / "admin"), "LANG": "C.UTF-8"}
    hub = Hub(
        base / "hub",
        homes,
        list(USER_ENVS),
        # What the single-user servers read besides their own HOME: the system-wide folders (see World.system).
        {"JUPYTER_PATH": str(system / "share" / "jupyter"), "JUPYTER_CONFIG_PATH": str(system / "etc" / "jupyter")},
    )
    w = World(base, system, admin_env, shared, user_envs, hub, {}, base / "screenshots")
    w.screenshots.mkdir()
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=4)
    try:
        # The admin enables the provider for every single-user server (read when a server starts).
        enabled = w.admin("jupyter", "enable", "--system", "--json")
        # (as a jupyter_server extension, which turns the provider on where kernelkeeper can be imported)
        config = system / "etc" / "jupyter" / "jupyter_server_config.d" / "kernelkeeper.json"
        assert json.loads(config.read_text()) == {"ServerApp": {"jpserver_extensions": {"kernelkeeper": True}}}, enabled
        # This suite checks every user's whole kernel list: the short list (test_listing, tests/lab) is off here.
        # (In jupyter_server_config.json: a jupyter_server_config.d file only contributes jpserver_extensions.)
        (config.parent.parent / "jupyter_server_config.json").write_text(
            json.dumps({"KernelKeeperSpecManager": {"list_all": True}})
        )
        # The environments are made while the hub and the servers start (the servers only look at them when asked).
        builds = [pool.submit(_make_env, tool, py, prefix, tools, ipk) for tool, py, prefix, ipk in jobs]
        hub.start()
        hub.spawn(list(USER_ENVS), wait=False)
        for build in builds:
            build.result()
        w.timings["environments"] = round(time.monotonic() - t0, 1)

        # The admin's step: a kernel for each shared environment, for every user. `sync` finds them first...
        sync = ["sync", "--scope", "system", "--no-default-roots", "--root", str(base / "shared" / "envs"), "--json"]
        planned = w.admin(*sync, "--dry-run")
        assert sorted((a["action"], a["kernel"]) for a in planned["actions"]) == sorted(
            ("add", e.kernel) for e in shared.values()
        ), planned
        # ...and `add` writes them.
        # `--scope system` writes <system>/share/jupyter/kernels; so does `--scope prefix:<system>` (how a shared
        # volume is served to servers that list it in JUPYTER_PATH): both are run, and must agree.
        for env, scope in zip(shared.values(), ["system", f"prefix:{system}"]):
            added = w.admin("add", str(env.prefix), "--scope", scope, "--json")
            assert added["kernel"] == env.kernel, added
            assert Path(added["path"]).parent == system / "share" / "jupyter" / "kernels", added
        synced = w.admin(*sync)
        assert synced["actions"] == [], f"the kernels add wrote are what sync wants: {synced}"

        w.servers = hub.spawn(list(USER_ENVS))
        w.timings["ready"] = round(time.monotonic() - t0, 1)
        yield w
    finally:
        stopping = time.monotonic()
        pool.shutdown(wait=True, cancel_futures=True)
        hub.stop()
        w.timings["stop"] = round(time.monotonic() - stopping, 1)
        (base / "timings.json").write_text(json.dumps({**w.timings, "leftovers": hub.leftovers}))
        assert not hub.leftovers, f"processes outlived the hub and were killed: {hub.leftovers}"
