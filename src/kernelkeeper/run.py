"""Every subprocess kernelkeeper starts goes through here."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence

from .errors import UserError


def run_checked(
    cmd: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = 900, cwd: str | None = None
) -> str:
    """Run a command, streaming nothing; on failure the error shows the command, code and output."""
    print(f"kernelkeeper: running {' '.join(cmd)}" + (f" (in {cwd})" if cwd else ""), file=sys.stderr)
    try:
        proc = subprocess.run(
            list(cmd),
            env=dict(env) if env is not None else None,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=cwd,
        )
    except FileNotFoundError as e:
        raise UserError(f"cannot run {cmd[0]}: not found") from e
    except subprocess.TimeoutExpired as e:
        raise UserError(f"`{' '.join(cmd)}` did not finish in {timeout:.0f} s") from e
    if proc.returncode != 0:
        output = (proc.stdout + proc.stderr).strip()[-2000:]
        raise UserError(f"`{' '.join(cmd)}` failed with exit code {proc.returncode}:\n{output}")
    return proc.stdout
