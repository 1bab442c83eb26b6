"""The project walk's signatures: what a walked folder records, and that the walk and a later look agree."""

from __future__ import annotations

import os
from pathlib import Path

import fakes
from kernelkeeper.context import Context
from kernelkeeper.discovery import changed, discover, snapshot
from kernelkeeper.projects import folder_signature, scan_projects


def _bump_mtime(path: Path) -> None:
    """Move a path's mtime a second on, whatever the clock's granularity (no waiting, no timing)."""
    st = os.stat(path, follow_symlinks=False)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000), follow_symlinks=False)


def test_a_rewritten_lock_file_leaves_the_signature_and_a_changed_pyproject_moves_it(fake_home: Path) -> None:
    """Only pyproject.toml, poetry.toml and pyvenv.cfg are read: the other marker files count by being there."""
    proj = fakes.project(
        fake_home / "code" / "api",
        files={"pyproject.toml": "[tool.poetry]\n", "poetry.lock": "# v1\n", "requirements.txt": "", "uv.lock": ""},
    )
    fakes.venv(proj / ".venv")
    before = scan_projects(Context.from_environ()).signatures[str(proj)]
    assert ("poetry.lock", 0) in before and ("requirements.txt", 0) in before

    (proj / "poetry.lock").write_text("# v2, as `poetry lock` leaves it\n")
    _bump_mtime(proj / "poetry.lock")
    _bump_mtime(proj / "requirements.txt")
    assert folder_signature(str(proj)) == before

    _bump_mtime(proj / "pyproject.toml")  # its [tool.*] tables say which tool owns the project
    assert folder_signature(str(proj)) != before
    after = folder_signature(str(proj))
    (proj / "uv.lock").unlink()  # a lock file gone: the project may no longer be uv's
    assert folder_signature(str(proj)) != after


def test_a_lock_file_replaced_by_rename_needs_no_new_scan(fake_home: Path) -> None:
    """``poetry lock`` writes a new file and renames it over the old: the folder's mtime moves, what
    discovery finds does not, so the watched state settles instead of asking for a scan."""
    proj = fakes.project(fake_home / "code" / "api", files={"pyproject.toml": "[tool.poetry]\n", "poetry.lock": "1"})
    fakes.venv(proj / ".venv")
    found = discover(Context.from_environ())
    before = snapshot(found.watched)
    assert str(proj) in before

    (proj / "poetry.lock.tmp").write_text("2")
    os.replace(proj / "poetry.lock.tmp", proj / "poetry.lock")
    _bump_mtime(proj)
    assert changed(before, found.signatures) is None

    (proj / "pyproject.toml").write_text("[tool.pdm]\n")  # now a change of what discovery reports
    _bump_mtime(proj / "pyproject.toml")
    _bump_mtime(proj)
    assert changed(before, found.signatures) == str(proj)


def test_every_walked_folder_is_signed_as_a_later_look_signs_it(fake_home: Path) -> None:
    """The walk signs a folder in one of three passes (plain folder, project, old virtualenv);
    the provider compares that with `folder_signature` later, so they must agree on every kind
    of entry, or a folder nobody touched would look changed."""
    code = fake_home / "code"
    proj = fakes.project(code / "api", files={"pyproject.toml": "", "setup.py": "", "Pipfile": ""})
    fakes.venv(proj / ".venv")
    fakes.conda(proj / "env")
    fakes.conda(proj / ".pixi" / "envs" / "default")
    (proj / "venv").mkdir()  # an env folder's name, no environment in it: walked as a folder
    (proj / "src" / "api").mkdir(parents=True)
    (proj / "node_modules" / "x").mkdir(parents=True)
    (proj / "uv.lock").symlink_to(fake_home / "gone")  # a dangling marker file
    (proj / "requirements.txt").mkdir()  # a marker's name on a folder
    (proj / "pdm.lock").symlink_to(proj / "pdm.lock")  # ELOOP: stat fails on it
    (proj / "linked").symlink_to(proj / "src")
    plain = code / "notes" / "2024"
    plain.mkdir(parents=True)
    (plain / "todo.txt").write_text("")
    (code / "notes" / "loop").symlink_to(code / "notes" / "loop")
    legacy = code / "oldenv" / "lib" / "python2.7"
    legacy.mkdir(parents=True)
    (legacy / "orig-prefix.txt").write_text("/usr")

    scan = scan_projects(Context.from_environ())
    assert {str(proj), str(plain), str(code / "oldenv"), str(proj / "venv")} <= set(scan.signatures)
    for folder, sig in scan.signatures.items():
        assert folder_signature(folder) == sig, folder


def test_a_tree_deeper_than_the_recursion_limit_is_walked_to_the_depth_asked(fake_home: Path) -> None:
    """The walk is a loop, not a call per level: a tree deeper than Python's recursion limit
    (``--depth 1100`` over a tree 1,050 deep) is walked to its bottom."""
    import sys

    deepest = fake_home / "code" / "/".join(["d"] * 400)
    deepest.mkdir(parents=True)
    fakes.venv(fakes.project(deepest) / ".venv")
    ctx = Context.from_environ(depth=410)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(300)  # below the tree's depth (a small tree is quick to make), far above what a loop needs
    try:
        scan = scan_projects(ctx)
    finally:
        sys.setrecursionlimit(limit)
    assert [p.folder for p in scan.projects] == [str(deepest)]
    assert str(deepest) in scan.visited
