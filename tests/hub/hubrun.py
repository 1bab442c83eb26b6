"""A real JupyterHub (configurable-http-proxy, DummyAuthenticator, SimpleLocalProcessSpawner) for tests.

Plain module, no pytest: ``tests/hub/conftest.py`` wires it in. Every process the hub starts (proxy,
single-user servers, kernels) carries ``KK_HUB_RUN=<marker>`` in its environment, so ``Hub.stop`` can
find and end whatever the hub's own shutdown left behind, even after a crash.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_server_proc import free_port, ws_execute
from procs import run_checked

REPO = Path(__file__).resolve().parents[2]
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"
CHROMIUM = Path("/usr/bin/chromium")
MARKER_VAR = "KK_HUB_RUN"


def chp_command() -> Path | None:
    """configurable-http-proxy, as `.ci/setup.sh` installs it (or $KK_CHP)."""
    for candidate in (
        os.environ.get("KK_CHP"),
        REPO / ".ci" / "node" / "node_modules" / ".bin" / "configurable-http-proxy",
    ):
        if candidate and os.access(candidate, os.X_OK):
            return Path(candidate)
    return None


def run(cmd: list[Any], env: dict[str, str], timeout: float = 120, cwd: Path | None = None) -> str:
    """Run a command to completion; its output in the error when it fails."""
    return run_checked(cmd, env, cwd, timeout)


SHIM = REPO / "tests" / "shim"


def kernelkeeper_admin(root: Path, args: list[str], env: dict[str, str], timeout: float = 60) -> Any:
    """`kernelkeeper ARGS` as the admin runs it (`add ENV --scope system`, `jupyter enable --system`, `prune`).

    Through tests/shim, jupyter_core's system-wide folders are `root/system/...` (and the Jupyter install's own
    `root/env/...`) in that process: tests never write /usr/local/share/jupyter or /usr/local/etc/jupyter."""
    env = {**env, "KK_TEST_JUPYTER_ROOT": str(root), "PYTHONPATH": str(SHIM)}
    # From the admin's own folder: discovery also looks upward from the working folder, and the
    # checkout the tests run from is a project with its own environment.
    out = run([sys.executable, "-m", "kernelkeeper", *args], env, timeout=timeout, cwd=Path(env["HOME"]))
    return json.loads(out) if "--json" in args else out


class HTTPFailure(RuntimeError):
    def __init__(self, status: int, body: str, url: str) -> None:
        super().__init__(f"HTTP {status} from {url}: {body[:500]}")
        self.status = status
        self.body = body


def http(method: str, url: str, token: str, body: Any = None, timeout: float = 30) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url, data=data, method=method, headers={"Authorization": f"token {token}", "Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            text = resp.read().decode()
    except urllib.error.HTTPError as e:
        raise HTTPFailure(e.code, e.read().decode(errors="replace"), url) from None
    return json.loads(text) if text else None


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except (OSError, HTTPFailure) as e:
            last = e
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout} s" + (f" (last error: {last})" if last else ""))


class UserServer:
    """One user's single-user server, reached through the hub's proxy with that user's own token."""

    def __init__(self, hub: Hub, name: str, token: str) -> None:
        self.hub = hub
        self.name = name
        self.token = token
        self.prefix = f"/user/{name}"

    def api(self, method: str, path: str, body: Any = None, timeout: float = 30) -> Any:
        return http(method, f"{self.hub.url}{self.prefix}{path}", self.token, body, timeout)

    def kernelspecs(self) -> dict[str, Any]:
        specs: dict[str, Any] = self.api("GET", "/api/kernelspecs")["kernelspecs"]
        return specs

    def start_kernel(self, name: str) -> str:
        """POST /api/kernels: the kernel's id once its process is launched (it may still fail to come up)."""
        kernel_id: str = self.api("POST", "/api/kernels", {"name": name}, timeout=60)["id"]
        return kernel_id

    def ready_kernel(self, name: str, attempts: int = 3) -> str:
        """Start a kernel and wait until it runs code; one that dies while starting is replaced.

        Every single-user server picks its kernels' TCP ports on its own, so on a busy machine a port can be
        taken between being picked and being bound; the kernel then dies ("Address already in use") and
        jupyter_client's restarter retries the same ports. That race is Jupyter's, not kernelkeeper's."""
        errors = []
        for _ in range(attempts):
            kernel_id = self.start_kernel(name)
            try:
                self.execute(kernel_id, "pass", timeout=30)
                return kernel_id
            except Exception as e:  # a dead kernel shows as a closed websocket, a 404 or no reply
                errors.append(f"{kernel_id}: {e!r}")
                self.stop_kernels([kernel_id])
        raise AssertionError(f"kernel {name} for {self.name} never came up: {errors}\n{self.hub.tail()}")

    def stop_kernels(self, ids: list[str] | None = None) -> list[str]:
        """Shut kernels down side by side (each DELETE waits for its kernel); all of them by default.

        For cleanup: a kernel that cannot be shut down is left to its server's own shutdown; returns the errors."""
        ids = ids if ids is not None else [k["id"] for k in self.api("GET", "/api/kernels")]
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(ids))) as pool:
            futures = [pool.submit(self.api, "DELETE", f"/api/kernels/{i}", None, 60) for i in ids]
        return [str(f.exception()) for f in futures if f.exception() is not None]

    def execute(self, kernel_id: str, code: str, timeout: float = 60) -> str:
        """Run code over the kernel's websocket through the proxy, as JupyterLab does; return its output."""
        ws_url = f"ws://127.0.0.1:{self.hub.port}{self.prefix}/api/kernels/{kernel_id}/channels"
        return ws_execute(ws_url, self.token, code, timeout, username=self.name)


HUB_CONFIG = """
import json
s = json.loads({settings!r})
c = get_config()  # noqa
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = s["port"]
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = s["hub_port"]
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:%d" % s["proxy_api_port"]
c.ConfigurableHTTPProxy.command = [s["chp"]]
c.ConfigurableHTTPProxy.pid_file = s["dir"] + "/proxy.pid"
c.JupyterHub.pid_file = s["dir"] + "/hub.pid"
c.JupyterHub.db_url = "sqlite:///" + s["dir"] + "/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = s["dir"] + "/jupyterhub_cookie_secret"
c.JupyterHub.cleanup_servers = True
# Starting and stopping a server answer at once (202): both users' servers start (and stop) side by side.
c.JupyterHub.tornado_settings = {{"slow_spawn_timeout": 0, "slow_stop_timeout": 0}}
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allowed_users = set(s["users"])
c.JupyterHub.services = [{{"name": "kk-test", "api_token": s["token"]}}]
c.JupyterHub.load_roles = [
    {{
        "name": "kk-test",
        "scopes": ["admin:users", "admin:servers", "tokens", "access:servers", "read:hub"],
        "services": ["kk-test"],
    }}
]
c.JupyterHub.spawner_class = "jupyterhub.spawner.SimpleLocalProcessSpawner"
c.SimpleLocalProcessSpawner.home_dir_template = s["homes"] + "/{{username}}"
c.Spawner.cmd = [s["python"], "-m", "jupyterhub.singleuser"]
c.Spawner.args = ["--allow-root"]
c.Spawner.default_url = "/lab"
c.Spawner.env_keep = ["PATH", "LANG", s["marker_var"]]
c.Spawner.environment = s["environment"]
c.Spawner.start_timeout = 90
c.Spawner.http_timeout = 90
"""


class Hub:
    """A JupyterHub subprocess; `stop()` ends it and everything it started."""

    def __init__(self, base: Path, homes: Path, users: list[str], environment: dict[str, str]) -> None:
        chp = chp_command()
        if chp is None:
            raise RuntimeError("configurable-http-proxy is missing: run .ci/setup.sh")
        self.dir = base
        self.dir.mkdir(parents=True, exist_ok=True)
        self.homes = homes
        self.users = users
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = uuid.uuid4().hex
        self.marker = uuid.uuid4().hex
        self.log = base / "hub.log"
        settings = {
            "port": self.port,
            "hub_port": free_port(),
            "proxy_api_port": free_port(),
            "chp": str(chp),
            "dir": str(base),
            "users": users,
            "token": self.token,
            "homes": str(homes),
            "python": sys.executable,
            "marker_var": MARKER_VAR,
            "environment": environment,
        }
        (base / "jupyterhub_config.py").write_text(HUB_CONFIG.format(settings=json.dumps(settings)))
        self.env = {
            "PATH": SYSTEM_PATH,
            "HOME": str(base),
            "LANG": "C.UTF-8",
            "CONFIGPROXY_AUTH_TOKEN": uuid.uuid4().hex,
            MARKER_VAR: self.marker,
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.servers: dict[str, UserServer] = {}
        self.leftovers: list[str] = []

    def api(self, method: str, path: str, body: Any = None, timeout: float = 30) -> Any:
        return http(method, f"{self.url}/hub/api{path}", self.token, body, timeout)

    def tail(self, chars: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no hub log)"

    def start(self, timeout: float = 60) -> None:
        cmd = [sys.executable, "-m", "jupyterhub", "-f", str(self.dir / "jupyterhub_config.py")]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                cmd, env=self.env, cwd=self.dir, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyterhub exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                self.api("GET", "/", timeout=2)
                return
            except (OSError, HTTPFailure) as e:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"jupyterhub did not answer within {timeout} s:\n{self.tail()}") from e
                time.sleep(0.2)

    def spawn(self, names: list[str], timeout: float = 90, wait: bool = True) -> dict[str, UserServer]:
        """Start the users' servers (all at once), wait until each is ready, give each a token of its own."""
        for name in names:
            if not self._running(name):
                self.api("POST", f"/users/{name}/server")
        if not wait:
            return {}

        def ready() -> bool:
            for name in names:
                server = (self.api("GET", f"/users/{name}").get("servers") or {}).get("")
                if not (server and server.get("ready")):
                    return False
            return True

        try:
            wait_for(ready, timeout, f"single-user servers of {names}", interval=0.3)
        except AssertionError as e:
            raise AssertionError(f"{e}\n--- hub log\n{self.tail()}") from None
        for name in names:
            token = self.api("POST", f"/users/{name}/tokens", {"note": "kernelkeeper hub tests", "expires_in": 3600})
            self.servers[name] = UserServer(self, name, token["token"])
        return dict(self.servers)

    def stop(self, timeout: float = 30) -> None:
        """Stop the users' servers, then the hub (which stops the proxy); then end anything still marked."""
        if self.proc is not None and self.proc.poll() is None:
            for name in self.servers:
                with contextlib.suppress(Exception):
                    self.api("DELETE", f"/users/{name}/server", timeout=10)
            with contextlib.suppress(AssertionError):
                wait_for(lambda: not any(self._running(n) for n in self.servers), 20, "servers stopping", interval=0.2)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)
        self.leftovers = self.sweep()

    def _running(self, name: str) -> bool:
        try:
            return bool((self.api("GET", f"/users/{name}", timeout=5).get("servers") or {}).get(""))
        except (OSError, HTTPFailure):
            return False

    def _marked(self) -> list[int]:
        needle = f"{MARKER_VAR}={self.marker}".encode()
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    if needle in f.read().split(b"\0"):
                        found.append(int(entry))
            except OSError:
                continue
        return found

    def sweep(self, grace: float = 5) -> list[str]:
        """End every process still carrying this hub's marker `grace` s after the hub is gone (TERM, then KILL).

        Returns what had to be ended (the proxy and the servers normally end with the hub, by themselves)."""
        deadline = time.monotonic() + grace
        while (marked := self._marked()) and time.monotonic() < deadline:
            time.sleep(0.1)
        found = []
        for pid in marked:
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                found.append(f"{pid}: {cmdline[:200]}")
                os.kill(pid, signal.SIGTERM)
            except OSError:
                continue
        deadline = time.monotonic() + 5
        while (alive := self._marked()) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in alive:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        return found


@dataclass
class Env:
    name: str
    tool: str
    minor: str
    prefix: Path
    owner: str  # "shared" or the user's name

    @property
    def kernel(self) -> str:
        return f"{self.tool}-{self.name}-py{self.minor}"

    @property
    def display(self) -> str:
        return f"{self.name} ({self.tool} · {self.minor})"

    @property
    def python(self) -> str:
        return str(self.prefix / "bin" / "python")


@dataclass
class World:
    base: Path
    system: Path  # base/system stands in for the machine's /usr/local: share/jupyter, etc/jupyter
    admin_env: dict[str, str]
    shared: dict[str, Env]
    user_envs: dict[str, dict[str, Env]]
    hub: Hub
    servers: dict[str, UserServer]
    screenshots: Path
    timings: dict[str, float] = field(default_factory=dict)

    def admin(self, *args: str) -> Any:
        return kernelkeeper_admin(self.system.parent, list(args), self.admin_env)

    def visible_to(self, user: str) -> dict[str, Env]:
        return {e.kernel: e for e in [*self.shared.values(), *self.user_envs[user].values()]}
