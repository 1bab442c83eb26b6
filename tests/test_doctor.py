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

import fakes
from conftest import hermetic
from kernelkeeper import doctor
from kernelkeeper.context import Context
from kernelkeeper.discovery import discover
from kernelkeeper.kernelspecs import KernelList, list_kernelspecs


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


@pytest.mark.realtools
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


@pytest.mark.realtools
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


@pytest.mark.realtools
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


@pytest.mark.realtools
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


# --- one test per check: each builds the few files its check reads, on the fast fake HOME ---------


def machine_of(home: Path, *, server_python: Path | None = None, kernels: KernelList | None = None) -> doctor.Machine:
    import os

    ctx = Context.from_environ(env=dict(os.environ), cwd=home)
    found = discover(ctx)
    return doctor.Machine(ctx, found.environments, kernels or list_kernelspecs(native=False), server_python)


def codes(findings: list[doctor.Finding]) -> list[tuple[str, str]]:
    return [(f.code, f.subject) for f in findings]


def user_kernels() -> Path:
    import os

    return Path(os.environ["JUPYTER_DATA_DIR"]) / "kernels"


def write_kernel(
    folder: Path, argv: list[str], *, display: str = "Python 3", env: dict[str, str] | None = None
) -> Path:
    folder.mkdir(parents=True)
    spec: dict[str, Any] = {"argv": argv, "display_name": display, "language": "python"}
    if env is not None:
        spec["env"] = env
    (folder / "kernel.json").write_text(json.dumps(spec))
    return folder


def launcher(python: Path) -> list[str]:
    return [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"]


def script(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    path.chmod(0o755)
    return path


def test_every_check_is_in_the_report_once() -> None:
    names = [c.__name__ for c in doctor.CHECKS]
    assert len(names) == len(set(names))
    defined = {n for n in dir(doctor) if n.startswith("check_")}
    assert defined == set(names), "a check_ function that diagnose never runs"


def test_check_first_python(fake_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = fakes.venv(fake_home / "tools" / "py")
    monkeypatch.setenv("PATH", f"{env / 'bin'}:/usr/bin:/bin")
    (finding,) = doctor.check_first_python(machine_of(fake_home))
    assert finding.code == "first-python" and finding.subject == str(env / "bin" / "python")


def test_check_jupyters_on_path(fake_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lab = fakes.venv(fake_home / "lab", ipykernel=True)
    other = fake_home / "other-bin"
    script(lab / "bin", "jupyter", f"#!{lab / 'bin' / 'python'}\n")
    script(other, "jupyter", "#!/usr/bin/python3\n")
    monkeypatch.setenv("PATH", f"{lab / 'bin'}:{other}:/usr/bin:/bin")
    found = doctor.check_jupyters_on_path(machine_of(fake_home))
    assert [f.code for f in found] == ["jupyter-on-path", "jupyter-shadowed-on-path"]
    assert str(lab / "bin" / "python") in found[0].message and "(system, /usr)" in found[1].message


def test_check_jupyter_python_mismatch(fake_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    system = Path("/usr/bin/python3")
    if not system.exists() or os.path.realpath(system) == str(fakes.BASE_PYTHON):
        pytest.skip("needs a /usr/bin/python3 other than the tests' Python")
    work = fakes.venv(fake_home / "work")  # its python links to the tests' Python
    jupyter_bin = fake_home / "jbin"
    script(jupyter_bin, "jupyter", f"#!{system}\n")
    monkeypatch.setenv("PATH", f"{work / 'bin'}:{jupyter_bin}:/usr/bin:/bin")
    assert [f.code for f in doctor.check_jupyter_python_mismatch(machine_of(fake_home))] == ["jupyter-python-mismatch"]
    script(jupyter_bin, "jupyter", f"#!{work / 'bin' / 'python'}\n")
    assert doctor.check_jupyter_python_mismatch(machine_of(fake_home)) == []


def test_check_jupyter_installs(fake_home: Path) -> None:
    old = fakes.venv(fakes.project(fake_home / "projects" / "old") / ".venv")
    site = old / "lib" / f"python{fakes.MINOR}" / "site-packages"
    for dist in ("jupyter_server-1.24.0", "jupyter_client-6.1.12"):
        (site / f"{dist}.dist-info").mkdir()
    found = doctor.check_jupyter_installs(machine_of(fake_home))
    assert codes(found) == [("jupyter-install", str(old)), ("jupyter-client-too-old", str(old))]
    assert "jupyter_client>=7" in (found[1].fix or "")


def test_check_config_breaks_jupyter(fake_home: Path) -> None:
    import os

    lab = fakes.venv(fakes.project(fake_home / "projects" / "lab") / ".venv")
    site = lab / "lib" / f"python{fakes.MINOR}" / "site-packages"
    for dist in ("jupyter_server-2.14.0", "jupyter_client-8.6.0"):
        (site / f"{dist}.dist-info").mkdir()
    config = Path(os.environ["JUPYTER_CONFIG_DIR"])
    config.mkdir(parents=True)
    legacy = {"ServerApp": {"kernel_spec_manager_class": "kernelkeeper.provider.KernelKeeperSpecManager"}}
    (config / "jupyter_server_config.json").write_text(json.dumps(legacy))
    found = doctor.check_config_breaks_jupyter(machine_of(fake_home))
    assert [f.code for f in found] == ["config-breaks-jupyter"]
    assert found[0].severity == "error" and found[0].fix


def test_check_jupyter_dirs(fake_home: Path) -> None:
    found = doctor.check_jupyter_dirs(machine_of(fake_home))
    assert [f.code for f in found][:3] == ["data-dir", "config-dir", "runtime-dir"]
    assert {f.code for f in found[3:]} == {"kernel-dir"}
    assert str(user_kernels()) in {f.subject for f in found[3:]}


def test_check_user_kernel_dir_writable(fake_home: Path) -> None:
    import os

    data = user_kernels().parent
    data.mkdir(parents=True)
    assert doctor.check_user_kernel_dir_writable(machine_of(fake_home)) == []
    if os.geteuid() == 0:
        pytest.skip("root may write any folder: the unwritable case needs an ordinary user")
    data.chmod(0o500)
    try:
        found = doctor.check_user_kernel_dir_writable(machine_of(fake_home))
    finally:
        data.chmod(0o700)
    assert [f.code for f in found] == ["user-kernel-dir-unwritable"]


def test_check_unreadable_kernel_dirs(fake_home: Path) -> None:
    kernels = KernelList((), ((fake_home / "secret" / "kernels", "permission denied"),))
    found = doctor.check_unreadable_kernel_dirs(machine_of(fake_home, kernels=kernels))
    assert [(f.code, f.severity) for f in found] == [("kernel-dir-unreadable", "warning")]


def test_check_invalid_kernels(fake_home: Path) -> None:
    (user_kernels() / "broken").mkdir(parents=True)
    (user_kernels() / "broken" / "kernel.json").write_text("{not json")
    (finding,) = doctor.check_invalid_kernels(machine_of(fake_home))
    assert finding.code == "invalid-kernel" and finding.needs_yes and "rm -r" in (finding.fix or "")


def test_check_shadowed_kernels(fake_home: Path) -> None:
    import os

    env = fakes.venv(fakes.project(fake_home / "projects" / "api") / ".venv", ipykernel=True)
    write_kernel(user_kernels() / "api", launcher(env / "bin" / "python"))
    shared = Path(os.environ["JUPYTER_PATH"]) / "kernels" / "api"
    write_kernel(shared, launcher(env / "bin" / "python"))
    notebook = fake_home / "projects" / "api" / "analysis.ipynb"
    notebook.write_text(json.dumps({"metadata": {"kernelspec": {"name": "api"}}, "cells": []}))
    (finding,) = doctor.check_shadowed_kernels(machine_of(fake_home))
    assert finding.code == "shadowed-kernel" and finding.advice
    assert finding.notebooks == (str(notebook),)


def test_check_overlay_missing(fake_home: Path) -> None:
    from kernelkeeper.cli import main
    from kernelkeeper.overlay import overlays_dir

    env = fakes.venv(fakes.project(fake_home / "projects" / "api") / ".venv")
    ctx = Context.from_environ(env=dict(__import__("os").environ))
    overlay = overlays_dir(ctx) / f"cpython-{fakes.MINOR}"
    (overlay / "site-packages" / "ipykernel").mkdir(parents=True)
    (overlay / "overlay.json").write_text("{}")
    assert main(["add", str(env)]) == 0
    shutil.rmtree(overlay)
    (finding,) = doctor.check_overlay_missing(machine_of(fake_home))
    assert finding.code == "kernel-overlay-missing" and finding.fix == f"kernelkeeper overlay build {env}"


def test_check_stale_kernels(fake_home: Path) -> None:
    from kernelkeeper.cli import main

    mine = fakes.venv(fake_home / "envs" / "mine", ipykernel=True)
    assert main(["add", str(mine)]) == 0
    gone = fakes.venv(fake_home / "envs" / "gone", ipykernel=True)
    write_kernel(user_kernels() / "handmade", launcher(gone / "bin" / "python"))
    shutil.rmtree(mine)
    shutil.rmtree(gone)
    found = {f.subject: f for f in doctor.check_stale_kernels(machine_of(fake_home))}
    assert found["handmade"].fix == "kernelkeeper remove handmade" and found["handmade"].needs_yes
    (managed,) = [f for name, f in found.items() if name != "handmade"]
    assert managed.fix == "kernelkeeper sync" and not managed.needs_yes


def test_check_packaged_kernels(fake_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    prefix = fakes.venv(tmp_path / "pkg-prefix", ipykernel=True)
    folder = write_kernel(prefix / "share" / "jupyter" / "kernels" / "python3", launcher(prefix / "bin" / "python"))
    site = prefix / "lib" / f"python{fakes.MINOR}" / "site-packages"
    (site / "ipykernel-6.29.5.dist-info" / "RECORD").write_text(
        "../../../share/jupyter/kernels/python3/kernel.json,sha256=x,10\n"
    )
    monkeypatch.setenv("JUPYTER_PATH", str(prefix / "share" / "jupyter"))
    found = doctor.check_packaged_kernels(machine_of(fake_home))
    assert codes(found) == [("packaged-kernel", "python3")]
    assert folder.name in found[0].message or "ipykernel" in found[0].message


def test_check_lost_ipykernel(fake_home: Path) -> None:
    from kernelkeeper.cli import main

    env = fakes.venv(fake_home / "envs" / "lost", ipykernel=True)
    assert main(["add", str(env)]) == 0
    shutil.rmtree(env / "lib" / f"python{fakes.MINOR}" / "site-packages" / "ipykernel-6.29.5.dist-info")
    (finding,) = doctor.check_lost_ipykernel(machine_of(fake_home))
    assert finding.code == "kernel-lost-ipykernel" and "pip install ipykernel" in (finding.fix or "")


def test_check_duplicate_kernels(fake_home: Path) -> None:
    env = fakes.venv(fake_home / "envs" / "twice", ipykernel=True)
    write_kernel(user_kernels() / "copy-a", launcher(env / "bin" / "python"))
    write_kernel(user_kernels() / "copy-b", launcher(env / "bin" / "python"))
    write_kernel(user_kernels() / "gpu", launcher(env / "bin" / "python"), env={"CUDA_VISIBLE_DEVICES": "0"})
    found = doctor.check_duplicate_kernels(machine_of(fake_home))
    assert [f.code for f in found] == ["duplicate-kernel"] and found[0].advice
    assert found[0].subject in ("copy-a", "copy-b")  # the GPU variant is another kernel


def test_check_python3_is_server_python(fake_home: Path) -> None:
    base = fakes.base_python(fake_home / ".pyenv" / "versions" / fakes.BASE_VERSION)
    write_kernel(user_kernels() / "python3", launcher(base / "bin" / "python"))
    found = doctor.check_python3_is_server_python(machine_of(fake_home))
    assert codes(found) == [("python3-is-server-python", "python3")]


def test_check_kernel_without_activation(fake_home: Path) -> None:
    env = fakes.venv(fakes.project(fake_home / "projects" / "api") / ".venv", ipykernel=True)
    write_kernel(user_kernels() / "api", launcher(env / "bin" / "python"))
    write_kernel(
        user_kernels() / "api-activated",
        [*launcher(env / "bin" / "python"), "--x"],
        env={"PATH": f"{env / 'bin'}:/bin"},
    )
    found = doctor.check_kernel_without_activation(machine_of(fake_home))
    assert codes(found) == [("kernel-without-activation", "api")]
    assert found[0].fix == "kernelkeeper adopt api"


def test_check_display_name_version(fake_home: Path) -> None:
    env = fakes.venv(fakes.project(fake_home / "projects" / "api") / ".venv", ipykernel=True)
    write_kernel(user_kernels() / "api", launcher(env / "bin" / "python"), display="Python 2.7 (api)")
    found = doctor.check_display_name_version(machine_of(fake_home))
    assert codes(found) == [("display-name-version-mismatch", "api")]


def test_check_env_without_kernel(fake_home: Path) -> None:
    with_kernel = fakes.venv(fakes.project(fake_home / "projects" / "a") / ".venv", ipykernel=True)
    without = fakes.venv(fakes.project(fake_home / "projects" / "b") / ".venv", ipykernel=True)
    write_kernel(user_kernels() / "a", launcher(with_kernel / "bin" / "python"))
    found = doctor.check_env_without_kernel(machine_of(fake_home))
    assert codes(found) == [("env-without-kernel", str(without))]


def test_check_overlay_clash(fake_home: Path) -> None:
    from kernelkeeper.overlay import overlays_dir

    env = fakes.venv(fakes.project(fake_home / "projects" / "old") / ".venv")
    (env / "lib" / f"python{fakes.MINOR}" / "site-packages" / "traitlets-5.0.0.dist-info").mkdir()
    ctx = Context.from_environ(env=dict(__import__("os").environ))
    site = overlays_dir(ctx) / f"cpython-{fakes.MINOR}" / "site-packages"
    (site / "ipykernel").mkdir(parents=True)
    (site.parent / "overlay.json").write_text("{}")
    info = site / "ipykernel-6.29.5.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: ipykernel\nVersion: 6.29.5\nRequires-Dist: traitlets>=5.4.0\n"
    )
    found = doctor.check_overlay_clash(machine_of(fake_home))
    assert codes(found) == [("overlay-clash", str(env))]
    assert "traitlets>=5.4.0" in (found[0].fix or "")
    assert doctor.check_project_env_without_ipykernel(machine_of(fake_home)) == []  # one finding, not two


def test_check_project_env_without_ipykernel(fake_home: Path) -> None:
    env = fakes.venv(fakes.project(fake_home / "projects" / "plain") / ".venv")
    found = doctor.check_project_env_without_ipykernel(machine_of(fake_home))
    assert codes(found) == [("project-env-without-ipykernel", str(env))]
    assert (found[0].fix or "").startswith(f"kernelkeeper add {fake_home / 'projects' / 'plain'}")
