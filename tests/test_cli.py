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
from kernelkeeper.commands.table import shorten_middle

JSON_KEYS = {"prefix", "python", "version", "kinds", "name", "project", "has_ipykernel", "healthy", "problems"}


def run_cli(
    *args: str, cwd: Path | None = None, env_extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), **(env_extra or {}))
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
    assert missing.returncode == 2  # a bad option value is bad usage
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


# --- exit codes: one rule ----------------------------------------------------------------

USAGE_MISTAKES = [
    # (arguments, what stderr must say): each is bad usage, exit 2, and nothing is written.
    (["add", "--scope", "bogus"], "--scope bogus: unknown scope"),
    (["sync", "--scope", "bogus"], "--scope bogus: unknown scope"),
    (["add", "--scope", "prefix:"], "unknown scope"),
    (["add", "--name", "Bad Name"], "invalid kernel name 'Bad Name'"),
    (["add", "--name", "x" * 300], "at most 255"),
    (["add", "--env", "FOO"], "--env FOO: expected KEY=VALUE"),
    (["add", "--env", "=1"], "expected KEY=VALUE"),
    (["envs", "--kind", "cond"], "invalid choice: 'cond'"),
    (["list", "--status", "gone"], "invalid choice: 'gone'"),
    (["envs", "--depth", "-1"], "--depth -1: expected a whole number"),
    (["envs", "--columns", "name,colour"], "--columns: no column 'colour'"),
    (["envs", "--root", "/nonexistent-folder-for-kk"], "--root /nonexistent-folder-for-kk: no such folder"),
    (["remove", "Bad Name"], "invalid kernel name"),
    (["adopt"], "name the kernels to adopt"),
    (["trust"], "which folder?"),
    (["add", ".", "--this-project"], "--this-project takes no TARGET"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["envs", "--bogus"], "unrecognized arguments: --bogus"),
]


@pytest.mark.parametrize(("args", "said"), USAGE_MISTAKES, ids=[" ".join(a)[:40] for a, _ in USAGE_MISTAKES])
def test_bad_usage_exits_2(small_home: Path, args: list[str], said: str) -> None:
    kernels = small_home / ".local" / "share" / "jupyter" / "kernels"
    res = run_cli(*args, cwd=small_home / "projects" / "alpha")
    assert res.returncode == 2, (res.returncode, res.stderr)
    assert said in res.stderr
    assert "Traceback" not in res.stderr
    assert not kernels.exists() or not any(kernels.iterdir()), "bad usage wrote a kernel"


def test_problems_exit_1_and_success_0(small_home: Path) -> None:
    assert run_cli("add", "no-such-env").returncode == 1  # a problem the message explains
    assert run_cli("remove", "no-such-kernel").returncode == 1
    assert run_cli("envs").returncode == 0


# --- a real terminal of 100 columns, and piped -------------------------------------------


def run_in_pty(*args: str, columns: int = 100, answer: bytes = b"", cwd: Path | None = None) -> tuple[int, str]:
    """Run the CLI with stdin, stdout and stderr on a pseudo-terminal of ``columns`` columns."""
    import fcntl
    import pty
    import select
    import struct
    import termios
    import time

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), COLUMNS=str(columns), TERM="xterm")
    proc = subprocess.Popen(
        [sys.executable, "-m", "kernelkeeper", *args],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=env,
        cwd=cwd,
        close_fds=True,
    )
    os.close(follower)
    out = b""
    deadline = time.monotonic() + 60
    sent = False
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
            if answer and not sent and b"[y/N]" in out:
                os.write(leader, answer)
                sent = True
        elif proc.poll() is not None:
            break
    code = proc.wait(timeout=30)
    os.close(leader)
    return code, out.decode("utf-8", "replace").replace("\r\n", "\n")


@pytest.fixture
def long_paths_home(fake_home: Path) -> Path:
    """Environments whose paths are far wider than a 100-column terminal."""
    deep = fake_home / "projects" / "clients" / "acme-corporation" / "data-platform-ingestion-service"
    fakes.venv(fakes.project(deep) / ".venv", ipykernel=True)
    fakes.venv(fakes.project(fake_home / "projects" / "alpha") / ".venv", ipykernel=True)
    cache = fake_home / ".cache" / "pypoetry" / "virtualenvs"
    fakes.venv(cache / "reporting-dashboards-Hq3kx0Qb-py3.11", ipykernel=True)
    return fake_home


def test_tables_fit_a_100_column_terminal(long_paths_home: Path) -> None:
    assert run_cli("sync").returncode == 0
    for command in ("envs", "list"):
        code, out = run_in_pty(command)
        assert code == 0, out
        rows = out.splitlines()
        assert all(len(line) <= 100 for line in rows), [line for line in rows if len(line) > 100]
        assert all(line == line.rstrip() for line in rows)
        header = rows[0].split()
        assert header[0] == "name" and header[-1] == "path"
        # One row per kernel or environment: no path folded onto a line of its own.
        assert not any(line.startswith(" ") for line in rows), out
        assert "~/" in out and str(long_paths_home) not in out  # home as ~
        assert "…" in out  # the long paths were shortened, in the middle
    code, out = run_in_pty("envs", "--columns", "path,kind")
    assert out.splitlines()[0].split() == ["path", "kind"]
    assert "~/projects/clients/acme-corporation/data-platform-ingestion-service/.venv" in out


def test_piped_output_is_whole_and_plain(long_paths_home: Path) -> None:
    assert run_cli("sync").returncode == 0
    for command in ("envs", "list"):
        res = run_cli(command, env_extra={"COLUMNS": "100"})
        assert res.returncode == 0, res.stderr
        rows = res.stdout.splitlines()
        assert all(line == line.rstrip() for line in rows), "trailing spaces"
        assert "\t" not in res.stdout and "\x1b" not in res.stdout
        assert "…" not in res.stdout  # nothing shortened: grep finds the whole path
        assert "data-platform-ingestion-service/.venv" in res.stdout
        width = len(rows[0].split())
        body = [line for line in rows[1:] if line.startswith(("venv", "poetry", "data", "alpha", "reporting"))]
        assert body and all(len(line.split()) >= width for line in body), "an empty cell must not shift awk's fields"


def test_declining_at_the_prompt_removes_nothing_and_exits_0(fake_home: Path) -> None:
    gone = fakes.venv(fake_home / "projects" / "old" / ".venv", ipykernel=True)
    assert run_cli("add", str(gone)).returncode == 0
    import shutil

    shutil.rmtree(gone)
    code, out = run_in_pty("prune", answer=b"n\n")
    assert code == 0, out
    assert "nothing removed" in out
    assert "venv-old" in run_cli("list", "--status", "stale").stdout
    assert run_cli("list", "--status", "invalid").stdout.startswith("no invalid kernels")


def test_list_with_nothing_to_show_says_so(fake_home: Path) -> None:
    res = run_cli("list", "--status", "stale")
    assert res.returncode == 0
    assert res.stdout == "no stale kernels\n"


@pytest.mark.parametrize(
    ("path", "width", "expected"),
    [
        ("~/projects/api/.venv", 40, "~/projects/api/.venv"),
        ("~/.cache/pypoetry/virtualenvs/api-Hq3kx0Qb-py3.11", 30, "~/.cache/…/api-Hq3kx0Qb-py3.11"),
        ("~/.cache/pypoetry/virtualenvs/api-Hq3kx0Qb-py3.11", 25, "~/…/api-Hq3kx0Qb-py3.11"),
        ("~/.cache/pypoetry/virtualenvs/api-Hq3kx0Qb-py3.11", 40, "~/…/virtualenvs/api-Hq3kx0Qb-py3.11"),
        ("/a/b/averyveryverylongname", 12, "/a/b/a…gname"),
    ],
)
def test_paths_are_shortened_in_the_middle(path: str, width: int, expected: str) -> None:
    assert shorten_middle(path, width) == expected
    assert len(shorten_middle(path, width)) <= width


def test_add_without_target_says_which_environment_above_it_chose(
    fake_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fakes.venv(fake_home / "work" / "venv", ipykernel=True)
    (fake_home / "work" / "empty").mkdir()
    monkeypatch.chdir(fake_home / "work" / "empty")
    for dry in (["--dry-run"], []):
        assert main(["add", *dry]) == 0
        first = capsys.readouterr().out.splitlines()[0]
        assert first == "found ../venv, the nearest environment above this folder"
