"""What kernelkeeper writes must be right for everyone who reads it.

Other users' Jupyters read system-wide kernels (modes, whatever the umask),
jupyter_client reads kernel.json as templates (``$`` in env, ``{name}`` in
argv), a planted link must not redirect a write, a killed run must leave
nothing the next run does not clean, and an odd folder name must not break
the other environments' kernels.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import fakes
from conftest import hermetic
from kernelkeeper.cli import main
from kernelkeeper.kernelspecs import LOCK_FILE, STAGING, scope_dir
from test_real_kernels import run_in_kernel

STRICT_UMASK = 0o077
RUNUSER = shutil.which("runuser") or shutil.which("runuser", path="/usr/sbin:/sbin")  # before PATH is narrowed
STRACE = shutil.which("strace")


def kernels_dir() -> Path:
    return Path(os.environ["JUPYTER_DATA_DIR"]) / "kernels"


def _sync(*extra: str) -> list[str]:
    return [sys.executable, "-m", "kernelkeeper", "sync", "--json", *extra]


def _subprocess_env(root: Path) -> dict[str, str]:
    return hermetic(dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)), root)


def _with_ipykernel(prefix: Path) -> Path:
    return fakes.venv(fakes.project(prefix.parent) / prefix.name, ipykernel=True)


def _bump_version(prefix: Path, version: str) -> None:
    cfg = prefix / "pyvenv.cfg"
    cfg.write_text(re.sub(r"(?m)^version = .*$", f"version = {version}", cfg.read_text()))


# --- modes: a shared kernel stays readable by every user ---------------------------------------


@pytest.fixture
def open_base() -> Iterator[Path]:
    """A folder outside the 0700 pytest tmp, so that `nobody` can reach what is written in it."""
    base = Path(tempfile.mkdtemp(prefix="kk-writes-"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def _as_nobody(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(RUNUSER), "-u", "nobody", "--", *cmd], capture_output=True, text=True, timeout=30)


def _tree_modes(top: Path) -> dict[str, str]:
    return {str(p.relative_to(top)): oct(stat.S_IMODE(p.lstat().st_mode)) for p in [top, *top.rglob("*")]}


@pytest.mark.skipif(os.geteuid() != 0 or RUNUSER is None, reason="needs root and runuser")
def test_system_kernels_stay_readable_by_everyone_under_umask_077(fake_home: Path, open_base: Path) -> None:
    envs = [_with_ipykernel(fake_home / "projects" / name / ".venv") for name in ("alpha", "beta")]
    env = _subprocess_env(open_base)

    def run(*argv: str) -> dict[str, Any]:
        res = subprocess.run(
            [sys.executable, "-m", "kernelkeeper", *argv, "--scope", "system", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            preexec_fn=lambda: os.umask(STRICT_UMASK),
        )
        assert res.returncode == 0, res.stderr
        out: dict[str, Any] = json.loads(res.stdout)
        return out

    assert {a["action"] for a in run("sync")["actions"]} == {"add"}
    _bump_version(envs[0], "3.11.99")
    assert [a["action"] for a in run("sync")["actions"]] == ["update"]
    assert run("add", str(envs[1]), "--display-name", "Beta")["action"] == "update"

    share = open_base / "system" / "share"
    kernels = share / "jupyter" / "kernels"
    specs = sorted(kernels.glob("*/kernel.json"))
    assert len(specs) == 2
    modes = _tree_modes(share)
    wrong = {
        path: mode
        for path, mode in modes.items()
        if LOCK_FILE not in path and mode != ("0o644" if (share / path).is_file() else "0o755")
    }
    assert not wrong, f"umask 077 leaked into a system-wide kernel: {wrong}"
    # What another user's Jupyter does: list the folder, read each kernel.json.
    listing = _as_nobody("ls", str(kernels))
    assert listing.returncode == 0, listing.stderr
    assert sorted(listing.stdout.split()) == sorted(p.parent.name for p in specs)
    for spec in specs:
        res = _as_nobody("cat", str(spec))
        assert res.returncode == 0, f"nobody cannot read {spec}: {res.stderr}"
        assert json.loads(res.stdout)["metadata"]["kernelkeeper"]["prefix"]


# --- links planted where kernelkeeper writes ------------------------------------------------------


def test_a_symlink_at_the_lock_is_refused_and_not_followed(
    fake_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _with_ipykernel(fake_home / "projects" / "alpha" / ".venv")
    data = kernels_dir().parent
    data.mkdir(parents=True)
    outside = tmp_path / "elsewhere" / "owned-by-root"
    outside.parent.mkdir()
    (data / LOCK_FILE).symlink_to(outside)
    assert main(["sync"]) == 1
    err = capsys.readouterr().err
    assert f"{data / LOCK_FILE} is a symbolic link" in err
    assert not outside.exists(), "the lock was created through the planted link"
    assert not kernels_dir().exists() or not any(kernels_dir().iterdir())


def test_a_fifo_at_the_lock_is_refused_not_waited_on(fake_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = kernels_dir().parent
    data.mkdir(parents=True)
    os.mkfifo(data / LOCK_FILE)
    _with_ipykernel(fake_home / "projects" / "alpha" / ".venv")
    assert main(["sync"]) == 1
    assert "is not a regular file" in capsys.readouterr().err


def test_a_symlink_at_the_staging_folder_is_not_followed(
    fake_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _with_ipykernel(fake_home / "projects" / "alpha" / ".venv")
    data = kernels_dir().parent
    data.mkdir(parents=True)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    before = outside.stat().st_mtime_ns
    time.sleep(0.01)
    (data / STAGING).symlink_to(outside)
    assert main(["sync"]) == 1
    assert f"{data / STAGING} is a link" in capsys.readouterr().out  # the failed action says why
    assert outside.stat().st_mtime_ns == before, "a folder was made (and renamed away) through the link"
    assert list(outside.iterdir()) == []


# --- a killed run: the next one cleans -------------------------------------------------------------


def _leftovers(data: Path) -> list[str]:
    found: list[str] = []
    staging = data / STAGING
    if staging.is_dir():
        found += [f"{STAGING}/{n}" for n in os.listdir(staging)]
    kernels = data / "kernels"
    for kernel in kernels.iterdir() if kernels.is_dir() else []:
        found += [f"{kernel.name}/{n}" for n in os.listdir(kernel) if n.startswith(".kernel.json.")]
    return found


def _killed_at(cmd: list[str], env: dict[str, str], nth: int) -> None:
    """Run a real sync and SIGKILL it on entry to its ``nth`` rename (a ``kill -9`` at a known point).

    strace delivers the signal as the call begins, so the rename does not happen: the kernel being
    built stays in the staging folder, the kernel.json being swapped stays a temporary file.
    """
    argv = [str(STRACE), "-f", "-qq", "-o", os.devnull, "-e", "trace=/^renameat2?$"]
    argv += ["-e", f"inject=/^renameat2?$:signal=KILL:when={nth}", *cmd]
    res = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode != 0, f"the sync was not killed at its rename {nth}: {res.stdout}{res.stderr}"


@pytest.mark.skipif(STRACE is None, reason="needs strace (.ci/setup.sh installs it)")
def test_a_killed_sync_leaves_nothing_the_next_run_does_not_clean(fake_home: Path) -> None:
    n = 30
    prefixes = [_with_ipykernel(fake_home / "projects" / f"p{i:03}" / ".venv") for i in range(n)]
    env = _subprocess_env(fake_home.parent / "jupyter-root")
    data = kernels_dir().parent
    staging = data / STAGING

    # Adds: killed as it moves its 10th kernel from the staging folder into place.
    _killed_at(_sync(), env, 10)
    assert len(list(kernels_dir().iterdir())) == 9, "the nine kernels before the kill are in place"
    left = _leftovers(data)
    assert len(left) == 1 and left[0].startswith(f"{STAGING}/"), left

    res = subprocess.run(_sync(), env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert _leftovers(data) == [], "the run that holds the lock removes what a killed run left"
    assert not staging.exists(), "a finished run leaves no staging folder"
    assert len(list(kernels_dir().iterdir())) == n

    # Updates: every kernel needs a new kernel.json; killed as it swaps in the 10th.
    for prefix in prefixes:
        _bump_version(prefix, "3.11.50")
    _killed_at(_sync(), env, 10)
    left = _leftovers(data)
    assert len(left) == 1 and ".kernel.json." in left[0], left
    swapped = [k for k in kernels_dir().iterdir() if "3.11.50" in (k / "kernel.json").read_text()]
    assert len(swapped) == 9, "the nine kernels before the kill were updated, whole"

    res = subprocess.run(_sync(), env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert _leftovers(data) == []
    assert not staging.exists(), "a finished run leaves no staging folder"
    kernels = sorted(kernels_dir().iterdir())
    assert len(kernels) == n
    for kernel in kernels:
        spec = json.loads((kernel / "kernel.json").read_text())
        assert spec["metadata"]["kernelkeeper"]["prefix"]
        assert "3.11.50" in json.dumps(spec)
    again = subprocess.run(_sync(), env=env, capture_output=True, text=True, timeout=120)
    assert json.loads(again.stdout)["actions"] == []


def test_cleaning_leaves_other_peoples_files(fake_home: Path) -> None:
    """Only kernelkeeper's own temporary names are removed, and never through a link."""
    _with_ipykernel(fake_home / "projects" / "alpha" / ".venv")
    hand = kernels_dir() / "hand-made"
    hand.mkdir(parents=True)
    (hand / "kernel.json").write_text(json.dumps({"argv": ["/usr/bin/python3"], "display_name": "h"}))
    (hand / ".kernel.json.bak").write_text("mine")
    (hand / ".kernel.json.abcd1234").write_text("a run killed mid-update left this")
    assert main(["sync"]) == 0
    assert (hand / ".kernel.json.bak").read_text() == "mine"
    assert not (hand / ".kernel.json.abcd1234").exists()


# --- jupyter_client's templates: `$` in env values, `{name}` in argv -----------------------------


def _real_venv_with_ipykernel(prefix: Path) -> Path:
    """A real `python -m venv`, whose ipykernel comes from the test venv through a .pth file."""
    import ipykernel

    prefix.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(prefix)], check=True, timeout=120)
    (site,) = prefix.glob("lib/python*/site-packages")
    here = Path(ipykernel.__file__).parent.parent
    (site / "test-ipykernel.pth").write_text(f"{here}\n")
    for dist in here.glob("ipykernel-*.dist-info"):
        shutil.copytree(dist, site / dist.name)  # what discovery looks for
    return prefix


@pytest.mark.parametrize("folder", ["$HOME", "{prefix}", "a$$b${PATH}{resource_dir}"])
def test_a_folder_name_is_never_a_template(folder: str, fake_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prefix = _real_venv_with_ipykernel(fake_home / "projects" / folder / ".venv")
    capsys.readouterr()
    assert main(["add", str(prefix), "--json"]) == 0
    name = json.loads(capsys.readouterr().out)["kernel"]
    code = (
        "import json, os, shutil, sys; print(json.dumps([sys.executable, os.environ['VIRTUAL_ENV'], "
        "shutil.which('python'), os.environ.get('PIP_PYTHON')]))"
    )
    exe, venv, which, _ = run_in_kernel(name, code)
    assert venv == str(prefix)
    assert exe == which == str(prefix / "bin" / "python")
    # And kernelkeeper reads its own kernel back as the same environment's: a second add updates nothing new.
    capsys.readouterr()
    assert main(["list", "--json"]) == 0
    (mine,) = [k for k in json.loads(capsys.readouterr().out) if k["name"] == name]
    assert mine["status"] == "ok" and mine["interpreter"] == str(prefix / "bin" / "python")
    assert main(["sync", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["actions"] == []


def test_an_overlay_path_survives_jupyter_clients_argv_templates(fake_home: Path, tmp_path: Path) -> None:
    from jupyter_client.kernelspec import KernelSpec
    from jupyter_client.manager import KernelManager

    from kernelkeeper.environments import Found, merge
    from kernelkeeper.kernel import kernel_json
    from kernelkeeper.kernelspecs import overlay_path
    from kernelkeeper.overlay import Overlay

    prefix = fakes.venv(fake_home / "projects" / "bare" / ".venv")
    overlay = Overlay("cpython-3.11", tmp_path / "{prefix}" / "overlays" / "cpython-3.11", {})
    spec = kernel_json(merge([Found(prefix, "venv")], fake_home), overlay=overlay)
    km = KernelManager()
    km.connection_file = str(tmp_path / "kernel-1.json")
    km._kernel_spec = KernelSpec(resource_dir=str(tmp_path), **{k: spec[k] for k in ("argv", "env", "display_name")})
    km._launch_args = {"cwd": str(tmp_path)}
    cmd = km.format_kernel_cmd()
    assert overlay_path(cmd) == str(overlay.site_packages)
    code = cmd[cmd.index("-c") + 1]
    assert (
        str(overlay.site_packages)
        in subprocess.run(
            [sys.executable, "-c", code.split("; sys.path")[0] + "; print(sys.path)"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )


# --- names ------------------------------------------------------------------------------------------


def test_a_folder_name_too_long_for_a_kernel_name_gets_a_short_one(
    fake_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    long_one = _with_ipykernel(fake_home / "projects" / ("a" * 250) / ".venv")
    _with_ipykernel(fake_home / "projects" / "short" / ".venv")
    capsys.readouterr()
    assert main(["sync", "--json"]) == 0, capsys.readouterr().err
    actions = json.loads(capsys.readouterr().out)["actions"]
    assert [a["error"] for a in actions] == [None, None]
    (long_kernel,) = [a["kernel"] for a in actions if a["env"] == str(long_one)]
    assert len(long_kernel) <= 128 and long_kernel.startswith("venv-aaaa")
    assert sorted(p.name for p in kernels_dir().iterdir()) == sorted(a["kernel"] for a in actions)
    assert main(["sync", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["actions"] == [], "the shortened name is stable"


def test_names_are_checked_before_anything_is_written(fake_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prefix = _with_ipykernel(fake_home / "projects" / "alpha" / ".venv")
    for bad in ("../escape", "two words", "x" * 256):
        assert main(["add", str(prefix), "--name", bad]) == 2, bad
        assert "invalid kernel name" in capsys.readouterr().err
    assert not (kernels_dir().parent / "escape").exists()
    assert not scope_dir("user").exists() or not any(scope_dir("user").iterdir())


def test_this_project_add_meets_odd_files_at_its_name(fake_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A FIFO or a non-object kernel.json where "Python (this project)" goes: refused, never a hang or a traceback."""
    folder = kernels_dir() / "python-this-project"
    folder.mkdir(parents=True)
    os.mkfifo(folder / "kernel.json")
    assert main(["add", "--this-project"]) == 1
    assert "is another kernel" in capsys.readouterr().err
    (folder / "kernel.json").unlink()
    (folder / "kernel.json").write_text("[1, 2]")
    assert main(["add", "--this-project"]) == 1
    assert "is another kernel" in capsys.readouterr().err
