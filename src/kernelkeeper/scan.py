"""A discovery scan in a child process, so a server's event loop never competes with it for the GIL.

A rescan of 2,000 environments is about a second of pure Python. Run in a thread of
the Jupyter server, it holds the GIL in 5 ms slices against the event loop, and
``/api/status`` waited up to ~150 ms behind it. Here the server's worker thread starts
``python -m kernelkeeper.scan`` (the server's own interpreter), sends it the
``Context`` (pickled, on stdin) and waits on the pipe, which releases the GIL; the
child lowers its own priority (``nice``), scans, and writes the ``Discovery`` back
(pickled, on stdout). Only the unpickling (about a millisecond) runs in the server.

Only kernelkeeper's own child reads what is written to that pipe, and only the server
reads what the child writes, so pickle carries no foreign data. Any failure (no
interpreter, a child that dies or writes something else) raises ``ScanFailed``; the
caller then scans in its thread as before.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import subprocess
import sys
from pathlib import Path

from .context import Context
from .discovery import Discovery, discover

NICE = 10  # the child's priority below the server's: on a busy node the server's requests go first


class ScanFailed(RuntimeError):
    """The child could not scan: the caller scans in-process instead."""


def _child_env() -> dict[str, str]:
    """The server's environment, with this kernelkeeper first on the path (the child runs the same code)."""
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    return env


def discover_in_child(ctx: Context, timeout: float | None = None) -> Discovery:
    """``discover(ctx)`` run by a child process; raises ScanFailed when the child cannot answer."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "kernelkeeper.scan"],
            input=pickle.dumps(ctx),
            capture_output=True,
            env=_child_env(),
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as e:
        raise ScanFailed(f"{type(e).__name__}: {e}") from None
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
        raise ScanFailed(f"the scan process exited with {done.returncode}: {tail[0]}")
    try:
        found = pickle.loads(done.stdout)
    except Exception as e:  # anything unreadable is a failed child
        raise ScanFailed(f"unreadable answer: {type(e).__name__}: {e}") from None
    if not isinstance(found, Discovery):
        raise ScanFailed(f"unexpected answer: {type(found).__name__}")
    return found


def main() -> int:
    with contextlib.suppress(OSError):
        os.nice(NICE)
    ctx = pickle.loads(sys.stdin.buffer.read())
    if not isinstance(ctx, Context):
        print(f"kernelkeeper.scan: expected a Context, got {type(ctx).__name__}", file=sys.stderr)
        return 2
    found = discover(ctx)
    sys.stdout.buffer.write(pickle.dumps(found, protocol=pickle.HIGHEST_PROTOCOL))
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
