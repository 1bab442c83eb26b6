"""Issue 16: display names that tell kernels apart, the short list, the full catalog, recent kernels."""

from __future__ import annotations

import json
import os
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

import fakes
from conftest import hermetic
from kernelkeeper import listing
from kernelkeeper.cli import main
from kernelkeeper.errors import UserError
from kernelkeeper.kernel import DISPLAY_FORMAT, OLD_DISPLAY_FORMAT, display_name
from kernelkeeper.provider import KernelKeeperSpecManager

MINOR = fakes.MINOR


def kernels_dir() -> Path:
    return Path(os.environ["JUPYTER_DATA_DIR"]) / "kernels"


def config_file(home: Path) -> Path:
    path = home / ".config" / "kernelkeeper" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def runnable_venv(prefix: Path) -> Path:
    """A fake venv whose interpreter really runs ipykernel: its site-packages points at the test run's."""
    fakes.venv(prefix, ipykernel=True)
    site = next(prefix.glob("lib/python*/site-packages"))
    (site / "test-run.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return prefix


@pytest.fixture
def projects(fake_home: Path) -> dict[str, Path]:
    root = fake_home / "projects"
    return {
        "tango-papaya": runnable_venv(fakes.project(root / "tango-papaya") / ".venv"),
        "alpha": runnable_venv(fakes.project(root / "alpha") / ".venv"),
        "sci": fakes.conda(fake_home / "miniconda3" / "envs" / "sci", ipykernel=True, version="3.10.13"),
        # Broken: its interpreter link points nowhere.
        "broken": fakes.venv(fakes.project(root / "broken") / ".venv", target=fake_home / "gone" / "python3"),
    }


# --- display names --------------------------------------------------------------------------


def test_display_name_starts_with_the_project(projects: dict[str, Path], capsys) -> None:
    assert main(["sync"]) == 0
    spec = json.loads((kernels_dir() / f"venv-tango-papaya-py{MINOR}" / "kernel.json").read_text())
    assert spec["display_name"] == f"tango-papaya (venv · {MINOR})"
    conda = json.loads((kernels_dir() / "conda-sci-py3.10" / "kernel.json").read_text())
    assert conda["display_name"] == "sci (conda · 3.10)"
    # What a front end groups and explains the kernel by.
    marker = spec["metadata"]["kernelkeeper"]
    assert marker["project"] == str(projects["tango-papaya"].parent)
    assert marker["prefix"] == str(projects["tango-papaya"])
    assert marker["python"] == str(projects["tango-papaya"] / "bin" / "python")
    assert marker["kind"] == "venv" and marker["python_version"] == fakes.BASE_VERSION
    # The provider names a kernel the same way.
    dynamic = KernelKeeperSpecManager(cache_seconds=0.0, env_paths=[str(projects["alpha"])], default_roots=False)
    assert dynamic.get_kernel_spec(f"venv-alpha-py{MINOR}").display_name == f"alpha (venv · {MINOR})"


def test_without_a_known_minor_no_empty_field() -> None:
    env = fakes_env(minor=None)
    assert display_name(env) == "x (venv)"
    assert display_name(env, OLD_DISPLAY_FORMAT) == "Python (x · venv)"
    assert display_name(fakes_env(minor="3.12")) == "x (venv · 3.12)"


def fakes_env(minor: str | None) -> Any:
    from kernelkeeper.environments import Environment

    return Environment(
        prefix=Path("/e/x"),
        python=Path("/e/x/bin/python"),
        kinds=("venv",),
        name="x",
        version=f"{minor}.1" if minor else None,
    )


def test_old_format_kept_by_setting_and_written_kernels_keep_theirs(
    projects: dict[str, Path], fake_home: Path, capsys
) -> None:
    # A kernel written before the change (the old default display name) is not rewritten by sync.
    assert main(["sync"]) == 0
    path = kernels_dir() / f"venv-alpha-py{MINOR}" / "kernel.json"
    spec = json.loads(path.read_text())
    spec["display_name"] = f"Python {MINOR} (alpha · venv)"
    path.write_text(json.dumps(spec))
    capsys.readouterr()
    assert main(["sync", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["actions"] == []
    assert json.loads(path.read_text())["display_name"] == f"Python {MINOR} (alpha · venv)"

    # The setting gives new kernels the old format, in sync and in add.
    config_file(fake_home).write_text(f'[kernels]\ndisplay_name_format = "{OLD_DISPLAY_FORMAT}"\n')
    newer = runnable_venv(fakes.project(fake_home / "projects" / "newer") / ".venv")
    assert main(["sync"]) == 0
    written = json.loads((kernels_dir() / f"venv-newer-py{MINOR}" / "kernel.json").read_text())
    assert written["display_name"] == f"Python {MINOR} (newer · venv)"
    assert "display_name" not in written["metadata"]["kernelkeeper"], "a format is no choice recorded for good"
    capsys.readouterr()
    assert main(["add", str(newer), "--dry-run", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["spec"]["display_name"] == f"Python {MINOR} (newer · venv)"


def test_a_bad_format_is_one_clear_error(projects: dict[str, Path], fake_home: Path, capsys) -> None:
    config_file(fake_home).write_text('[kernels]\ndisplay_name_format = "{nmae} ({kind})"\n')
    assert main(["sync"]) == 1
    err = capsys.readouterr().err
    assert "display_name_format" in err and "nmae" in err


def test_config_format_checked_directly(tmp_path: Path) -> None:
    from kernelkeeper.config import load_config

    path = tmp_path / "config.toml"
    path.write_text("[kernels]\ndisplay_name_format = 3\n")
    with pytest.raises(UserError):
        load_config(path)
    path.write_text("")
    assert load_config(path).kernels.display_name_format == DISPLAY_FORMAT


# --- the short list (pure) ------------------------------------------------------------------


def _entry(resource_dir: str, marker: dict[str, Any] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"argv": ["python"], "display_name": "x", "language": "python"}
    if marker is not None:
        spec["metadata"] = {"kernelkeeper": marker}
    return {"resource_dir": resource_dir, "spec": spec}


def test_short_list_rules() -> None:
    user = "/home/u/.local/share/jupyter/kernels"
    specs = {
        "dyn-recent": _entry("/envs/a/ipykernel/resources", {"kind": "venv"}),
        "dyn": _entry("/envs/b/ipykernel/resources", {"kind": "venv"}),
        "synced": _entry(f"{user}/synced", {"kind": "uv"}),
        "synced-recent": _entry(f"{user}/synced-recent", {"kind": "uv"}),
        "shared": _entry("/usr/local/share/jupyter/kernels/shared", {"kind": "conda"}),
        "ir": _entry(f"{user}/ir"),
        "python-this-project": _entry(f"{user}/python-this-project", {"kind": "this-project"}),
        "python3": _entry("/srv/venv/share/jupyter/kernels/python3"),
    }
    short = listing.short_list(
        specs, recent=["dyn-recent", "synced-recent", "gone"], dynamic={"dyn-recent", "dyn"}, user_kernels=user
    )
    assert list(short) == ["dyn-recent", "synced-recent", "shared", "ir", "python-this-project", "python3"]


# --- recent kernels ---------------------------------------------------------------------------


def test_recent_is_bounded_persisted_and_tolerates_junk(tmp_path: Path) -> None:
    path = tmp_path / "data" / "recent-kernels.json"
    recent = listing.Recent(path, limit=3)
    assert recent.names() == ()
    for name in ("a", "b", "c", "a", "d", "Not A Name", "../x"):
        recent.record(name)
    assert recent.names() == ("d", "a", "c")
    recent.flush()
    assert json.loads(path.read_text()) == {"kernels": ["d", "a", "c"]}
    assert listing.Recent(path, limit=3).names() == ("d", "a", "c"), "another server of the user reads it"
    # Another server wrote meanwhile: both kept, this one's first.
    other = listing.Recent(path, limit=3)
    other.record("e")
    other.flush()
    assert listing.read_recent(path, 3) == ("e", "d", "a")
    for junk in ("[1, 2]", "{", '{"kernels": "abc"}', '{"kernels": [1, "ok", "BAD NAME"]}'):
        path.write_text(junk)
        assert listing.read_recent(path) in ((), ("ok",)), junk
    path.unlink()
    os.mkfifo(path)  # would block a plain open() for good
    assert listing.read_recent(path) == ()


# --- the kernels the server's notebooks name (notebook_kernels.py) ----------------------------


def _notebook(kernel: str | None, *, cells: int = 1, output: int = 0, metadata: dict[str, Any] | None = None) -> Any:
    import nbformat

    nb = nbformat.v4.new_notebook()
    for i in range(cells):
        cell = nbformat.v4.new_code_cell(f"x = {i}")
        if output:
            cell.outputs = [nbformat.v4.new_output("stream", text="y" * output)]
        nb.cells.append(cell)
    if kernel is not None:
        nb.metadata["kernelspec"] = {"name": kernel, "display_name": kernel, "language": "python"}
    nb.metadata.update(metadata or {})
    return nb


def test_notebook_kernel_from_the_tail_nbformat_writes_and_a_bounded_full_read(tmp_path: Path) -> None:
    import nbformat

    from kernelkeeper import notebook_kernels as nk

    plain = tmp_path / "plain.ipynb"
    nbformat.write(_notebook("venv-a-py3.11", cells=40, output=20_000), plain)  # 800 KB of cells before metadata
    assert plain.stat().st_size > 10 * nk.TAIL
    assert nk.notebook_kernel(plain) == "venv-a-py3.11"
    # Only the tail is read: a head that is not JSON at all changes nothing.
    garbage = tmp_path / "garbage-head.ipynb"
    garbage.write_bytes(b"\xff" * 500_000 + plain.read_bytes()[-nk.TAIL // 2 :])
    assert nk.notebook_kernel(garbage) == "venv-a-py3.11"
    # Metadata larger than the tail (widget state): read whole, up to the limit.
    widgets = {"widgets": {"application/vnd.jupyter.widget-state+json": {"state": {"k": "w" * (2 * nk.TAIL)}}}}
    wide = tmp_path / "widgets.ipynb"
    nbformat.write(_notebook("uv-b-py3.12", metadata=widgets), wide)
    assert nk.notebook_kernel(wide) == "uv-b-py3.12"
    # Not written by nbformat (compact JSON, another key order): read whole.
    compact = tmp_path / "compact.ipynb"
    compact.write_text(json.dumps({"metadata": {"kernelspec": {"name": "conda-c-py3.10"}}, "cells": [], "nbformat": 4}))
    assert nk.notebook_kernel(compact) == "conda-c-py3.10"
    # No kernel, no notebook, hostile: None, never an exception or a wait.
    nbformat.write(_notebook(None), tmp_path / "none.ipynb")
    (tmp_path / "bad-name.ipynb").write_text(json.dumps({"metadata": {"kernelspec": {"name": "../x y"}}}))
    (tmp_path / "deep.ipynb").write_text("[" * 100_000)
    (tmp_path / "huge.ipynb").write_bytes(b" " * (nk.FULL_LIMIT + 1))
    os.mkfifo(tmp_path / "fifo.ipynb")
    (tmp_path / "folder.ipynb").mkdir()
    for name in ("none", "bad-name", "deep", "huge", "fifo", "folder", "missing"):
        assert nk.notebook_kernel(tmp_path / f"{name}.ipynb") is None, name


def test_walk_skips_what_the_server_does_not_open_and_is_bounded(tmp_path: Path) -> None:
    import nbformat

    from kernelkeeper import notebook_kernels as nk

    root = tmp_path / "root"

    def put(rel: str, kernel: str) -> Path:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(_notebook(kernel), path)
        return path

    put("top.ipynb", "k-top")
    put("a/b/c/deep.ipynb", "k-deep")
    put(".hidden/h.ipynb", "k-hidden")
    put("a/.ipynb_checkpoints/top-checkpoint.ipynb", "k-checkpoint")
    put("web/node_modules/pkg/n.ipynb", "k-node")
    put("proj/.venv/share/e.ipynb", "k-env-hidden")
    put("proj/env/share/e.ipynb", "k-env")
    (root / "proj" / "env" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    put("proj/conda/share/c.ipynb", "k-conda")
    (root / "proj" / "conda" / "conda-meta").mkdir()
    put("../outside/o.ipynb", "k-linked")
    (root / "linked").symlink_to(tmp_path / "outside")  # links are not followed
    (root / "link.ipynb").symlink_to(tmp_path / "outside" / "o.ipynb")
    os.mkfifo(root / "fifo.ipynb")

    found = nk.walk(root)
    assert set(found.kernels.values()) == {"k-top", "k-deep"}, found
    assert found.stopped is None
    assert set(nk.walk(root, max_depth=2).kernels.values()) == {"k-top"}, "a/b/c is three levels down"

    for i in range(20):
        put(f"many/n{i:02d}.ipynb", f"k-{i:02d}")
    capped = nk.walk(root, max_notebooks=5)
    assert capped.stopped == "5 notebooks" and len(capped.kernels) == 5
    assert nk.walk(root, max_entries=3).stopped == "3 entries"
    ticks = iter(range(1000))
    timed = nk.walk(root, max_seconds=2.5, clock=lambda: float(next(ticks)))
    assert timed.stopped == "2.5 s" and timed.folders <= 3


def test_notebook_kernels_follow_refreshes_and_stay_inside_the_root(tmp_path: Path) -> None:
    import shutil

    import nbformat

    from kernelkeeper.notebook_kernels import NotebookKernels

    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    nbformat.write(_notebook("k-first"), root / "sub" / "a.ipynb")
    nbformat.write(_notebook("k-outside"), tmp_path / "outside.ipynb")
    source = NotebookKernels(root)
    source.start()
    assert source.names(wait=30) == {"k-first"}
    nbformat.write(_notebook("k-new"), root / "sub" / "b.ipynb")
    assert source.names() == {"k-first"}, "not seen until the server tells"
    for _ in range(3):  # a burst of events for one path
        source.refresh("sub/b.ipynb")
    source.refresh("../outside.ipynb")  # leaves the root: ignored
    source.refresh("/../../outside.ipynb")
    assert source.wait(30)
    assert source.names() == {"k-first", "k-new"}
    shutil.rmtree(root / "sub")
    source.refresh("sub")  # a folder deleted takes its notebooks' kernels with it
    assert source.wait(30) and source.names() == frozenset()
    source.close()


# --- a real jupyter_server --------------------------------------------------------------------


def _server_env(tmp_path: Path, provider_extra: dict[str, Any] | None = None) -> dict[str, str]:
    config_dir = Path(os.environ["JUPYTER_CONFIG_DIR"])
    config_dir.mkdir(parents=True, exist_ok=True)
    # Enabled as `kernelkeeper jupyter enable` enables it: as a jupyter_server extension.
    config: dict[str, Any] = {"ServerApp": {"jpserver_extensions": {"kernelkeeper": True}}}
    if provider_extra:
        config["KernelKeeperSpecManager"] = provider_extra
    (config_dir / "jupyter_server_config.json").write_text(json.dumps(config))
    return hermetic(dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)), tmp_path)


def _wait_for(check: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


def test_real_server_short_list_full_catalog_and_every_kernel_starts(
    projects: dict[str, Path], fake_home: Path, tmp_path: Path
) -> None:
    from jupyter_server_proc import jupyter_server

    tango = f"venv-tango-papaya-py{MINOR}"
    alpha = f"venv-alpha-py{MINOR}"
    with jupyter_server(_server_env(tmp_path), tmp_path, tmp_path / "server.log") as server:
        listed = server.kernelspecs()
        assert "python3" in listed
        assert tango not in listed and alpha not in listed, f"the launcher is short: {sorted(listed)}"

        catalog = server.request("GET", "/kernelkeeper/kernels")
        assert catalog["provider"] is True and catalog["list_all"] is False
        by_name = {k["name"]: k for k in catalog["kernels"] if k["name"]}
        item = by_name[tango]
        assert item["display_name"] == f"tango-papaya (venv · {MINOR})"
        assert item["project"] == str(projects["tango-papaya"].parent)
        assert item["prefix"] == str(projects["tango-papaya"])
        assert item["kind"] == "venv" and item["python_version"] == fakes.BASE_VERSION
        assert item["startable"] is True and item["health"] == "ok" and item["listed"] is None
        assert by_name["python3"]["listed"] == "own"
        broken = [k for k in catalog["kernels"] if k["prefix"] == str(projects["broken"])]
        assert len(broken) == 1 and broken[0]["startable"] is False and broken[0]["name"] is None
        assert broken[0]["health"] != "ok", "the reason is shown"

        # Listing is not answering: a kernel not listed starts by name...
        kernel = server.request("POST", "/api/kernels", {"name": tango}, timeout=60)
        out = server.execute(kernel["id"], "import sys; print(sys.executable)")
        assert out.strip() == str(projects["tango-papaya"] / "bin" / "python")
        # ...and is then in the short list, first among the recent, kept on disk for the user's next server.
        _wait_for(lambda: tango in server.kernelspecs())
        assert alpha not in server.kernelspecs()
        recent_file = fake_home / ".local" / "share" / "kernelkeeper" / "recent-kernels.json"
        _wait_for(lambda: recent_file.exists() and tango in recent_file.read_text())

        # The catalog is authenticated as /api/kernelspecs is.
        request = urllib.request.Request(server.url + "/kernelkeeper/kernels")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code in (401, 403)

    # The next server of the same user starts with it listed.
    with jupyter_server(_server_env(tmp_path), tmp_path, tmp_path / "server2.log") as server:
        assert tango in server.kernelspecs() and alpha not in server.kernelspecs()


def test_real_server_lists_everything_when_asked(projects: dict[str, Path], tmp_path: Path) -> None:
    from jupyter_server_proc import jupyter_server

    env = _server_env(tmp_path, {"list_all": True})
    with jupyter_server(env, tmp_path, tmp_path / "server.log") as server:
        listed = server.kernelspecs()
        assert {f"venv-tango-papaya-py{MINOR}", f"venv-alpha-py{MINOR}", "conda-sci-py3.10"} <= set(listed)
        assert server.request("GET", "/kernelkeeper/kernels")["list_all"] is True


def _save(server: Any, path: str, kernel: str) -> None:
    model = {"type": "notebook", "format": "json", "content": dict(_notebook(kernel))}
    server.request("PUT", f"/api/contents/{path}", json.loads(json.dumps(model)))


def test_real_server_lists_the_kernels_its_notebooks_name(projects: dict[str, Path], tmp_path: Path) -> None:
    """Stock JupyterLab starts a notebook's kernel without asking only when /api/kernelspecs lists it."""
    import nbformat

    from jupyter_server_proc import jupyter_server

    tango, alpha, sci = f"venv-tango-papaya-py{MINOR}", f"venv-alpha-py{MINOR}", "conda-sci-py3.10"
    root = tmp_path / "work"
    (root / "reports" / "2024").mkdir(parents=True)
    nbformat.write(_notebook(alpha), root / "reports" / "2024" / "q1.ipynb")
    nbformat.write(_notebook("no-such-kernel"), root / "ghost.ipynb")
    (root / ".private").mkdir()
    nbformat.write(_notebook(sci), root / ".private" / "hidden.ipynb")
    with jupyter_server(_server_env(tmp_path), root, tmp_path / "server.log") as server:
        listed = server.kernelspecs()
        assert alpha in listed, f"named by reports/2024/q1.ipynb: {sorted(listed)}"
        assert "no-such-kernel" not in listed and sci not in listed and tango not in listed
        catalog = {k["name"]: k for k in server.request("GET", "/kernelkeeper/kernels")["kernels"] if k["name"]}
        assert catalog[alpha]["listed"] == "notebook" and catalog[tango]["listed"] is None
        # A notebook saved through the server: its kernel is listed; renamed away and deleted: no longer.
        _save(server, "new.ipynb", tango)
        _wait_for(lambda: tango in server.kernelspecs())
        server.request("PATCH", "/api/contents/new.ipynb", {"path": "moved.ipynb"})
        assert tango in server.kernelspecs()
        server.request("DELETE", "/api/contents/moved.ipynb")
        _wait_for(lambda: tango not in server.kernelspecs())
        # A folder deleted takes its notebooks' kernels with it.
        server.request("DELETE", "/api/contents/reports")
        _wait_for(lambda: alpha not in server.kernelspecs())

    # The setting turns it off.
    nbformat.write(_notebook(alpha), root / "again.ipynb")
    env = _server_env(tmp_path, {"list_notebook_kernels": False})
    with jupyter_server(env, root, tmp_path / "server2.log") as server:
        assert alpha not in server.kernelspecs()
        _save(server, "new.ipynb", tango)
        time.sleep(1)
        assert tango not in server.kernelspecs()
