"""The command line as a person runs it: output, filters, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import fakes
from kernelkeeper.cli import main

JSON_KEYS = {"prefix", "python", "version", "kinds", "name", "project", "has_ipykernel", "healthy", "problems"}


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    return subprocess.run(
        [sys.executable, "-m", "kernelkeeper", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


@pytest.fixture
def small_home(fake_home: Path) -> Path:
    fakes.venv(fakes.project(fake_home / "projects" / "alpha") / ".venv", ipykernel=True)
    fakes.conda(fake_home / "miniconda3" / "envs" / "beta", version="3.10.13")
    fakes.venv(fakes.project(fake_home / "projects" / "dead") / ".venv", target=fake_home / "nope" / "python3")
    return fake_home


def test_envs_json_has_every_documented_key(small_home: Path) -> None:
    res = run_cli("envs", "--json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert isinstance(data, list)
    by_name = {d["name"]: d for d in data}
    assert {"alpha", "beta", "dead"} <= set(by_name)
    for entry in data:
        assert set(entry) >= JSON_KEYS, entry
        assert Path(entry["prefix"]).is_absolute()
    alpha = by_name["alpha"]
    assert alpha["kinds"] == ["venv"]
    assert alpha["has_ipykernel"] is True
    assert alpha["healthy"] is True and alpha["problems"] == []
    assert alpha["project"] == str(small_home / "projects" / "alpha")
    assert alpha["python"] == str(small_home / "projects" / "alpha" / ".venv" / "bin" / "python")
    assert alpha["version"] == fakes.BASE_VERSION
    beta = by_name["beta"]
    assert beta["kinds"] == ["conda"] and beta["version"] == "3.10.13" and beta["project"] is None
    dead = by_name["dead"]
    assert dead["healthy"] is False and "dangles" in dead["problems"][0]


def test_envs_kind_filter(small_home: Path) -> None:
    res = run_cli("envs", "--json", "--kind", "conda")
    assert res.returncode == 0
    assert [d["name"] for d in json.loads(res.stdout)] == ["beta"]
    bad = run_cli("envs", "--kind", "nonsense")
    assert bad.returncode == 2
    assert "invalid choice" in bad.stderr


def test_envs_table_for_people(small_home: Path) -> None:
    res = run_cli("envs")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["name", "kind", "python", "ipykernel", "project", "path"]
    alpha = next(line for line in lines if line.startswith("alpha"))
    assert alpha.split()[:4] == ["alpha", "venv", fakes.BASE_VERSION, "yes"]
    assert "~/projects/alpha/.venv" in alpha
    assert any("dead" in line and "interpreter link dangles" in line for line in lines)
    assert "environments, 1 broken" in lines[-1]


def test_root_option_and_missing_root(small_home: Path, tmp_path: Path) -> None:
    elsewhere = fakes.venv(fakes.project(tmp_path / "outside" / "proj") / ".venv")
    assert str(elsewhere) not in run_cli("envs", "--json").stdout
    res = run_cli("envs", "--json", "--root", str(tmp_path / "outside"))
    assert str(elsewhere) in [d["prefix"] for d in json.loads(res.stdout)]
    missing = run_cli("envs", "--root", str(tmp_path / "missing"))
    assert missing.returncode == 1
    assert missing.stderr.startswith("kernelkeeper: error: --root")
    assert len(missing.stderr.strip().splitlines()) <= 2


def test_malformed_config_is_a_clear_error(small_home: Path) -> None:
    cfg = small_home / ".config" / "kernelkeeper"
    cfg.mkdir(parents=True)
    (cfg / "config.toml").write_text("[discovery\nroots = 3\n")
    res = run_cli("envs")
    assert res.returncode == 1
    assert "config.toml" in res.stderr and "fix or remove" in res.stderr
    (cfg / "config.toml").write_text("[discovery]\ndepth = -1\n")
    assert "depth must be a whole number" in run_cli("envs").stderr
    (cfg / "config.toml").write_text(f'[discovery]\nroots = ["{small_home / "extra"}"]\ndepth = 1\n')
    extra = fakes.venv(fakes.project(small_home / "extra" / "x") / ".venv")
    assert str(extra) in run_cli("envs", "--json").stdout


def test_python_dash_m_and_console_script_agree(small_home: Path) -> None:
    assert main(["envs", "--json"]) == 0
    script = Path(sys.executable).parent / "kernelkeeper"
    if not script.exists():
        pytest.skip("console script not installed in this environment")
    env = dict(os.environ)
    res = subprocess.run([str(script), "envs", "--json"], env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0
    assert json.loads(res.stdout) == json.loads(run_cli("envs", "--json").stdout)


def test_version_and_help() -> None:
    res = run_cli("--version")
    assert res.returncode == 0 and res.stdout.startswith("kernelkeeper ")
    res = run_cli()  # no command: the list of commands, as git, uv and pipx print it
    assert res.returncode == 0 and "commands:" in res.stdout and "  sync " in res.stdout


def test_jupyter_enable_status_disable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from jupyter_core import paths

    system = Path(paths.SYSTEM_CONFIG_PATH[0])
    assert str(system).startswith(str(tmp_path)), "conftest redirects the system config path"
    assert main(["jupyter", "enable", "--system", "--dry-run"]) == 0
    assert "would set ServerApp.jpserver_extensions.kernelkeeper" in capsys.readouterr().out
    enable_file = system / "jupyter_server_config.d" / "kernelkeeper.json"
    assert not enable_file.exists()
    assert main(["jupyter", "enable", "--system"]) == 0
    assert json.loads(enable_file.read_text()) == {"ServerApp": {"jpserver_extensions": {"kernelkeeper": True}}}
    assert not (system / "jupyter_server_config.json").exists()  # the key that stops other Jupyters: never
    capsys.readouterr()
    assert main(["jupyter", "status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["provider_active"] is True and status["extension"]["effective"]["path"] == str(enable_file)
    assert any(j["outcome"] == "uses-provider" for j in status["jupyters"])
    # A user file choosing another manager wins over the extension, and status says so.
    user = Path(paths.jupyter_config_dir())
    user.mkdir(parents=True, exist_ok=True)
    (user / "jupyter_server_config.json").write_text(
        json.dumps({"ServerApp": {"kernel_spec_manager_class": "jupyter_client.kernelspec.KernelSpecManager"}})
    )
    assert main(["jupyter", "status"]) == 0
    out = capsys.readouterr().out
    assert "another manager" in out and "keeps jupyter_client.kernelspec.KernelSpecManager" in out
    assert main(["jupyter", "disable", "--system"]) == 0
    assert not enable_file.exists()
