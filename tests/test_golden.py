"""Discovery gives the same JSON it gave before it was made faster.

tests/data/farm300-envs.json is ``kernelkeeper envs --json`` of a 300-environment farm
(bench/farm.py, seed 7: every layout of every tool, a few broken on purpose), written by the
discovery code as it was before the speed work of issue 12 (commit 13807f9), with the farm's
folder replaced by ``<FARM>``. The farm must sit at the same path each time: poetry, pipenv, hatch
and pdm put a hash of the project's path in their environments' names.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"
GOLDEN = Path(__file__).parent / "data" / "farm300-envs.json"


@contextlib.contextmanager
def _fixed_farm_root() -> Iterator[Path]:
    root = Path(tempfile.gettempdir()) / f"kk-golden-farm-{os.getuid()}"
    with open(f"{root}.lock", "w") as lock:  # two test runs at once take turns
        fcntl.flock(lock, fcntl.LOCK_EX)
        shutil.rmtree(root, ignore_errors=True)
        try:
            yield root
        finally:
            shutil.rmtree(root, ignore_errors=True)


def test_farm_discovery_matches_the_golden_json(fake_home: Path) -> None:
    sys.path.insert(0, str(BENCH))
    try:
        from farm import make_farm
    finally:
        sys.path.remove(str(BENCH))
    with _fixed_farm_root() as root:
        manifest = make_farm(root / "farm", 300, seed=7, workers=1)
        env = {"HOME": manifest.home, "PATH": "/usr/bin:/bin", "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
        res = subprocess.run(
            [sys.executable, "-m", "kernelkeeper", "envs", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=manifest.home,
        )
        assert res.returncode == 0, res.stderr
        got = json.loads(res.stdout.replace(str(root), "<FARM>"))
    want = json.loads(GOLDEN.read_text())
    assert len(got) == len(want) == 301
    assert got == want
