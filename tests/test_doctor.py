"""doctor, which and adopt on a messy machine built for real (tests/messy.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from conftest import hermetic

pytestmark = pytest.mark.realtools


@pytest.fixture
def machine(messy_machine: Any, tmp_path: Path) -> dict[str, Any]:
    """The messy machine with its own copy of the kernels, so each test may change them."""
    data = tmp_path / "data"
    shutil.copytree(messy_machine.data_dir, data, symlinks=True)
    shared = tmp_path / "shared" / "share" / "jupyter"
    shutil.copytree(messy_machine.jupyter_path, shared, symlinks=True)
    env = dict(
        messy_machine.env,
        JUPYTER_DATA_DIR=str(data),
        JUPYTER_PATH=str(shared),
        JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
    )
    return {
        "env": env,
        "data": data,
        "shared": shared,
        "envs": messy_machine.envs,
        "home": messy_machine.home,
        "root": tmp_path / "jupyter-root",
    }


def kk(machine: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kernelkeeper", *args],
        env=hermetic(machine["env"], machine["root"]),
        cwd=str(machine["home"]),
        capture_output=True,
        text=True,
        timeout=180,
    )


def findings(machine: dict[str, Any], *args: str) -> tuple[int, list[dict[str, Any]]]:
    res = kk(machine, "doctor", "--json", *args)
    assert res.returncode in (0, 1), res.stderr
    return res.returncode, json.loads(res.stdout)["findings"]


def problems(items: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    return Counter((f["code"], f["subject"]) for f in items if f["severity"] != "info")


PLANTED = Counter(
    {
        ("kernel-without-activation", "alpha"): 1,
        ("display-name-version-mismatch", "alpha"): 1,
        ("kernel-without-activation", "beta"): 1,
        ("duplicate-kernel", "beta-again"): 1,
        ("stale-kernel", "gamma"): 1,
        ("kernel-without-activation", "shared"): 1,
        ("shadowed-kernel", "shared"): 1,
    }
)


def test_doctor_reports_every_planted_problem_and_nothing_false(machine: dict[str, Any]) -> None:
    code, items = findings(machine)
    assert code == 1
    expected = PLANTED + Counter({("env-without-kernel", str(machine["envs"]["eta"])): 1})
    assert problems(items) == expected
    by_code = {(f["code"], f["subject"]): f for f in items}
    assert by_code[("stale-kernel", "gamma")]["needs_yes"] is True
    assert by_code[("stale-kernel", "gamma")]["fix"] == "kernelkeeper remove gamma"
    assert by_code[("kernel-without-activation", "alpha")]["fix"] == "kernelkeeper adopt alpha"
    assert ("python3-is-server-python", "python3") in by_code
    info = {(f["code"], f["subject"]) for f in items if f["severity"] == "info"}
    assert ("jupyter-install", str(machine["envs"]["beta"])) in info
    assert ("jupyter-install", str(machine["envs"]["tools"])) in info
    assert ("project-env-without-ipykernel", str(machine["envs"]["epsilon"])) in info
    first = next(f for f in items if f["code"] == "jupyter-on-path")
    assert str(machine["envs"]["tools"]) in first["message"]
    for f in items:
        if f["severity"] != "info":
            assert f["fix"], f


def test_doctor_fix_then_clean_except_what_needs_yes(machine: dict[str, Any]) -> None:
    res = kk(machine, "doctor", "--fix", "--dry-run")
    assert res.returncode == 1
    assert "would update alpha" in res.stdout and "would add" in res.stdout
    code, after_dry = findings(machine)
    assert problems(after_dry)[("kernel-without-activation", "alpha")] == 1, "--dry-run changed nothing"

    res = kk(machine, "doctor", "--fix")
    assert res.returncode == 1, res.stdout + res.stderr
    code, items = findings(machine)
    left = problems(items)
    # beta was adopted, so beta-again (still bare) is no longer the same kernel: it needs activation now.
    assert left == Counter(
        {
            ("kernel-without-activation", "beta-again"): 1,
            ("stale-kernel", "gamma"): 1,
            ("shadowed-kernel", "shared"): 1,
        }
    )
    assert (machine["data"] / "kernels" / "gamma").is_dir(), "no foreign kernel removed without --yes"

    res = kk(machine, "doctor", "--fix", "--yes")
    assert "removed gamma: it cannot start: interpreter" in res.stdout, res.stdout
    names = sorted(p.name for p in (machine["data"] / "kernels").iterdir())
    assert "gamma" not in names, "a kernel that cannot start goes with --yes"
    assert {"alpha", "beta", "beta-again", "shared"} <= set(names), "duplicates and shadowed kernels are advice"
    code, items = findings(machine)
    left_items = [f for f in items if f["severity"] != "info"]
    assert left_items and all(f["advice"] for f in left_items), left_items
    assert {f["code"] for f in left_items} == {"duplicate-kernel", "shadowed-kernel"}

    # What is left goes when the person names it.
    assert kk(machine, "remove", "beta-again").returncode == 0
    shutil.rmtree(machine["data"] / "kernels" / "shared")
    code, items = findings(machine)
    assert code == 0 and problems(items) == Counter()


def test_adopt_keeps_names_and_the_kernel_runs_activated(machine: dict[str, Any], monkeypatch) -> None:
    res = kk(machine, "adopt", "alpha", "gamma", "--json")
    assert res.returncode == 1, "gamma cannot be adopted: it was named, so that is an error"
    out = json.loads(res.stdout)
    assert [a["kernel"] for a in out["actions"]] == ["alpha"]
    assert out["refused"] and out["refused"][0]["kernel"] == "gamma" and "stale" in out["refused"][0]["reason"]
    spec = json.loads((machine["data"] / "kernels" / "alpha" / "kernel.json").read_text())
    alpha = machine["envs"]["alpha"]
    assert spec["metadata"]["kernelkeeper"]["prefix"] == str(alpha)
    assert spec["env"]["VIRTUAL_ENV"] == str(alpha)
    assert spec["display_name"] == "alpha (venv · 3.11)", "a wrong version in the name: the current format"
    assert (machine["data"] / "kernels" / "alpha" / "logo-64x64.png").exists(), "the folder is kept as it was"

    for key in ("JUPYTER_DATA_DIR", "JUPYTER_PATH"):
        monkeypatch.setenv(key, machine["env"][key])
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="alpha", startup_timeout=60)
    out_text: list[str] = []
    try:
        code = "import sys, os, shutil; print(sys.prefix, os.environ['VIRTUAL_ENV'], shutil.which('python'))"
        kc.execute_interactive(code, timeout=60, output_hook=lambda m: out_text.append(m["content"].get("text", "")))
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    prefix, venv, which = "".join(out_text).split()
    assert prefix == str(alpha) and venv == str(alpha) and which == str(alpha / "bin" / "python")

    res = kk(machine, "adopt", "--all", "--dry-run", "--json")
    assert res.returncode == 0
    adoptable = {a["kernel"] for a in json.loads(res.stdout)["actions"]}
    assert adoptable == {"beta", "beta-again", "shared"}


def test_which_notebook(machine: dict[str, Any], tmp_path: Path) -> None:
    def notebook(name: str | None) -> Path:
        meta = {"kernelspec": {"name": name, "display_name": name, "language": "python"}} if name else {}
        path = tmp_path / f"{name}.ipynb"
        path.write_text(json.dumps({"cells": [], "metadata": meta, "nbformat": 4, "nbformat_minor": 5}))
        return path

    res = kk(machine, "which", str(notebook("alpha")), "--json")
    assert res.returncode == 0
    got = json.loads(res.stdout)
    assert got["kernelspec"] == str(machine["data"] / "kernels" / "alpha")
    assert got["interpreter"] == str(machine["envs"]["alpha"] / "bin" / "python")
    assert got["env"] == str(machine["envs"]["alpha"]) and got["starts"] is True

    res = kk(machine, "which", str(notebook("gamma")), "--json")
    assert res.returncode == 1
    got = json.loads(res.stdout)
    assert got["starts"] is False and "is gone" in got["reason"]

    res = kk(machine, "which", str(notebook("nosuch")))
    assert res.returncode == 1 and "no kernelspec named 'nosuch'" in res.stdout
    res = kk(machine, "which", str(tmp_path / "missing.ipynb"))
    assert res.returncode == 1 and "no such notebook" in res.stderr
