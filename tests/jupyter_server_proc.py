"""A real jupyter_server in a subprocess on 127.0.0.1, for tests. Always cleaned up."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Server:
    def __init__(self, port: int, token: str, log: Path, base_url: str = "/") -> None:
        self.port = port
        self.token = token
        self.log = log
        self.url = f"http://127.0.0.1:{port}{base_url.rstrip('/')}"

    def request(self, method: str, path: str, body: Any = None, timeout: float = 30) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            text = resp.read().decode()
            return json.loads(text) if text else None

    def kernelspecs(self) -> dict[str, Any]:
        specs: dict[str, Any] = self.request("GET", "/api/kernelspecs")["kernelspecs"]
        return specs

    def execute(self, kernel_id: str, code: str, timeout: float = 60) -> str:
        """Run code over the kernel's websocket, as JupyterLab does; return its output."""
        ws_url = self.url.replace("http://", "ws://", 1) + f"/api/kernels/{kernel_id}/channels"
        return ws_execute(ws_url, self.token, code, timeout)


def ws_execute(ws_url: str, token: str, code: str, timeout: float = 60, username: str = "test") -> str:
    """Run code in a kernel over its websocket channel URL, as JupyterLab does; return stdout and tracebacks."""
    return asyncio.run(_ws_execute(ws_url, token, code, timeout, username))


async def _ws_execute(ws_url: str, token: str, code: str, timeout: float, username: str) -> str:
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    request = HTTPRequest(ws_url, headers={"Authorization": f"token {token}"}, request_timeout=timeout)
    ws = await asyncio.wait_for(websocket_connect(request), timeout)
    try:
        msg_id = uuid.uuid4().hex
        header = {
            "msg_id": msg_id,
            "msg_type": "execute_request",
            "username": username,
            "session": uuid.uuid4().hex,
            "version": "5.3",
            "date": "",
        }
        content = {"code": code, "silent": False, "store_history": False}
        message = {"header": header, "parent_header": {}, "metadata": {}, "content": content, "channel": "shell"}
        ws.write_message(json.dumps({**message, "buffers": []}))
        out: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no reply from {ws_url} within {timeout} s; output so far {out}")
            raw = await asyncio.wait_for(ws.read_message(), left)
            if raw is None:
                raise AssertionError(f"{ws_url} closed; output so far {out}")
            msg = json.loads(raw)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["header"]["msg_type"]
            if kind == "stream":
                out.append(msg["content"]["text"])
            elif kind == "error":
                out.append("\n".join(msg["content"]["traceback"]))
            elif kind == "status" and msg["content"]["execution_state"] == "idle":
                return "".join(out)
    finally:
        ws.close()


def start_server(
    env: dict[str, str],
    root_dir: Path,
    log: Path,
    timeout: float = 60,
    base_url: str = "/",
    python: str | Path = sys.executable,
) -> tuple[subprocess.Popen[bytes], Server]:
    """Start `jupyter server` and wait for its /api/status; the caller stops the process (killed here on failure)."""
    port = free_port()
    token = uuid.uuid4().hex
    cmd = [
        str(python),
        "-m",
        "jupyter_server",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        "--ServerApp.open_browser=False",
        f"--ServerApp.root_dir={root_dir}",
        "--allow-root",
        f"--ServerApp.base_url={base_url}",
    ]
    with open(log, "w") as log_file:
        proc = subprocess.Popen(cmd, env=env, stdout=log_file, stderr=subprocess.STDOUT, cwd=str(root_dir))
    server = Server(port, token, log, base_url)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            server.request("GET", "/api/status", timeout=2)
            return proc, server
        except (urllib.error.URLError, ConnectionError, OSError) as e:
            if time.monotonic() > deadline:
                proc.kill()
                proc.wait(timeout=15)
                tail = log.read_text()[-3000:]
                raise RuntimeError(f"jupyter server did not answer in {timeout} s:\n{tail}") from e
            time.sleep(0.2)


@contextmanager
def jupyter_server(
    env: dict[str, str],
    root_dir: Path,
    log: Path,
    timeout: float = 60,
    base_url: str = "/",
    python: str | Path = sys.executable,
) -> Iterator[Server]:
    """Start `jupyter server` with env (its config dirs decide the kernel spec manager), run by ``python``."""
    proc, server = start_server(env, root_dir, log, timeout, base_url, python)
    try:
        yield server
    finally:
        try:
            for kernel in server.request("GET", "/api/kernels", timeout=5) or []:
                server.request("DELETE", f"/api/kernels/{kernel['id']}", timeout=15)
        except Exception:
            pass
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
