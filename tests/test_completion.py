"""Shell completion and the bare `kernelkeeper`: what a person gets before reading any docs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

KK = [sys.executable, "-m", "kernelkeeper"]


def complete(line: str, tmp_path: Path) -> list[str]:
    """What the shell would offer for ``line`` (argcomplete's protocol, as bash's hook drives it)."""
    out = tmp_path / "completions"
    env = {
        **os.environ,
        "_ARGCOMPLETE": "1",
        "_ARGCOMPLETE_IFS": "\n",
        "COMP_LINE": line,
        "COMP_POINT": str(len(line)),
        "_ARGCOMPLETE_STDOUT_FILENAME": str(out),
    }
    line_argv = [sys.executable, "-c", "from kernelkeeper.cli import run; run()"]
    proc = subprocess.run(line_argv, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return [c.strip() for c in out.read_text().split("\n") if c.strip()]


def _kernel(home: Path, name: str) -> None:
    folder = home / ".local" / "share" / "jupyter" / "kernels" / name
    folder.mkdir(parents=True)
    (folder / "kernel.json").write_text('{"argv": ["python3"], "display_name": "x", "language": "python"}')


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("kernelkeeper re", ["remove"]),
        ("kernelkeeper list --st", ["--status"]),
        ("kernelkeeper list --status st", ["stale"]),
        ("kernelkeeper remove al", ["alpha-one"]),
        ("kernelkeeper adopt be", ["beta"]),
    ],
)
def test_completion_offers_commands_options_and_kernel_names(
    line: str, expected: list[str], fake_home: Path, tmp_path: Path
) -> None:
    _kernel(fake_home, "alpha-one")
    _kernel(fake_home, "beta")
    assert complete(line, tmp_path) == expected


def test_completion_survives_a_broken_kernel_folder(fake_home: Path, tmp_path: Path) -> None:
    kernels = fake_home / ".local" / "share" / "jupyter" / "kernels"
    kernels.parent.mkdir(parents=True)
    kernels.write_text("a file where the kernels folder should be")
    offered = complete("kernelkeeper remove ", tmp_path)
    assert "--dry-run" in offered  # options still come; the broken folder adds no names and no traceback


def test_bare_command_lists_every_command(fake_home: Path) -> None:
    proc = subprocess.run(KK, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    lines = proc.stdout.splitlines()
    for command in ("envs", "list", "add", "remove", "prune", "sync", "overlay", "doctor", "adopt", "which"):
        assert any(line.startswith(f"  {command} ") for line in lines), command
    assert "error" not in proc.stdout + proc.stderr


def test_jupyter_kernelkeeper_runs_the_cli(fake_home: Path) -> None:
    """`jupyter kernelkeeper` finds `jupyter-kernelkeeper` beside the venv's `jupyter`."""
    bindir = Path(sys.executable).parent
    if not (bindir / "jupyter-kernelkeeper").exists():
        pytest.skip("kernelkeeper is not installed in this venv (the entry point comes with `pip install`)")
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"}
    proc = subprocess.run(
        [str(bindir / "jupyter"), "kernelkeeper", "--version"], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("kernelkeeper ")
