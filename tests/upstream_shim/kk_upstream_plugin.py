"""pytest plugin for jupyter_client's own kernelspec tests, run against kernelkeeper's provider.

Loaded with ``-p kk_upstream_plugin`` by tests/test_upstream_kernelspec.py, which
reads the JSON report this writes. Per ``KK_UPSTREAM_MODE``:

- ``stock``: jupyter_client untouched (the control run);
- ``provider``: the provider in place of KernelSpecManager, nothing for it to add;
- ``provider-env``: the same, and each test's HOME holds one venv with
  ipykernel (``~/projects/demo/.venv``), so one dynamic kernel is listed.

``KK_UPSTREAM_NATIVE=1`` adds what ``pip install ipykernel`` gives upstream's
CI when ipykernel is not importable here: a ``python3`` kernelspec (the native
kernel) in the tests' (temporary) system-wide kernels folder.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kk_upstream_patch
import pytest

MANAGER = kk_upstream_patch.install()
MODE = kk_upstream_patch.mode()
_results: dict[str, dict[str, Any]] = {}


def _fake_venv(prefix: Path) -> Path:
    """A venv as discovery sees it: pyvenv.cfg, bin/python, ipykernel's dist-info."""
    minor = "{}.{}".format(*sys.version_info[:2])
    version = "{}.{}.{}".format(*sys.version_info[:3])
    base = os.path.realpath(sys.executable)
    (prefix / "bin").mkdir(parents=True)
    (prefix / "pyvenv.cfg").write_text(
        f"home = {os.path.dirname(base)}\ninclude-system-site-packages = false\nversion = {version}\n"
        f"executable = {base}\ncommand = {base} -m venv {prefix}\n",
        encoding="utf-8",
    )
    (prefix / "bin" / "python").symlink_to(sys.executable)
    info = prefix / "lib" / f"python{minor}" / "site-packages" / "ipykernel-6.29.5.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ipykernel\nVersion: 6.29.5\n", encoding="utf-8")
    return prefix


@pytest.fixture(autouse=True)
def _kk_upstream_setup(request: pytest.FixtureRequest) -> Iterator[None]:
    # After upstream's own environment (conftest's autouse jp_environ): HOME and jupyter paths are temporary.
    request.getfixturevalue("jp_environ")
    if os.environ.get("KK_UPSTREAM_NATIVE") == "1":
        import jupyter_core.paths

        native = Path(jupyter_core.paths.SYSTEM_JUPYTER_PATH[0]) / "kernels" / "python3"
        native.mkdir(parents=True)
        spec = {
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3 (ipykernel)",
            "language": "python",
            "metadata": {"debugger": True},
        }
        (native / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
    if MODE == "provider-env":
        project = Path(os.environ["HOME"]) / "projects" / "demo"
        project.mkdir(parents=True)
        (project / "pyproject.toml").write_text('[project]\nname = "demo"\n', encoding="utf-8")
        _fake_venv(project / ".venv")
    kk_upstream_patch.seen_dynamic.clear()
    yield


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    kk_upstream_patch.seen_dynamic.clear()


def _name(nodeid: str) -> str:
    return nodeid.split("::", 1)[1] if "::" in nodeid else nodeid


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    entry = _results.setdefault(
        _name(report.nodeid), {"outcome": "passed", "when": "", "message": "", "longrepr": "", "dynamic": []}
    )
    entry["dynamic"] = sorted(set(entry["dynamic"]) | kk_upstream_patch.seen_dynamic)
    if entry["outcome"] != "passed":
        return  # the first phase that did not pass decides
    if report.failed or report.skipped or hasattr(report, "wasxfail"):
        if hasattr(report, "wasxfail"):
            outcome = "xpassed" if report.passed else "xfailed"
        else:
            outcome = "skipped" if report.skipped else ("failed" if report.when == "call" else "error")
        crash = getattr(report.longrepr, "reprcrash", None)
        message = crash.message if crash is not None else str(report.longrepr)
        entry.update(outcome=outcome, when=report.when, message=message, longrepr=report.longreprtext)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    path = os.environ.get("KK_UPSTREAM_REPORT")
    if not path:
        return
    data = {"mode": MODE, "manager": kk_upstream_patch.describe(MANAGER), "exitstatus": int(exitstatus)}
    data["tests"] = _results
    Path(path).write_text(json.dumps(data, indent=1), encoding="utf-8")
