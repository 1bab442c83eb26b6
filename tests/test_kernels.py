"""add / list / remove / prune / sync over on-disk environments (real kernels: test_real_kernels.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import fakes
from conftest import hermetic, readable_site
from kernelkeeper.cli import main
from kernelkeeper.context import Context
from kernelkeeper.discovery import discover
from kernelkeeper.kernelspecs import list_kernelspecs, scope_dir
from kernelkeeper.plan import Filters, plan_sync


def kernels_dir() -> Path:
    return Path(os.environ["JUPYTER_DATA_DIR"]) / "kernels"


def cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, object]:
    capsys.readouterr()
    code = main([*argv, "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else None


def foreign_kernel(folder: Path, name: str, python: str) -> Path:
    """What `python -m ipykernel install --user --name NAME` writes."""
    path = folder / name
    path.mkdir(parents=True)
    spec = {
        "argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": name,
        "language": "python",
        "metadata": {"debugger": True},
    }
    (path / "kernel.json").write_text(json.dumps(spec))
    return path


@pytest.fixture
def three_envs(fake_home: Path) -> dict[str, Path]:
    projects = fake_home / "projects"
    return {
        "alpha": fakes.venv(fakes.project(projects / "alpha") / ".venv", ipykernel=True),
        "beta": fakes.venv(
            fakes.project(projects / "beta", files={"uv.lock": ""}) / ".venv", tool="uv", ipykernel=True
        ),
        "sci": fakes.conda(fake_home / "miniconda3" / "envs" / "sci", ipykernel=True, version="3.10.13"),
        "bare": fakes.venv(fakes.project(projects / "bare") / ".venv"),
    }


def test_sync_adds_then_does_nothing_and_writes_nothing(three_envs: dict[str, Path], capsys) -> None:
    code, plan = cli_json(capsys, "sync")
    assert code == 0
    actions = plan["actions"]  # type: ignore[index]
    assert sorted((a["action"], a["kernel"]) for a in actions) == [
        ("add", "conda-sci-py3.10"),
        ("add", "uv-beta-py3.11".replace("3.11", fakes.MINOR)),
        ("add", f"venv-alpha-py{fakes.MINOR}"),
    ]
    assert all(a["error"] is None for a in actions)
    spec = json.loads((kernels_dir() / f"venv-alpha-py{fakes.MINOR}" / "kernel.json").read_text())
    alpha = three_envs["alpha"]
    assert spec["argv"] == [str(alpha / "bin" / "python"), "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    assert spec["env"]["PATH"] == f"{alpha / 'bin'}:${{PATH}}"
    assert spec["env"]["VIRTUAL_ENV"] == str(alpha)
    assert spec["env"]["PYTHONHOME"] == "" and spec["env"]["CONDA_PREFIX"] == ""
    assert spec["display_name"] == f"alpha (venv · {fakes.MINOR})"
    assert spec["metadata"]["kernelkeeper"]["prefix"] == str(alpha)
    conda_spec = json.loads((kernels_dir() / "conda-sci-py3.10" / "kernel.json").read_text())
    assert conda_spec["env"]["CONDA_PREFIX"] == str(three_envs["sci"])
    assert conda_spec["env"]["CONDA_DEFAULT_ENV"] == "sci"
    assert conda_spec["env"]["VIRTUAL_ENV"] == ""

    before = {p: p.stat().st_mtime_ns for p in kernels_dir().rglob("*")}
    code, plan = cli_json(capsys, "sync")
    assert code == 0 and plan["actions"] == []  # type: ignore[index]
    assert {p: p.stat().st_mtime_ns for p in kernels_dir().rglob("*")} == before


def test_dry_run_writes_nothing(three_envs: dict[str, Path], capsys) -> None:
    code, plan = cli_json(capsys, "sync", "--dry-run")
    assert code == 0 and len(plan["actions"]) == 3  # type: ignore[index]
    assert not kernels_dir().exists()
    assert main(["add", str(three_envs["alpha"]), "--dry-run"]) == 0
    assert "would add kernel" in capsys.readouterr().out
    assert not kernels_dir().exists()


def test_deleted_env_goes_stale_and_sync_removes_only_its_own(three_envs: dict[str, Path], capsys) -> None:
    import shutil

    assert main(["sync"]) == 0
    gone_python = three_envs["beta"] / "bin" / "python"
    foreign = foreign_kernel(kernels_dir(), "handmade", str(gone_python))
    shutil.rmtree(three_envs["beta"])
    _, listing = cli_json(capsys, "list")
    status = {k["name"]: (k["status"], k["managed"]) for k in listing}  # type: ignore[union-attr]
    assert status[f"uv-beta-py{fakes.MINOR}"] == ("stale", True)
    assert status["handmade"] == ("stale", False)
    assert status[f"venv-alpha-py{fakes.MINOR}"] == ("ok", True)

    _, plan = cli_json(capsys, "sync")
    assert [(a["action"], a["kernel"]) for a in plan["actions"]] == [("remove", f"uv-beta-py{fakes.MINOR}")]  # type: ignore[index]
    assert foreign.exists(), "sync never touches a kernel kernelkeeper did not make"

    assert main(["prune", "--dry-run"]) == 0
    assert foreign.exists()
    _, plan = cli_json(capsys, "prune", "--yes")
    assert [a["kernel"] for a in plan["actions"]] == ["handmade"]  # type: ignore[index]
    assert not foreign.exists()


def test_prune_without_yes_refuses_when_it_cannot_ask(three_envs: dict[str, Path], capsys) -> None:
    foreign = foreign_kernel(kernels_dir(), "dead", "/nonexistent/bin/python")
    assert main(["prune"]) == 1
    assert "rerun with --yes" in capsys.readouterr().err
    assert foreign.exists()


def test_update_keeps_the_name(three_envs: dict[str, Path], capsys) -> None:
    assert main(["sync"]) == 0
    alpha = three_envs["alpha"]
    cfg = alpha / "pyvenv.cfg"
    cfg.write_text(cfg.read_text().replace(f"version = {fakes.BASE_VERSION}", f"version = {fakes.MINOR}.99"))
    _, plan = cli_json(capsys, "sync")
    assert [(a["action"], a["kernel"], a["reason"]) for a in plan["actions"]] == [  # type: ignore[index]
        ("update", f"venv-alpha-py{fakes.MINOR}", f"Python {fakes.BASE_VERSION} → {fakes.MINOR}.99")
    ]
    spec = json.loads((kernels_dir() / f"venv-alpha-py{fakes.MINOR}" / "kernel.json").read_text())
    assert spec["metadata"]["kernelkeeper"]["python_version"] == f"{fakes.MINOR}.99"


def test_two_projects_with_one_name_never_overwrite(fake_home: Path, capsys) -> None:
    a = fakes.venv(fakes.project(fake_home / "projects" / "api") / ".venv", ipykernel=True)
    b = fakes.venv(fakes.project(fake_home / "work" / "client" / "api") / ".venv", ipykernel=True)
    _, plan = cli_json(capsys, "sync")
    names = {a_["env"]: a_["kernel"] for a_ in plan["actions"]}  # type: ignore[index]
    assert len(set(names.values())) == 2
    base = f"venv-api-py{fakes.MINOR}"
    assert base in names.values()
    assert any(n.startswith(base + "-") and len(n) == len(base) + 7 for n in names.values())
    # Hand-made kernel with the same name: ours gets the hashed name, theirs is untouched.
    assert {str(a), str(b)} == set(names)


def test_foreign_kernel_for_the_same_interpreter_is_not_duplicated(three_envs: dict[str, Path], capsys) -> None:
    foreign_kernel(kernels_dir(), "alpha-by-hand", str(three_envs["alpha"] / "bin" / "python"))
    _, plan = cli_json(capsys, "sync")
    assert "venv-alpha" not in json.dumps(plan["actions"])  # type: ignore[index]
    assert any("alpha-by-hand" in n for n in plan["notes"])  # type: ignore[index]


def test_filters_from_config(three_envs: dict[str, Path], fake_home: Path, capsys) -> None:
    cfg = fake_home / ".config" / "kernelkeeper"
    cfg.mkdir(parents=True)
    (cfg / "config.toml").write_text('[sync]\nexclude_kinds = ["conda"]\nexclude_names = ["bet*"]\n')
    _, plan = cli_json(capsys, "sync", "--dry-run")
    assert [a["kernel"] for a in plan["actions"]] == [f"venv-alpha-py{fakes.MINOR}"]  # type: ignore[index]


def test_plan_is_pure_and_deterministic(three_envs: dict[str, Path], tmp_path: Path) -> None:
    envs = discover(Context.from_environ()).environments
    folder = tmp_path / "nowhere" / "kernels"
    present = list_kernelspecs(native=False)
    p1 = plan_sync(envs, present, folder, Filters())
    p2 = plan_sync(envs, present, folder, Filters(include_kinds=("uv",)))
    assert not folder.exists()
    assert [a.kernel for a in p1.actions] == [a.kernel for a in plan_sync(envs, present, folder).actions]
    assert [a.kernel for a in p2.actions] == [f"uv-beta-py{fakes.MINOR}"]


def test_add_targets_and_refusals(three_envs: dict[str, Path], fake_home: Path, monkeypatch, capsys) -> None:
    # By project folder, from inside the project, by env name, by prefix.
    monkeypatch.chdir(fake_home / "projects" / "alpha")
    assert main(["add"]) == 0
    assert (kernels_dir() / f"venv-alpha-py{fakes.MINOR}").is_dir()
    assert main(["add", "sci", "--name", "science", "--display-name", "Science!", "--env", "OMP_NUM_THREADS=2"]) == 0
    spec = json.loads((kernels_dir() / "science" / "kernel.json").read_text())
    assert spec["display_name"] == "Science!" and spec["env"]["OMP_NUM_THREADS"] == "2"
    assert main(["add", str(fake_home / "projects" / "beta")]) == 0
    capsys.readouterr()

    # Without ipykernel and without an overlay: refused with the exact command that fixes it.
    assert main(["add", str(three_envs["bare"]), "--no-overlay"]) == 1
    err = capsys.readouterr().err
    assert f"{three_envs['bare'] / 'bin' / 'python'} -m pip install ipykernel" in err
    assert "--install-ipykernel" in err

    # Bad names: spaces, capitals, unicode, path escapes, too long for a folder: bad usage, exit 2.
    for bad in ("my kernel", "MyKernel", "kérnel", "../evil", "a/b", "..", "x" * 256):
        assert main(["add", "sci", "--name", bad]) == 2, bad
        assert "invalid kernel name" in capsys.readouterr().err
    assert not (kernels_dir().parent / "evil").exists()

    # A name taken by someone else's kernel is not overwritten.
    foreign = foreign_kernel(kernels_dir(), "taken", "/usr/bin/python3")
    assert main(["add", "sci", "--name", "taken"]) == 1
    assert "not overwritten" in capsys.readouterr().err
    assert json.loads((foreign / "kernel.json").read_text())["display_name"] == "taken"

    # Adding again updates the same kernel; it never makes a second one.
    assert main(["add", str(three_envs["alpha"]), "--display-name", "Alpha"]) == 0
    alpha_kernels = [p for p in kernels_dir().iterdir() if "alpha" in p.name]
    assert [p.name for p in alpha_kernels] == [f"venv-alpha-py{fakes.MINOR}"]


def test_scopes(three_envs: dict[str, Path], tmp_path: Path, capsys) -> None:
    assert main(["add", "sci", "--scope", "system"]) == 0
    system = scope_dir("system")
    assert str(system).startswith(str(tmp_path)), "conftest redirects the system path"
    assert (system / "conda-sci-py3.10" / "kernel.json").is_file()
    assert main(["add", "sci", "--scope", f"prefix:{tmp_path / 'pfx'}"]) == 0
    assert (tmp_path / "pfx" / "share" / "jupyter" / "kernels" / "conda-sci-py3.10").is_dir()
    assert main(["add", "sci", "--scope", "galaxy"]) == 2  # bad usage (issue 15)
    assert "unknown scope" in capsys.readouterr().err


def test_remove_by_name_and_unknown_name(three_envs: dict[str, Path], capsys) -> None:
    foreign = foreign_kernel(kernels_dir(), "mine", "/usr/bin/python3")
    assert main(["remove", "mine", "nope"]) == 1
    assert "no kernelspec named 'nope'" in capsys.readouterr().err
    assert foreign.exists(), "nothing is removed when one name is wrong"
    assert main(["remove", "mine"]) == 0
    assert not foreign.exists()
    assert main(["remove", "../etc"]) == 2, "a name no kernel can have is bad usage"


def test_bad_kernelspecs_are_listed_not_fatal(three_envs: dict[str, Path], tmp_path: Path, capsys) -> None:
    folder = kernels_dir()
    (folder / "broken").mkdir(parents=True)
    (folder / "broken" / "kernel.json").write_text("{not json")
    (folder / "noargv").mkdir()
    (folder / "noargv" / "kernel.json").write_text('{"display_name": "x"}')
    python = str(three_envs["sci"] / "bin" / "python")
    elsewhere = foreign_kernel(tmp_path / "other", "linked", python)
    (folder / "linked").symlink_to(elsewhere)
    (folder / "dangling").symlink_to(tmp_path / "missing")
    (folder / "Upper").mkdir()
    (folder / "Upper" / "kernel.json").write_text(json.dumps({"argv": [python], "display_name": "U"}))
    code, listing = cli_json(capsys, "list")
    assert code == 0
    status = {k["name"]: k["status"] for k in listing}  # type: ignore[union-attr]
    assert status["broken"] == "invalid"
    assert status["noargv"] == "invalid"
    assert status["linked"] == "ok"
    assert status["upper"] == "ok", "Jupyter lower-cases folder names"
    assert status["dangling"] == "invalid"
    reason = {k["name"]: k["reason"] for k in listing}  # type: ignore[union-attr]
    assert "not valid JSON" in reason["broken"]
    # sync and prune leave all of them alone (none is kernelkeeper's, none is stale).
    assert main(["sync"]) == 0
    assert main(["prune", "--yes"]) == 0
    assert (folder / "broken" / "kernel.json").read_text() == "{not json"
    assert (folder / "linked").is_symlink() and elsewhere.exists()


def test_shadowed_kernel(three_envs: dict[str, Path], tmp_path: Path, capsys) -> None:
    early = Path(os.environ["JUPYTER_PATH"]) / "kernels"
    python = str(three_envs["sci"] / "bin" / "python")
    foreign_kernel(early, "dup", python)
    foreign_kernel(kernels_dir(), "dup", python)
    _, listing = cli_json(capsys, "list")
    dups = [(k["resource_dir"], k["status"]) for k in listing if k["name"] == "dup"]  # type: ignore[union-attr]
    assert dups == [(str(early / "dup"), "ok"), (str(kernels_dir() / "dup"), "shadowed")]


def _sync_cmd() -> list[str]:
    return [sys.executable, "-m", "kernelkeeper", "sync", "--json"]


def _many_envs(home: Path, n: int) -> None:
    for i in range(n):
        fakes.venv(fakes.project(home / "projects" / f"p{i:03}") / ".venv", ipykernel=True)


def test_two_syncs_at_once_do_not_interleave(fake_home: Path) -> None:
    _many_envs(fake_home, 120)
    env = hermetic(dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)), fake_home.parent / "jupyter-root")
    procs = [
        subprocess.Popen(_sync_cmd(), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1] for o in outs]
    added = [a["kernel"] for out, _ in outs for a in json.loads(out)["actions"]]
    assert len(added) == 120 and len(set(added)) == 120, "each kernel added exactly once, by one of the runs"
    assert sorted(p.name for p in kernels_dir().iterdir()) == sorted(added)


def test_killed_sync_leaves_no_half_written_kernel(fake_home: Path) -> None:
    _many_envs(fake_home, 300)
    env = hermetic(dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)), fake_home.parent / "jupyter-root")
    for delay in (0.4, 0.6, 0.8):
        proc = subprocess.Popen(_sync_cmd(), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        for kernel in kernels_dir().iterdir() if kernels_dir().exists() else []:
            json.loads((kernel / "kernel.json").read_text())  # every kernel that exists is whole
    res = subprocess.run(_sync_cmd(), env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert len(list(kernels_dir().iterdir())) == 300
    again = subprocess.run(_sync_cmd(), env=env, capture_output=True, text=True, timeout=120)
    assert json.loads(again.stdout)["actions"] == []


def test_removing_a_symlinked_kernel_removes_only_the_link(three_envs: dict[str, Path], tmp_path: Path) -> None:
    target = foreign_kernel(tmp_path / "shared", "linked", str(three_envs["sci"] / "bin" / "python"))
    kernels_dir().mkdir(parents=True)
    (kernels_dir() / "linked").symlink_to(target)
    assert main(["remove", "linked"]) == 0
    assert not (kernels_dir() / "linked").exists()
    assert (target / "kernel.json").is_file(), "the folder the link pointed at is someone else's"


def test_unreadable_kernels_folder_is_reported(three_envs: dict[str, Path]) -> None:
    """As root every folder is readable, so `list` runs as `nobody` there (setpriv)."""
    import shutil
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="kk-unreadable-kernels-"))
    try:
        secret = base / "secret" / "kernels"
        foreign_kernel(secret, "hidden", "/usr/bin/python3")
        visible = foreign_kernel(base / "open" / "kernels", "shown", "/usr/bin/python3")
        for p in [base, *base.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
        secret.chmod(0o000)
        env = {
            "HOME": str(base),
            "PATH": "/usr/bin:/bin",
            "JUPYTER_PATH": f"{secret.parent}:{visible.parent.parent}",
            "JUPYTER_DATA_DIR": str(base / "data"),
            "PYTHONPATH": readable_site(base),
        }
        cmd = [sys.executable, "-m", "kernelkeeper", "list", "--json"]
        if os.geteuid() == 0:
            if not shutil.which("setpriv"):
                pytest.skip("running as root without setpriv: cannot make a folder unreadable")
            cmd = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *cmd]
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, cwd=str(base))
        assert res.returncode == 0, res.stderr
        assert f"skipped {secret}: permission denied" in res.stderr
        names = [k["name"] for k in json.loads(res.stdout)]
        assert "shown" in names and "hidden" not in names
    finally:
        secret.chmod(0o755)
        shutil.rmtree(base)


def test_a_kernel_whose_python_this_user_may_not_reach_is_not_stale_and_prune_keeps_it() -> None:
    """A shared kernels folder with a kernel whose interpreter sits behind a folder this user may
    not enter (another user's Python): it may start for them, so it is `unreachable`, not
    `stale`, and `prune` (which removes hand-made kernels too) leaves it. Runs as `nobody` when root."""
    import shutil
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="kk-unreachable-kernel-"))
    private = base / "private"
    try:
        python = private / "bin" / "python"
        python.parent.mkdir(parents=True)
        python.write_text("")
        kernels = base / "data" / "kernels"
        theirs = foreign_kernel(kernels, "theirs", str(python))
        gone = foreign_kernel(kernels, "gone", str(base / "nowhere" / "bin" / "python"))
        for p in [base, *base.rglob("*")]:
            p.chmod(0o777 if p.is_dir() else 0o666)  # the kernels folder is writable by whoever runs prune
        private.chmod(0o000)
        env = {
            "HOME": str(base),
            "PATH": "/usr/bin:/bin",
            "JUPYTER_PATH": str(base / "none"),
            "JUPYTER_DATA_DIR": str(base / "data"),
            "PYTHONPATH": readable_site(base),
        }
        prefix = []
        if os.geteuid() == 0:
            if not shutil.which("setpriv"):
                pytest.skip("running as root without setpriv: cannot make a folder unreachable")
            prefix = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]

        def kk(*args: str) -> subprocess.CompletedProcess[str]:
            cmd = [*prefix, sys.executable, "-m", "kernelkeeper", *args]
            return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, cwd=str(base))

        listed = kk("list", "--json")
        assert listed.returncode == 0, listed.stderr
        status = {k["name"]: k["status"] for k in json.loads(listed.stdout)}
        assert status["theirs"] == "unreachable" and status["gone"] == "stale", status
        doctor = kk("doctor", "--json")
        findings = {(f["code"], f["subject"]): f for f in json.loads(doctor.stdout)["findings"]}
        assert ("unreachable-kernel", "theirs") in findings and ("stale-kernel", "theirs") not in findings
        assert findings[("unreachable-kernel", "theirs")]["fix"] is None, "nothing to fix: it may start for its owner"
        pruned = kk("prune", "--yes", "--json")  # no rich: `nobody` imports only the copies in readable_site
        assert pruned.returncode == 0, pruned.stderr
        assert (theirs / "kernel.json").is_file(), "a kernel that may start for another user was removed"
        assert not gone.exists()
    finally:
        private.chmod(0o755)
        shutil.rmtree(base)


def test_pip_python_only_for_environments_without_pip(three_envs: dict[str, Path], fake_home: Path) -> None:
    """With a pip of its own, PATH finds it; without one, PIP_PYTHON points any pip at the environment."""
    import shutil

    from kernelkeeper.environments import Found, merge
    from kernelkeeper.kernel import kernel_json

    alpha = three_envs["alpha"]
    with_pip = kernel_json(merge([Found(alpha, "venv")], fake_home))
    assert "PIP_PYTHON" not in with_pip["env"]
    for dist in alpha.glob("lib/python*/site-packages/pip-*.dist-info"):
        shutil.rmtree(dist)
    without = kernel_json(merge([Found(alpha, "venv")], fake_home))
    assert without["env"]["PIP_PYTHON"] == without["argv"][0] == str(alpha / "bin" / "python")


# --- never lose a kernel someone may need (issue 11) -------------------------------------------------


def _kk(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The real `kernelkeeper` process, as a person runs it (output is what is checked)."""
    env = hermetic(dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)), Path(os.environ["HOME"]).parent / "jr")
    return subprocess.run(
        [sys.executable, "-m", "kernelkeeper", *args], env=env, capture_output=True, text=True, timeout=120, cwd=cwd
    )


def _ipykernel_install(*args: str) -> None:
    """What people run: `python -m ipykernel install --user ...` (here with the tests' own ipykernel)."""
    subprocess.run([sys.executable, "-m", "ipykernel", "install", *args], check=True, capture_output=True, timeout=120)


def _notebook(path: Path, kernel: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"kernelspec": {"name": kernel, "display_name": kernel, "language": "python"}}
    path.write_text(json.dumps({"cells": [], "metadata": meta, "nbformat": 4, "nbformat_minor": 5}))
    return path


def test_a_plan_holds_one_action_per_kernel(tmp_path: Path) -> None:
    from kernelkeeper.plan import Action, Plan

    one = Action("update", "k", tmp_path, "why", None, {})
    with pytest.raises(AssertionError, match="two actions for the kernel k"):
        Plan((one, Action("remove", "k", tmp_path, "why")))
    assert len(Plan((one, Action("remove", "k", tmp_path / "other", "why"))).actions) == 2


def test_moved_interpreter_is_one_update_that_keeps_what_the_person_set(three_envs: dict[str, Path]) -> None:
    alpha = three_envs["alpha"]
    name = f"venv-alpha-py{fakes.MINOR}"
    res = _kk(
        "add",
        str(alpha),
        "--display-name",
        "Alpha on GPU 1",
        "--env",
        "CUDA_VISIBLE_DEVICES=1",
        "--env",
        "PYTHONPATH=/opt/extra",
    )
    assert res.returncode == 0, res.stderr
    (alpha / "bin" / "python").unlink()  # the interpreter moved: bin/python3 is what is left
    res = _kk("sync")
    assert res.returncode == 0, res.stderr
    lines = [ln for ln in res.stdout.splitlines() if name in ln and not ln.startswith("note")]
    assert lines == [f"updated {name}: interpreter {alpha / 'bin' / 'python'} → {alpha / 'bin' / 'python3'}"], (
        res.stdout
    )
    spec = json.loads((kernels_dir() / name / "kernel.json").read_text())
    assert spec["argv"][0] == str(alpha / "bin" / "python3")
    assert spec["display_name"] == "Alpha on GPU 1"
    assert spec["env"]["CUDA_VISIBLE_DEVICES"] == "1"
    assert spec["env"]["PYTHONPATH"] == "/opt/extra", "the person's value wins over the blanked one"
    again = _kk("sync")
    assert again.returncode == 0 and "nothing to do" in again.stdout, again.stdout
    # A later `add` without the options keeps them too.
    assert main(["add", str(alpha)]) == 0
    assert json.loads((kernels_dir() / name / "kernel.json").read_text())["display_name"] == "Alpha on GPU 1"


def test_kernels_written_before_choices_were_recorded_keep_theirs(three_envs: dict[str, Path], capsys) -> None:
    alpha = three_envs["alpha"]
    name = f"venv-alpha-py{fakes.MINOR}"
    assert main(["add", str(alpha), "--display-name", "Mine", "--env", "FOO=1"]) == 0
    path = kernels_dir() / name / "kernel.json"
    spec = json.loads(path.read_text())
    assert spec["metadata"]["kernelkeeper"]["display_name"] == "Mine"
    assert spec["metadata"]["kernelkeeper"]["env"] == {"FOO": "1"}
    for key in ("display_name", "env"):  # as an older kernelkeeper wrote it
        del spec["metadata"]["kernelkeeper"][key]
    path.write_text(json.dumps(spec))
    (alpha / "bin" / "python").unlink()
    _, plan = cli_json(capsys, "sync")
    assert [a["action"] for a in plan["actions"] if a["kernel"] == name] == ["update"]  # type: ignore[index]
    spec = json.loads(path.read_text())
    assert spec["display_name"] == "Mine" and spec["env"]["FOO"] == "1"


def test_doctor_fix_removes_only_kernels_that_cannot_start(fake_home: Path, monkeypatch, capsys) -> None:
    data = kernels_dir()
    early = fake_home.parent / "shared-prefix" / "share" / "jupyter"
    monkeypatch.setenv("JUPYTER_PATH", str(early))
    _ipykernel_install("--user", "--name", "myproj")
    _ipykernel_install("--user", "--name", "myproj-gpu", "--env", "CUDA_VISIBLE_DEVICES", "1")
    # Two kernels that run the same thing: a true duplicate (the same argv and the same env).
    _ipykernel_install("--user", "--name", "copy-a", "--env", "STAGE", "copy")
    _ipykernel_install("--user", "--name", "copy-b", "--env", "STAGE", "copy")
    _ipykernel_install("--user", "--name", "shared", "--env", "STAGE", "user")  # hidden by the JUPYTER_PATH copy
    _ipykernel_install("--prefix", str(early.parent.parent), "--name", "shared", "--env", "STAGE", "prefix")
    assert (early / "kernels" / "shared").is_dir()
    foreign_kernel(data, "gone", "/nonexistent/bin/python")
    (data / "broken").mkdir()
    (data / "broken" / "kernel.json").write_text("{not json")
    projects = fake_home / "projects"
    uses_b = _notebook(projects / "api" / "notebooks" / "explore.ipynb", "copy-b")
    uses_shared = _notebook(projects / "api" / "shared.ipynb", "shared")
    (projects / "api" / "huge.ipynb").write_bytes(b"{" + b" " * (17 << 20) + b"}")  # over the size limit
    (projects / "api" / "bad.ipynb").write_text('{"metadata": {"kernelspec": ')
    os.mkfifo(projects / "api" / "fifo.ipynb")  # never opened: not a regular file

    _, report = cli_json(capsys, "doctor")
    found = {(f["code"], f["subject"]): f for f in report["findings"]}  # type: ignore[index]
    assert not any(code == "duplicate-kernel" and "myproj" in subject for code, subject in found), (
        "a kernel whose env differs is another kernel, not a duplicate"
    )
    dup = found[("duplicate-kernel", "copy-b")]
    assert dup["advice"] is True and dup["needs_yes"] is False
    assert dup["notebooks"] == [str(uses_b)] and str(uses_b) in dup["message"]
    shadowed = found[("shadowed-kernel", "shared")]
    assert shadowed["advice"] is True and shadowed["notebooks"] == [str(uses_shared)]
    assert "JUPYTER_PATH" in shadowed["message"]

    res = _kk("doctor", "--fix", "--yes", cwd=fake_home)
    removed = sorted(ln for ln in res.stdout.splitlines() if ln.startswith("removed"))
    assert removed == [
        "removed broken: it cannot start: kernel.json is not valid JSON: Expecting property name enclosed in "
        "double quotes: line 1 column 2 (char 1) (removed because you gave --yes)",
        "removed gone: it cannot start: interpreter /nonexistent/bin/python is gone (a hand-made kernel, "
        "removed because you gave --yes)",
    ], res.stdout
    left = sorted(p.name for p in data.iterdir())
    assert left == ["copy-a", "copy-b", "myproj", "myproj-gpu", "shared"]
    assert "advice: kernelkeeper remove copy-b" in res.stdout
    # What is advice goes when the person names it.
    assert main(["remove", "copy-b"]) == 0 and not (data / "copy-b").exists()


def test_this_project_kernel_is_no_environments_kernel(fake_home: Path, capsys, monkeypatch) -> None:
    # kernelkeeper's own environment (the tests' venv, wherever it lives: .venv, .ci-venv) is one discovery
    # finds: named outright in the config, as a person would for an env outside their projects.
    config = fake_home / "kk.toml"
    config.write_text(f"[discovery]\npaths = [{json.dumps(sys.prefix)}]\n")
    monkeypatch.setenv("KERNELKEEPER_CONFIG", str(config))
    venv_root = str(fake_home)
    assert main(["add", "--this-project"]) == 0
    _, plan = cli_json(capsys, "sync", "--dry-run", "--root", venv_root, "--no-default-roots")
    ours = [a for a in plan["actions"] if a["env"] == sys.prefix]  # type: ignore[index]
    assert [a["action"] for a in ours] == ["add"], "the this-project kernel does not stand for this environment"
    assert not any("python-this-project" in n for n in plan["notes"])  # type: ignore[index]

    _ipykernel_install("--user", "--name", "python3")
    code, report = cli_json(capsys, "doctor", "--root", venv_root, "--no-default-roots")
    codes = {(f["code"], f["subject"]) for f in report["findings"] if f["severity"] != "info"}  # type: ignore[index]
    assert not any(c == "duplicate-kernel" for c, _ in codes), codes
    assert main(["doctor", "--fix", "--root", venv_root, "--no-default-roots"]) in (0, 1)
    code, report = cli_json(capsys, "doctor", "--root", venv_root, "--no-default-roots")
    left = [(f["code"], f["subject"]) for f in report["findings"] if f["severity"] != "info"]  # type: ignore[index]
    assert code == 0 and left == [], left
    assert (kernels_dir() / "python-this-project").is_dir() and (kernels_dir() / "python3").is_dir()


def test_a_kernel_json_a_package_installed_is_never_rewritten(fake_home: Path, tmp_path: Path) -> None:
    """Jupyter and kernelkeeper in one environment: ipykernel's wheel put share/jupyter/kernels/python3 there."""
    import shutil

    # A hard-linked copy of the tests' own environment (ipykernel installed from its wheel, RECORD and all):
    # an atomic rewrite would replace the copy's directory entry, never the original file.
    project = tmp_path / "server"
    project.mkdir()
    env = project / ".venv"
    res = subprocess.run(["cp", "-al", sys.prefix, str(env)], capture_output=True, text=True)
    if res.returncode != 0:
        shutil.copytree(sys.prefix, env, symlinks=True)
    shipped = env / "share" / "jupyter" / "kernels" / "python3" / "kernel.json"
    before = shipped.read_bytes()
    run_env = hermetic(
        dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), JUPYTER_PATH=str(env / "share" / "jupyter")),
        tmp_path / "jr",
    )

    def kk(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [str(env / "bin" / "python"), "-m", "kernelkeeper", *args, "--root", str(tmp_path), "--no-default-roots"]
        return subprocess.run(cmd, env=run_env, capture_output=True, text=True, timeout=120)

    report = json.loads(kk("doctor", "--json").stdout)
    about = [f for f in report["findings"] if f["subject"] == "python3"]
    codes = {f["code"] for f in about}
    assert "packaged-kernel" in codes and "kernel-without-activation" not in codes, about
    message = next(f["message"] for f in about if f["code"] == "packaged-kernel")
    assert "installed by ipykernel" in message

    fixed = kk("doctor", "--fix")
    assert not [ln for ln in fixed.stdout.splitlines() if ln.startswith(("updated python3", "removed python3"))]
    assert shipped.read_bytes() == before, "doctor --fix rewrote a file ipykernel installed"
    res = kk("adopt", "python3")
    assert res.returncode == 1 and "belongs to that package" in res.stdout
    assert shipped.read_bytes() == before
    sync = json.loads(kk("sync", "--json", "--dry-run").stdout)
    assert not any(a["kernel"] == "python3" for a in sync["actions"])
    assert any(message in note for note in sync["notes"]), "sync and doctor say the same about it"
