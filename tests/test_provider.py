"""The dynamic provider: in-process rules over on-disk envs, and a real jupyter_server over real ones."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.kernelspec import NoSuchKernel

import fakes
from kernelkeeper.cli import main
from kernelkeeper.provider import KernelKeeperSpecManager

PROVIDER = "kernelkeeper.provider.KernelKeeperSpecManager"


def manager(**config: Any) -> KernelKeeperSpecManager:
    config.setdefault("cache_seconds", 0.0)
    return KernelKeeperSpecManager(**config)


@pytest.fixture
def envs(fake_home: Path) -> dict[str, Path]:
    projects = fake_home / "projects"
    return {
        "alpha": fakes.venv(fakes.project(projects / "alpha") / ".venv", ipykernel=True),
        "sci": fakes.conda(fake_home / "miniconda3" / "envs" / "sci", ipykernel=True, version="3.10.13"),
        "base": fakes.conda(fake_home / "miniconda3", ipykernel=True, base=True),
        "bare": fakes.venv(fakes.project(projects / "bare") / ".venv"),
    }


def test_lists_environments_as_add_would_write_them(envs: dict[str, Path], capsys) -> None:
    specs = manager().get_all_specs()
    alpha = f"venv-alpha-py{fakes.MINOR}"
    assert {alpha, "conda-sci-py3.10", f"conda-base-py{fakes.MINOR}"} <= set(specs)
    assert not any("bare" in name for name in specs), "no ipykernel, no kernel (by default)"
    # Same name, argv, env and display name as the kernelspec `kernelkeeper add` writes.
    assert main(["add", str(envs["alpha"]), "--dry-run", "--json"]) == 0
    written = json.loads(capsys.readouterr().out)
    assert written["kernel"] == alpha
    dynamic = specs[alpha]["spec"]
    for key in ("argv", "display_name", "env", "language"):
        assert dynamic[key] == written["spec"][key], key


def test_written_kernelspecs_win_and_nothing_shows_twice(envs: dict[str, Path]) -> None:
    assert main(["add", str(envs["alpha"]), "--name", "alpha-written"]) == 0
    hand = Path(os.environ["JUPYTER_DATA_DIR"]) / "kernels" / "by-hand"
    hand.mkdir(parents=True)
    (hand / "kernel.json").write_text(
        json.dumps({"argv": [str(envs["sci"] / "bin" / "python"), "-m", "ipykernel_launcher"], "display_name": "h"})
    )
    specs = manager().get_all_specs()
    assert "alpha-written" in specs and "by-hand" in specs
    assert not any(n.startswith("venv-alpha") for n in specs), "alpha has a written kernel"
    assert "conda-sci-py3.10" not in specs, "sci has a hand-made kernel running its interpreter"


def test_old_tools_names_still_open(envs: dict[str, Path]) -> None:
    m = manager()
    assert m.get_kernel_spec("conda-env-sci-py").argv[0] == str(envs["sci"] / "bin" / "python")
    assert m.get_kernel_spec("conda-root-py").argv[0] == str(envs["base"] / "bin" / "python")
    assert m.get_kernel_spec("venv-alpha-py").argv[0] == str(envs["alpha"] / "bin" / "python")
    assert "conda-env-sci-py" not in m.find_kernel_specs(), "aliases are answered, not listed"
    with pytest.raises(NoSuchKernel):
        m.get_kernel_spec("conda-env-nothere-py")


def test_config_filters_formats_and_allowed(envs: dict[str, Path]) -> None:
    m = manager(
        exclude_kinds=["conda"], show_without_ipykernel=True, name_format="{name}", display_name_format="{name}!"
    )
    specs = m.get_all_specs()
    assert set(specs) >= {"alpha", "bare"} and "sci" not in specs
    assert specs["alpha"]["spec"]["display_name"] == "alpha!"
    allowed = manager(allowed_kernelspecs={"conda-sci-py3.10"})
    assert set(allowed.find_kernel_specs()) == {"conda-sci-py3.10"}
    assert set(allowed.get_all_specs()) == {"conda-sci-py3.10"}
    with pytest.raises(NoSuchKernel):
        allowed.get_kernel_spec(f"venv-alpha-py{fakes.MINOR}")


def test_cache_sees_new_and_deleted_envs_without_rescanning_otherwise(envs: dict[str, Path], fake_home: Path) -> None:
    m = manager()
    m.get_all_specs()
    scans = m._cache.scans
    m.get_all_specs()
    m.get_all_specs()
    assert m._cache.scans == scans, "nothing changed: no rescan"
    new = fakes.venv(fakes.project(fake_home / "projects" / "gamma") / ".venv", ipykernel=True)
    assert f"venv-gamma-py{fakes.MINOR}" in m.get_all_specs()
    shutil.rmtree(new)
    assert f"venv-gamma-py{fakes.MINOR}" not in m.get_all_specs()
    # ipykernel installed into an env that had none: it appears.
    (envs["bare"] / "lib" / f"python{fakes.MINOR}" / "site-packages" / "ipykernel-6.29.5.dist-info").mkdir()
    assert f"venv-bare-py{fakes.MINOR}" in m.get_all_specs()


def test_saving_files_in_a_project_causes_no_rescan(envs: dict[str, Path], fake_home: Path) -> None:
    """Jupyter saves a notebook by writing a temporary file and renaming it: the project folder's mtime
    moves on every save. Only what discovery reads there (subfolders, marker files) makes it scan again."""
    time.sleep(1.1)  # the fixture's folders are older than a scan's clock slack: the first scan settles at once
    m = manager()
    m.get_all_specs()
    scans = m._cache.scans
    project = envs["alpha"].parent
    for folder in (project, fake_home):
        tmp = folder / ".~notes.ipynb"
        tmp.write_text("{}")
        os.replace(tmp, folder / "notes.ipynb")
        assert f"venv-alpha-py{fakes.MINOR}" in m.get_all_specs()
    assert m._cache.scans == scans, "a saved notebook is not a new environment"
    # A marker file discovery reads changes: scan again (here: the project turns into a poetry project).
    time.sleep(0.01)
    (project / "poetry.lock").write_text("# poetry\n")
    specs = m.get_all_specs()
    assert m._cache.scans == scans + 1
    assert any(name.startswith("poetry-alpha-") for name in specs), sorted(specs)


def test_a_change_made_while_a_scan_runs_shows_on_the_next_check(
    envs: dict[str, Path], fake_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import kernelkeeper.provider as provider

    time.sleep(1.1)
    m = manager(cache_seconds=0.3)  # one check per request: get_all_specs asks the cache more than once
    m.get_all_specs()
    real_discover = provider.discover
    made: list[Path] = []

    def discover_then_change(ctx: Any) -> Any:
        found = real_discover(ctx)
        if not made:  # after the scan read everything, before it returns: a new environment lands
            made.append(fakes.venv(fakes.project(fake_home / "projects" / "zeta") / ".venv", ipykernel=True))
        return found

    monkeypatch.setattr(provider, "discover", discover_then_change)
    fakes.project(fake_home / "projects" / "eta")  # the change that starts a rescan
    time.sleep(0.35)
    assert f"venv-zeta-py{fakes.MINOR}" not in m.get_all_specs(), "the scan ran before zeta existed"
    assert made and m._cache.scans == 2
    time.sleep(0.35)
    assert f"venv-zeta-py{fakes.MINOR}" in m.get_all_specs(), "the next check must not take zeta as already seen"


def test_the_first_scan_starts_with_the_server(envs: dict[str, Path]) -> None:
    """A server makes its kernel spec manager at startup: the scan runs then, not on the first request."""
    m = manager()
    deadline = time.monotonic() + 10
    while m._cache.scans < 1:
        assert time.monotonic() < deadline, "no scan before the first request"
        time.sleep(0.02)
    started = time.monotonic()
    assert f"venv-alpha-py{fakes.MINOR}" in m.get_all_specs()
    assert time.monotonic() - started < 1.0


def test_slow_filesystem_never_blocks_a_request(envs: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """A shared NFS home is mimicked by a scan that takes 3 s: requests still answer at once."""
    import kernelkeeper.provider as provider

    m = manager(refresh_timeout=0.1)
    first = m.get_all_specs()
    real_discover = provider.discover

    def slow_discover(ctx: Any) -> Any:
        time.sleep(3)
        return real_discover(ctx)

    monkeypatch.setattr(provider, "discover", slow_discover)
    fakes.venv(fakes.project(envs["alpha"].parent.parent / "delta") / ".venv", ipykernel=True)
    started = time.monotonic()
    assert m.get_all_specs().keys() == first.keys(), "the cached list, served at once"
    assert time.monotonic() - started < 1.0
    deadline = time.monotonic() + 10
    while f"venv-delta-py{fakes.MINOR}" not in m.get_all_specs():
        assert time.monotonic() < deadline, "the refresh behind the cache never landed"
        time.sleep(0.2)


def test_no_request_waits_for_a_rescan_that_cannot_end_in_time(
    envs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Scans that take longer than refresh_timeout: after a change, requests get the cached list at once."""
    import kernelkeeper.provider as provider

    real_discover = provider.discover

    def slow_discover(ctx: Any) -> Any:
        time.sleep(1.5)
        return real_discover(ctx)

    monkeypatch.setattr(provider, "discover", slow_discover)
    m = manager(refresh_timeout=1.0)
    first = m.get_all_specs()  # the first scan is waited for (first_scan_timeout)
    assert m._cache.scan_seconds > 1.0
    fakes.venv(fakes.project(envs["alpha"].parent.parent / "epsilon") / ".venv", ipykernel=True)
    started = time.monotonic()
    assert m.get_all_specs().keys() == first.keys()
    waited = time.monotonic() - started
    assert waited < 0.5, f"waited {waited:.2f} s for a rescan known to take 1.5 s"
    deadline = time.monotonic() + 10
    while f"venv-epsilon-py{fakes.MINOR}" not in m.get_all_specs():
        assert time.monotonic() < deadline, "the rescan never landed"
        time.sleep(0.1)
    # Nothing moved since: later requests keep the list (how many checks that costs is load-dependent:
    # a scan may be followed by one confirming rescan, see discovery.settle).
    assert f"venv-epsilon-py{fakes.MINOR}" in m.get_all_specs()


def test_reads_only(envs: dict[str, Path], fake_home: Path) -> None:
    """Nothing but the discovery state in the user's cache folder (written by the worker, not the query)."""
    cache = fake_home / ".cache"

    def mtimes() -> dict[Path, int]:
        return {p: p.stat().st_mtime_ns for p in fake_home.rglob("*") if cache not in (p, *p.parents)}

    before = mtimes()
    m = manager()
    m.get_all_specs()
    m.get_kernel_spec("conda-env-sci-py")
    assert mtimes() == before


# --- a real jupyter_server over environments made by the real tools ---------------------------


def _runnable(real_home: Any) -> dict[str, Any]:
    for e in real_home.expected:
        if e["has_ipykernel"] and e["healthy"] and e["kinds"] == ["venv"]:
            return dict(e)
    pytest.fail("the real home has no venv with ipykernel")


def _copy_env(source: Path, dest: Path) -> Path:
    shutil.copytree(source, dest, symlinks=True)
    cfg = dest / "pyvenv.cfg"
    cfg.write_text(cfg.read_text().replace(str(source), str(dest)))
    return dest


def _wait_for(predicate: Any, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


@pytest.mark.realtools
def test_real_jupyter_server_lists_starts_and_follows_envs(real_home: Any, tmp_path: Path) -> None:
    from jupyter_server_proc import jupyter_server

    config_dir = tmp_path / "jupyter-config"
    config_dir.mkdir()
    # Enabled the way a person enables it: through the server's config file.
    (config_dir / "jupyter_server_config.json").write_text(
        json.dumps(
            {
                "ServerApp": {"kernel_spec_manager_class": PROVIDER},
                # Every kernel listed: this test follows dynamic kernels (test_listing: the short list).
                "KernelKeeperSpecManager": {"cache_seconds": 0.2, "list_all": True},
            }
        )
    )
    env = dict(
        real_home.env,
        JUPYTER_CONFIG_DIR=str(config_dir),
        JUPYTER_DATA_DIR=str(tmp_path / "jupyter-data"),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "jupyter-runtime"),
        JUPYTER_PATH="",
        JUPYTER_CONFIG_PATH="",
    )
    target = _runnable(real_home)
    name = f"venv-{Path(target['project']).name}-py{'.'.join(target['version'].split('.')[:2])}"
    fresh_project = real_home.home / "projects" / "fresh"
    try:
        with jupyter_server(env, tmp_path, tmp_path / "server.log") as server:
            specs = server.kernelspecs()
            assert name in specs, sorted(specs)
            spec = specs[name]["spec"]
            assert spec["argv"][0] == target["python"]
            assert spec["env"]["VIRTUAL_ENV"] == target["prefix"]
            assert "dsenv" in json.dumps(sorted(specs)), "the conda env (with ipykernel) is listed too"

            kernel = server.request("POST", "/api/kernels", {"name": name})
            out = server.execute(
                kernel["id"],
                "import sys, os, shutil; print(sys.executable, os.environ['VIRTUAL_ENV'], shutil.which('python'))",
            )
            exe, venv, which = out.split()
            assert exe == target["python"] and venv == target["prefix"] and which == target["python"]

            # A new environment appears, a deleted one disappears: no restart.
            fresh_project.mkdir()
            _copy_env(Path(target["prefix"]), fresh_project / ".venv")
            fresh = name.replace(Path(target["project"]).name, "fresh")
            _wait_for(lambda: fresh in server.kernelspecs())
            shutil.rmtree(fresh_project)
            _wait_for(lambda: fresh not in server.kernelspecs())
            assert name in server.kernelspecs()
    finally:
        shutil.rmtree(fresh_project, ignore_errors=True)


@pytest.mark.realtools
def test_server_answers_the_same_models_as_stock_over_written_kernelspecs(real_home: Any, tmp_path: Path) -> None:
    """The provider hands jupyter_server ready REST models; they must be the stock handler's, byte for byte.

    Two real servers under a hub-style base_url: the provider over nothing written, and the
    stock manager over the kernelspecs `kernelkeeper sync` writes for the same machine. Both
    also see a foreign kernel with its own logo and kernel.js.
    """
    from jupyter_server_proc import jupyter_server

    base_url = "/user/alice/"
    env = dict(real_home.env, JUPYTER_PATH="", JUPYTER_CONFIG_PATH="", JUPYTER_RUNTIME_DIR=str(tmp_path / "rt"))
    foreign = tmp_path / "ir"
    foreign.mkdir()
    (foreign / "kernel.json").write_text(json.dumps({"argv": ["/bin/sh", "{connection_file}"], "display_name": "R"}))
    (foreign / "logo-64x64.png").write_bytes(b"png")
    (foreign / "kernel.js").write_text("// js")

    answers = {}
    for who in ("provider", "stock"):
        data, config = tmp_path / who / "data", tmp_path / who / "config"
        config.mkdir(parents=True)
        shutil.copytree(foreign, data / "kernels" / "ir")
        server_env = dict(env, JUPYTER_DATA_DIR=str(data), JUPYTER_CONFIG_DIR=str(config))
        if who == "provider":
            (config / "jupyter_server_config.json").write_text(
                json.dumps(
                    {
                        "ServerApp": {"kernel_spec_manager_class": PROVIDER},
                        "KernelKeeperSpecManager": {"list_all": True},
                    }
                )
            )
        else:
            subprocess.run(
                [sys.executable, "-m", "kernelkeeper", "sync"], env=server_env, cwd=tmp_path, check=True, timeout=120
            )
        with jupyter_server(server_env, tmp_path, tmp_path / f"{who}.log", base_url=base_url) as server:
            answers[who] = server.kernelspecs()
            assert answers[who] == server.kernelspecs(), "a second (cached) answer is the same"

    provider, stock = answers["provider"], answers["stock"]
    assert len(stock) > 3 and sorted(provider) == sorted(stock), "the same kernels, under the same names"
    assert stock["ir"]["resources"] == {
        "kernel.js": f"{base_url}kernelspecs/ir/kernel.js",
        "logo-64x64": f"{base_url}kernelspecs/ir/logo-64x64.png",
    }
    target = _runnable(real_home)
    name = f"venv-{Path(target['project']).name}-py{'.'.join(target['version'].split('.')[:2])}"
    assert "logo-64x64" in stock[name]["resources"], "ipykernel's logos, copied by sync"
    for kernel, model in stock.items():
        mine = dict(provider[kernel])
        # Only a ready model reaches the client with resource_dir (kept for get_all_specs' other
        # callers): the server's handler did not rebuild it.
        assert "resource_dir" in mine and "resource_dir" not in model, kernel
        mine.pop("resource_dir")
        if kernel != "python3":
            assert mine == model, kernel
        else:  # the server's own ipykernel kernel: same everywhere but the argv's interpreter
            assert mine["resources"] == model["resources"] and mine["spec"]["argv"][0] == model["spec"]["argv"][0]


def test_written_kernel_of_a_deleted_env_leaves_the_list(envs: dict[str, Path]) -> None:
    assert main(["add", str(envs["alpha"]), "--name", "alpha-written"]) == 0
    m = manager()
    assert "alpha-written" in m.get_all_specs()
    shutil.rmtree(envs["alpha"])
    assert "alpha-written" not in m.get_all_specs()
    assert "alpha-written" not in m.find_kernel_specs()
    assert m.get_kernel_spec("alpha-written").argv[0] == str(envs["alpha"] / "bin" / "python"), "asked by name"
    assert "alpha-written" in manager(hide_stale=False).get_all_specs()


def test_stock_python3_with_a_bare_name_covers_the_servers_environment(
    fake_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ipykernel's wheel ships share/jupyter/kernels/python3 with argv "python": jupyter_client runs it with the
    server's own sys.executable, so the server's environment has its kernel and gets no second, dynamic one."""
    shipped = Path(sys.prefix) / "share" / "jupyter" / "kernels" / "python3"
    path_dir = tmp_path / "server-prefix" / "share" / "jupyter"
    shutil.copytree(shipped, path_dir / "kernels" / "python3")  # as it sits in the server's sys.prefix
    monkeypatch.setenv("JUPYTER_PATH", str(path_dir))
    assert json.loads((path_dir / "kernels" / "python3" / "kernel.json").read_text())["argv"][0] == "python"

    def servers_env_kernels(**config: Any) -> list[str]:
        specs = manager(env_paths=[sys.prefix], default_roots=False, **config).get_all_specs()
        return [n for n, s in specs.items() if s["spec"]["argv"][0] in ("python", sys.executable)]

    assert servers_env_kernels() == ["python3"], "the server's environment is listed twice"

    shutil.rmtree(path_dir / "kernels" / "python3")
    assert servers_env_kernels() == ["python3"], "jupyter_client's native python3 is the server's kernel too"
    assert main(["add", "--this-project"]) == 0  # runs sys.executable too, but is no environment's kernel
    dynamic = servers_env_kernels(ensure_native_kernel=False)
    assert len(dynamic) == 2 and "python-this-project" in dynamic, "this-project stands for no environment"
