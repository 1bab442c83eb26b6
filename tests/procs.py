"""Running the tests' own subprocesses: bounded, and their output in the error when they fail."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any


def run_checked(
    cmd: list[Any],
    env: dict[str, str] | None,
    cwd: Path | str | None = None,
    timeout: float = 180,
    error: type[Exception] = RuntimeError,
) -> str:
    """Run a command to completion and return its stdout; raise ``error`` with its output if it fails."""
    try:
        p = subprocess.run(
            [str(c) for c in cmd],
            cwd=str(cwd) if cwd else None,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        raise error(f"timed out after {timeout} s: {cmd}") from exc
    if p.returncode != 0:
        raise error(
            f"{cmd} (cwd={cwd}) exited {p.returncode}\n--- stdout\n{p.stdout[-3000:]}\n--- stderr\n{p.stderr[-3000:]}"
        )
    return p.stdout
