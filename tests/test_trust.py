"""The "Python (this project)" launcher runs only what no one but you (or root) could have changed, or what you trusted.

Real parts: a second user (`nobody`) owns what it plants, in a root-owned sticky
world-writable folder made in /tmp (pytest's tmp_path sits in a 0700 folder
`nobody` cannot enter); the launcher's ``plan()`` decides on those real files;
real kernels start through nbclient / jupyter_client with the written "this
project" kernelspec; folders `nobody` may not list are walked as `nobody`
(setpriv) since root can list everything; a real FIFO stands in for
pyproject.toml.

The environments that run in real kernels are real venvs (``python -m venv``)
whose site-packages hold a ``.pth`` line to this checkout's venv site-packages
and a copy of ipykernel's dist-info: ipykernel is importable and installed as
far as the launcher can see, without a network install.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import fakes
from kernelkeeper import launch
from kernelkeeper.cli import main

RUNUSER = shutil.which("runuser") or shutil.which("runuser", path="/usr/sbin:/sbin")  # before tests narrow PATH
SETPRIV = shutil.which("setpriv") or "/usr/bin/setpriv"
pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not RUNUSER, reason="needs root and runuser")
NOBODY = (65534, 65534)
TOOLS_SITE = Path(sysconfig.get_paths()["purelib"])


@pytest.fixture
def shared() -> Iterator[Path]:
    """A root-owned sticky world-writable folder (mode 1777, like /tmp) that `nobody` can enter."""
    folder = Path(tempfile.mkdtemp(prefix="kk-shared-", dir="/tmp"))
    folder.chmod(0o1777)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def as_nobody(*cmd: str | Path, timeout: float = 60) -> str:
    res = subprocess.run(
        [str(RUNUSER), "-u", "nobody", "--", *map(str, cmd)], capture_output=True, text=True, timeout=timeout
    )
    assert res.returncode == 0, res.stderr
    return res.stdout


def chown_nobody(path: Path) -> None:
    for dirpath, dirnames, files in os.walk(path):
        for name in [*dirnames, *files]:
            os.lchown(os.path.join(dirpath, name), *NOBODY)
    os.lchown(path, *NOBODY)


def planted(shared: Path) -> tuple[Path, Path]:
    """`nobody` makes a project with a .venv (with ipykernel) and a notebook folder below it."""
    proj = shared / "proj"
    as_nobody("mkdir", "-p", proj / "notebooks")
    fakes.venv(proj / ".venv", ipykernel=True)
    chown_nobody(proj / ".venv")
    return proj, proj / "notebooks"


def real_venv(prefix: Path) -> Path:
    """A real venv with ipykernel importable (see the module docstring); returns its interpreter."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(prefix)], check=True, timeout=120)
    site = next((prefix / "lib").glob("python*/site-packages"))
    (site / "tools.pth").write_text(f"{TOOLS_SITE}\n")
    dist = next(TOOLS_SITE.glob("ipykernel-*.dist-info"))
    shutil.copytree(dist, site / dist.name)
    return prefix / "bin" / "python"


def kk(*args: str) -> int:
    return main(list(args))


def test_env_planted_by_another_user_is_refused_until_trusted(shared: Path, capsys: Any) -> None:
    proj, nb = planted(shared)
    exe, argv, _env, notice = launch.plan(str(nb), ["-f", "cf.json"])
    assert exe == sys.executable and argv[:2] == [sys.executable, "-I"], "refused: the launcher's Python, isolated"
    assert notice and f"{proj}/.venv is owned by nobody" in notice
    assert f"`kernelkeeper trust {proj}`" in notice
    assert kk("trust", str(proj), "--dry-run") == 0
    assert launch.plan(str(nb), [])[0] == sys.executable, "--dry-run trusted nothing"
    assert kk("trust", str(proj)) == 0
    exe, argv, env, notice = launch.plan(str(nb), ["-f", "cf.json"])
    assert (exe, notice) == (str(proj / ".venv/bin/python"), None)
    assert argv[1:] == ["-m", "ipykernel_launcher", "-f", "cf.json"] and env["VIRTUAL_ENV"] == str(proj / ".venv")
    assert kk("trust", "--remove", str(proj)) == 0
    assert launch.plan(str(nb), [])[0] == sys.executable


def test_root_owned_project_runs_without_trust(tmp_path: Path) -> None:
    proj = fakes.project(tmp_path / "proj")
    fakes.venv(proj / ".venv", ipykernel=True)
    (proj / "notebooks").mkdir()
    exe, _argv, _env, notice = launch.plan(str(proj / "notebooks"), [])
    assert (exe, notice) == (str(proj / ".venv/bin/python"), None)


@pytest.mark.parametrize(
    ("mode", "gid", "refused"),
    [(0o777, 0, "writable by everyone"), (0o775, 65534, "writable by the group nogroup"), (0o775, 0, None)],
)
def test_writable_project_folder(tmp_path: Path, mode: int, gid: int, refused: str | None) -> None:
    """Yours but writable by others: refused. Group-writable by your private group (umask 002): fine."""
    proj = fakes.project(tmp_path / "proj")
    fakes.venv(proj / ".venv", ipykernel=True)
    os.chown(proj, 0, gid)
    proj.chmod(mode)
    exe, _argv, _env, notice = launch.plan(str(proj), [])
    if refused:
        assert exe == sys.executable and notice and f"{proj} is {refused}" in notice, notice
    else:
        assert (exe, notice) == (str(proj / ".venv/bin/python"), None)


@pytest.mark.parametrize("what", ["site-packages", "pyvenv.cfg", "interpreter-folder"])
def test_what_decides_the_code_is_checked(tmp_path: Path, shared: Path, what: str) -> None:
    """A .pth in site-packages, pyvenv.cfg's `home`, the interpreter's folder: each runs code."""
    proj = fakes.project(tmp_path / "proj")
    prefix = fakes.venv(proj / ".venv", ipykernel=True)
    if what == "site-packages":
        target = next(prefix.glob("lib/python*/site-packages"))
        target.chmod(0o777)
    elif what == "pyvenv.cfg":
        target = prefix / "pyvenv.cfg"
        target.chmod(0o666)
    else:
        target = shared / "pythons"  # a folder anyone may write, not sticky: the link target can be swapped
        target.mkdir()
        target.chmod(0o777)
        (target / "python").symlink_to(fakes.BASE_PYTHON)
        for link in ("python", "python3", f"python{fakes.MINOR}"):
            (prefix / "bin" / link).unlink()
        (prefix / "bin" / "python").symlink_to(target / "python")
    exe, _argv, _env, notice = launch.plan(str(proj), [])
    assert exe == sys.executable and notice and f"{target} is writable by everyone" in notice, notice


def test_trust_file_someone_else_could_write_is_ignored(shared: Path, fake_home: Path) -> None:
    proj, nb = planted(shared)
    assert kk("trust", str(proj)) == 0
    trust_file = Path(launch.trust_path())
    assert trust_file.stat().st_mode & 0o777 == 0o600
    trust_file.chmod(0o666)
    notice = launch.plan(str(nb), [])[3]
    assert notice and "the trust file is not used" in notice and "writable by everyone" in notice
    trust_file.chmod(0o600)
    os.chown(trust_file, *NOBODY)
    notice = launch.plan(str(nb), [])[3]
    assert notice and "the trust file is not used" in notice and "owned by nobody" in notice


def test_trusted_folder_made_again_by_someone_else_is_not_trusted(shared: Path) -> None:
    """Trust is for the folder you trusted: deleted and made again by `nobody`, it no longer counts."""
    proj = shared / "demo"
    proj.mkdir()
    assert kk("trust", str(proj)) == 0
    shutil.rmtree(proj)
    as_nobody("mkdir", "-p", proj / "nb")
    fakes.venv(proj / ".venv", ipykernel=True)
    chown_nobody(proj / ".venv")
    exe, _argv, _env, notice = launch.plan(str(proj / "nb"), [])
    assert exe == sys.executable and notice and "no longer counts" in notice, notice


def test_unlistable_folder_in_the_walk_does_not_crash(shared: Path) -> None:
    """As `nobody` (root can list anything): a folder it may enter but not list, on the way up."""
    top = shared / "top"
    (top / "inner").mkdir(parents=True)
    top.chmod(0o711)  # enter, but not list
    (top / "inner").chmod(0o777)
    site = shared / "site"
    site.mkdir()
    shutil.copy(launch.__file__, site / "launch.py")
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); import launch; "
        "print(json.dumps(launch.plan(sys.argv[2], ['-f', 'cf'])[3]))"
    )
    cmd = [SETPRIV, "--reuid=nobody", "--regid=nogroup", "--clear-groups", "/usr/bin/python3", "-I", "-S", "-c"]
    res = subprocess.run([*cmd, code, site, top / "inner"], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    notice = json.loads(res.stdout)
    assert "no environment found" in notice and f"Could not list (permission denied): {top}" in notice


def test_fifo_planted_as_project_file_does_not_block(tmp_path: Path) -> None:
    proj = tmp_path / "proj"
    (proj / "nb").mkdir(parents=True)
    for name in ("pyproject.toml", "Pipfile", "environment.yml"):
        os.mkfifo(proj / name)
    code = "import sys; sys.path.insert(0, sys.argv[1]); import launch; print(launch.plan(sys.argv[2], [])[3])"
    res = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code, str(Path(launch.__file__).parent), str(proj / "nb")],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert res.returncode == 0, res.stderr
    assert f"the project {proj}" in res.stdout


def test_trust_command(tmp_path: Path, shared: Path, capsys: Any) -> None:
    a = tmp_path / "a"
    (a / "b").mkdir(parents=True)
    capsys.readouterr()
    assert kk("trust", "--list", "--json") == 0
    assert json.loads(capsys.readouterr().out) == []
    assert kk("trust", str(a), "--json") == 0
    added = json.loads(capsys.readouterr().out)
    assert (added["action"], added["path"], added["owner_uid"], added["dry_run"]) == ("add", str(a), 0, False)
    assert kk("trust", str(a / "b"), "--json") == 0
    assert json.loads(capsys.readouterr().out)["action"] == "already"
    assert kk("trust", str(a / "missing")) == 1
    assert "no such folder" in capsys.readouterr().err
    assert kk("trust", "--remove", str(a / "b")) == 1
    assert f"trusted through {a}" in capsys.readouterr().err
    other = shared / "theirs"
    as_nobody("mkdir", other)
    assert kk("trust", str(other)) == 0
    assert "belongs to nobody" in capsys.readouterr().out
    assert kk("trust", "--list", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(e["path"], e["state"]) for e in listed] == [(str(a), "ok"), (str(other), "ok")]
    shutil.rmtree(a)
    assert kk("trust", "--list", "--json") == 0
    assert json.loads(capsys.readouterr().out)[0]["state"] == "gone"
    assert kk("trust", "--remove", str(a), "--dry-run") == 0
    assert kk("trust", "--remove", str(a)) == 0
    capsys.readouterr()
    assert kk("trust", "--list", "--json") == 0
    assert [e["path"] for e in json.loads(capsys.readouterr().out)] == [str(other)]
    assert kk("trust") == 2  # no folder given: bad usage
    assert "which folder" in capsys.readouterr().err


def _notebook_run(kernel: str, folder: Path, code: str) -> str:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": kernel, "display_name": "Python (this project)", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(code)]
    NotebookClient(
        nb, timeout=60, startup_timeout=60, kernel_name=kernel, resources={"metadata": {"path": str(folder)}}
    ).execute()
    return "".join(o.get("text", "") for o in nb.cells[0].outputs)


def test_real_kernel_refuses_a_planted_env_then_runs_it_once_trusted(shared: Path, capsys: Any) -> None:
    proj = shared / "proj"
    as_nobody("mkdir", "-p", proj / "notebooks")
    python = real_venv(proj / ".venv")
    chown_nobody(proj / ".venv")
    nb = proj / "notebooks"
    # The attacker also plants a module the fallback kernel would import at start from its folder.
    marker = shared / "pwned"
    (nb / "traitlets.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    os.lchown(nb / "traitlets.py", *NOBODY)
    assert kk("add", "--this-project", "--json") == 0
    kernel = json.loads(capsys.readouterr().out)["kernel"]
    code = "import sys; print(sys.executable)"
    text = _notebook_run(kernel, nb, code)
    assert f"did not run the environment {proj}/.venv" in text and f"kernelkeeper trust {proj}" in text, text
    assert text.strip().splitlines()[-1] == sys.executable
    assert not marker.exists(), "the refused folder's traitlets.py ran"
    assert kk("trust", str(proj)) == 0
    text = _notebook_run(kernel, nb, code)
    assert text.strip() == str(python), text


def test_real_kernel_follows_jpy_session_name(tmp_path: Path, capsys: Any) -> None:
    """The notebook jupyter_server names wins over the working directory (root-owned projects: no trust step)."""
    from jupyter_client.manager import start_new_kernel

    pythons = {}
    for name in ("cwdproj", "nbproj"):
        proj = fakes.project(tmp_path / name)
        (proj / "notebooks").mkdir()
        pythons[name] = real_venv(proj / ".venv")
    assert kk("add", "--this-project", "--json") == 0
    kernel = json.loads(capsys.readouterr().out)["kernel"]
    session = str(tmp_path / "nbproj" / "notebooks" / "analysis.ipynb")
    km, kc = start_new_kernel(
        kernel_name=kernel,
        startup_timeout=60,
        cwd=str(tmp_path / "cwdproj" / "notebooks"),
        env={**os.environ, "JPY_SESSION_NAME": session},
    )
    out: list[str] = []
    try:
        kc.execute_interactive(
            "import sys, os; print(sys.executable); print(os.getcwd())",
            timeout=60,
            output_hook=lambda m: out.append(m["content"].get("text", "")),
        )
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    exe, cwd = "".join(out).split()
    assert exe == str(pythons["nbproj"]), out
    assert cwd == str(tmp_path / "cwdproj" / "notebooks"), "the working directory is left as Jupyter set it"
    # A relative JPY_SESSION_NAME (no `name` in the session request) is relative to the server root: cwd decides.
    assert launch.notebook_folder("/x", "nbproj/notebooks/a.ipynb") == "/x"


def test_real_server_session_runs_the_notebooks_project(tmp_path: Path, capsys: Any) -> None:
    """What jupyter_server really passes, which notebook_folder() relies on: a contract test.

    With the stock contents manager the kernel's cwd is the notebook's folder, so the old launcher picked
    the same project; this fails if the server stops giving an absolute JPY_SESSION_NAME for a named notebook.
    """
    from conftest import hermetic
    from jupyter_server_proc import jupyter_server

    proj = fakes.project(tmp_path / "root" / "nbproj")
    (proj / "notebooks").mkdir()
    python = real_venv(proj / ".venv")
    assert kk("add", "--this-project", "--json") == 0
    kernel = json.loads(capsys.readouterr().out)["kernel"]
    env = hermetic(dict(os.environ), tmp_path / "jupyter-root")
    with jupyter_server(env, tmp_path / "root", tmp_path / "server.log") as server:
        session = server.request(
            "POST",
            "/api/sessions",
            {"path": "nbproj/notebooks/a.ipynb", "name": "a.ipynb", "type": "notebook", "kernel": {"name": kernel}},
        )
        out = server.execute(
            session["kernel"]["id"],
            "import sys, os; print(sys.executable, os.environ['JPY_SESSION_NAME'], os.getcwd())",
        )
    exe, session_name, cwd = out.split()
    assert session_name == str(proj / "notebooks" / "a.ipynb"), "an absolute path when the client names the notebook"
    assert cwd == str(proj / "notebooks")
    assert exe == str(python)
