"""Turning the provider on and off in Jupyter's config files, and which file wins.

conftest's ``fake_home`` points the user config folder at HOME/.jupyter,
JUPYTER_CONFIG_PATH at tmp/jupyter-config-path, and jupyter_core's sys-prefix
and system config folders at tmp/env/etc/jupyter and tmp/system/etc/jupyter.
The precedence test runs a real ``jupyter_server --show-config`` against the
same folders and checks that ``status()`` agrees with it.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kernelkeeper import jupyter_config as jc
from kernelkeeper.errors import UserError
from kernelkeeper.jupyter_config import KEY, PROVIDER, Change, State

OTHER = "jupyter_client.kernelspec.KernelSpecManager"
SERVER_CONFIG = "jupyter_server_config.json"


def folder(tmp_path: Path, scope: str) -> Path:
    return {
        "user": tmp_path / "home" / ".jupyter",
        "sys-prefix": tmp_path / "env" / "etc" / "jupyter",
        "system": tmp_path / "system" / "etc" / "jupyter",
        "path": tmp_path / "jupyter-config-path",
    }[scope]


def write(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path


def read(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def sets(value: str, section: str = "ServerApp") -> dict[str, Any]:
    return {section: {KEY: value}}


# --- enable --------------------------------------------------------------------


@pytest.mark.parametrize("scope", ["user", "sys-prefix", "system"])
def test_enable_writes_the_scope_server_config(tmp_path: Path, scope: str) -> None:
    result = jc.enable(scope, notebook6=False)

    target = folder(tmp_path, scope) / SERVER_CONFIG
    assert result.config_dir == folder(tmp_path, scope)
    assert [(c.path, c.section, c.change, c.file_created) for c in result.changes] == [
        (target, "ServerApp", Change.SET, True)
    ]
    assert result.changed and not result.warnings
    assert read(target) == {"ServerApp": {KEY: PROVIDER}}
    assert stat.S_IMODE(target.stat().st_mode) == 0o644  # a system-wide file must be readable by every user
    assert not list(target.parent.glob(".*.tmp"))
    server = result.status.server
    assert server.state is State.ENABLED and server.effective is not None
    assert server.effective.path == target and server.effective.scope == scope
    assert jc.status().to_json() == result.status.to_json()
    # jupyter_server_config.d/ drop-ins are ignored for this setting: never written there
    assert not (target.parent / "jupyter_server_config.d").exists()


def test_enable_merges_into_existing_settings(fake_home: Path) -> None:
    original: dict[str, Any] = {
        "ServerApp": {"ip": "0.0.0.0", "open_browser": False, KEY: OTHER, "port": 9999},
        "MappingKernelManager": {"cull_idle_timeout": 600},
        "LabApp": {"collaborative": True, "note": "é"},
    }
    target = write(fake_home / ".jupyter" / SERVER_CONFIG, original)
    os.chmod(target, 0o600)

    result = jc.enable("user", notebook6=False)

    (change,) = result.changes
    assert change.change is Change.REPLACED and change.before == OTHER
    data = read(target)
    assert data == {**original, "ServerApp": {**original["ServerApp"], KEY: PROVIDER}}
    assert list(data) == ["ServerApp", "MappingKernelManager", "LabApp"]
    assert list(data["ServerApp"]) == ["ip", "open_browser", KEY, "port"]  # replaced in place
    text = target.read_text(encoding="utf-8")
    assert text == json.dumps(data, indent=2) + "\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600  # permissions kept


def test_enable_adds_key_after_existing_ones(fake_home: Path) -> None:
    target = write(fake_home / ".jupyter" / SERVER_CONFIG, {"ServerApp": {"ip": "::"}, "Z": {}})
    assert jc.enable("user", notebook6=False).changes[0].change is Change.SET
    assert list(read(target)["ServerApp"]) == ["ip", KEY]
    assert list(read(target)) == ["ServerApp", "Z"]


@pytest.mark.parametrize(
    ("text", "disable_fails"),
    [
        ('{"ServerApp": {"ip": "0.0.0.0",}}\n', True),
        ('["not", "an", "object"]\n', True),
        (b"\xff\xfe{}".decode("latin-1"), True),
        ('{"ServerApp": "oops"}\n', False),  # valid JSON; our key is simply not there
    ],
)
def test_malformed_file_is_a_user_error_and_left_untouched(fake_home: Path, text: str, disable_fails: bool) -> None:
    target = fake_home / ".jupyter" / SERVER_CONFIG
    target.parent.mkdir(parents=True)
    target.write_bytes(text.encode("latin-1"))
    before = target.read_bytes()

    with pytest.raises(UserError) as err:
        jc.enable("user", notebook6=False)
    assert str(target) in str(err.value) and err.value.hint
    if disable_fails:
        with pytest.raises(UserError, match=re.escape(str(target))):
            jc.disable("user")
    else:
        assert [c.change for c in jc.disable("user").changes] == [Change.NOT_SET]
    assert target.read_bytes() == before
    assert sorted(p.name for p in target.parent.iterdir()) == [SERVER_CONFIG]


def test_enable_into_an_empty_file(fake_home: Path) -> None:
    target = write(fake_home / ".jupyter" / SERVER_CONFIG, "")
    assert jc.enable("user", notebook6=False).changes[0].change is Change.SET
    assert read(target) == sets(PROVIDER)


def test_enable_writes_through_a_symlinked_config(fake_home: Path, tmp_path: Path) -> None:
    real = write(tmp_path / "dotfiles" / SERVER_CONFIG, {"ServerApp": {"ip": "::"}})
    link = fake_home / ".jupyter" / SERVER_CONFIG
    link.parent.mkdir()
    link.symlink_to(real)
    jc.enable("user", notebook6=False)
    assert link.is_symlink() and read(real) == {"ServerApp": {"ip": "::", KEY: PROVIDER}}


def test_enable_is_idempotent(fake_home: Path) -> None:
    target = write(fake_home / ".jupyter" / SERVER_CONFIG, {"ServerApp": {"ip": "::"}})
    jc.enable("user", notebook6=False)
    before = target.read_bytes()
    os.utime(target, (1, 1))

    again = jc.enable("user", notebook6=False)

    assert not again.changed
    (change,) = again.changes
    assert change.change is Change.ALREADY and change.message.startswith("already enabled")
    assert target.read_bytes() == before and target.stat().st_mtime == 1


def test_enable_notebook6_also_sets_notebookapp(fake_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jc, "classic_notebook_installed", lambda: True)
    result = jc.enable("user")  # notebook6=None: detected
    nb = fake_home / ".jupyter" / "jupyter_notebook_config.json"
    assert [c.change for c in result.changes] == [Change.SET, Change.SET]
    assert read(nb) == sets(PROVIDER, "NotebookApp")
    assert result.status.notebook6.enabled and result.status.server.enabled

    monkeypatch.setattr(jc, "classic_notebook_installed", lambda: False)
    assert [c.path.name for c in jc.enable("user").changes] == [SERVER_CONFIG]

    off = jc.disable("user")
    assert {(c.path.name, c.change) for c in off.changes} == {
        (SERVER_CONFIG, Change.REMOVED),
        ("jupyter_notebook_config.json", Change.REMOVED),
    }
    assert not nb.exists() and not off.status.notebook6.settings


def test_unknown_scope(fake_home: Path) -> None:
    with pytest.raises(UserError, match="unknown scope"):
        jc.enable("prefix:/opt")
    with pytest.raises(UserError, match="unknown scope"):
        jc.disable("global")


def test_unwritable_scope_is_a_user_error(tmp_path: Path) -> None:
    system = folder(tmp_path, "system")
    system.parent.mkdir(parents=True)
    system.write_text("")  # a file where the folder should be: fails for root too, unlike a chmod
    with pytest.raises(UserError, match="cannot write") as err:
        jc.enable("system", notebook6=False)
    assert err.value.hint and "--user" in err.value.hint


# --- disable -------------------------------------------------------------------


def test_disable_removes_a_file_holding_only_our_setting(fake_home: Path) -> None:
    jc.enable("user", notebook6=False)
    target = fake_home / ".jupyter" / SERVER_CONFIG

    result = jc.disable("user")

    (change,) = result.changes
    assert change.change is Change.REMOVED and change.file_removed and change.before == PROVIDER
    assert not target.exists() and result.status.server.state is State.DEFAULT
    again = jc.disable("user")
    assert not again.changed and [c.change for c in again.changes] == [Change.NOT_SET]


def test_disable_keeps_other_settings(fake_home: Path) -> None:
    target = write(
        fake_home / ".jupyter" / SERVER_CONFIG,
        {"LabApp": {"x": 1}, "ServerApp": {KEY: PROVIDER}, "MappingKernelManager": {"cull_idle_timeout": 5}},
    )
    result = jc.disable("user")
    assert result.changes[0].change is Change.REMOVED and not result.changes[0].file_removed
    assert read(target) == {"LabApp": {"x": 1}, "MappingKernelManager": {"cull_idle_timeout": 5}}
    assert list(read(target)) == ["LabApp", "MappingKernelManager"]

    write(target, {"ServerApp": {"ip": "::", KEY: PROVIDER, "port": 1}})
    jc.disable("user")
    assert read(target) == {"ServerApp": {"ip": "::", "port": 1}}


def test_disable_leaves_another_class_alone(fake_home: Path) -> None:
    target = write(fake_home / ".jupyter" / SERVER_CONFIG, sets("nb_conda_kernels.CondaKernelSpecManager"))
    before = target.read_bytes()

    result = jc.disable("user")

    (change,) = result.changes
    assert change.change is Change.FOREIGN and change.before == "nb_conda_kernels.CondaKernelSpecManager"
    assert "left" in change.message and "CondaKernelSpecManager" in change.message
    assert not result.changed and target.read_bytes() == before


def test_disable_also_cleans_our_key_from_jupyter_config_json(fake_home: Path) -> None:
    base = write(fake_home / ".jupyter" / "jupyter_config.json", {**sets(PROVIDER), "Application": {"log_level": 10}})
    result = jc.disable("user")
    assert [(c.path.name, c.change) for c in result.changes] == [
        (SERVER_CONFIG, Change.NOT_SET),
        ("jupyter_config.json", Change.REMOVED),
    ]
    assert read(base) == {"Application": {"log_level": 10}}


def test_disable_warns_when_still_enabled_elsewhere(tmp_path: Path) -> None:
    jc.enable("system", notebook6=False)
    jc.enable("user", notebook6=False)
    result = jc.disable("user")
    assert result.changed and result.status.server.enabled
    assert any("still uses kernelkeeper" in w and str(folder(tmp_path, "system")) in w for w in result.warnings)


def test_disable_is_not_blocked_by_a_malformed_jupyter_config_json(fake_home: Path) -> None:
    jc.enable("user", notebook6=False)
    bad = write(fake_home / ".jupyter" / "jupyter_config.json", "{oops")
    result = jc.disable("user")
    assert result.changes[0].change is Change.REMOVED
    assert bad.read_text() == "{oops" and any(str(bad) in w for w in result.warnings)


# --- dry run -------------------------------------------------------------------


def test_dry_run_writes_nothing(fake_home: Path) -> None:
    target = fake_home / ".jupyter" / SERVER_CONFIG

    preview = jc.enable("user", notebook6=True, dry_run=True)

    assert preview.dry_run and preview.changed
    assert [c.change for c in preview.changes] == [Change.SET, Change.SET]
    assert preview.changes[0].content is not None and json.loads(preview.changes[0].content) == sets(PROVIDER)
    assert preview.status.server.enabled  # as it would be
    assert not (fake_home / ".jupyter").exists()
    assert jc.status().server.state is State.DEFAULT

    write(target, {"ServerApp": {"ip": "::", KEY: PROVIDER}})
    before = target.read_bytes()
    preview = jc.disable("user", dry_run=True)
    assert preview.changes[0].change is Change.REMOVED and preview.status.server.state is State.DEFAULT
    assert target.read_bytes() == before and jc.status().server.enabled


# --- status --------------------------------------------------------------------


@pytest.mark.parametrize("prefer_env", ["0", "1"])
def test_status_default_when_nothing_sets_it(
    fake_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefer_env: str
) -> None:
    import site

    monkeypatch.setattr(site, "ENABLE_USER_SITE", True)
    monkeypatch.setenv("JUPYTER_PREFER_ENV_PATH", prefer_env)
    write(fake_home / ".jupyter" / SERVER_CONFIG, {"ServerApp": {"ip": "::"}})
    st = jc.status()
    assert st.server.state is State.DEFAULT and st.server.effective is None and not st.problems
    user = [(folder(tmp_path, "user"), "user"), (fake_home / ".local" / "etc" / "jupyter", "user-site")]
    env = [(folder(tmp_path, "sys-prefix"), "sys-prefix")]
    assert [(d.path, d.scope) for d in st.config_dirs] == [
        (folder(tmp_path, "path"), "JUPYTER_CONFIG_PATH"),
        *(env + user if prefer_env == "1" else user + env),
        (folder(tmp_path, "system"), "system"),
    ]
    json.dumps(st.to_json())


@pytest.mark.parametrize(("prefer_env", "winner", "loser"), [("0", "user", "sys-prefix"), ("1", "sys-prefix", "user")])
def test_status_user_vs_sys_prefix_follows_jupyter_prefer_env_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefer_env: str, winner: str, loser: str
) -> None:
    # Unset, jupyter_core prefers sys-prefix when Python runs from a virtualenv the user owns.
    monkeypatch.setenv("JUPYTER_PREFER_ENV_PATH", prefer_env)
    jc.enable("sys-prefix", notebook6=False)
    jc.enable("user", notebook6=False)
    st = jc.status().server
    assert st.enabled and [s.scope for s in st.settings] == [loser, winner]

    other = write(folder(tmp_path, winner) / SERVER_CONFIG, sets(OTHER))
    st = jc.status().server
    assert st.state is State.OTHER and st.effective is not None and st.effective.path == other
    assert [s.scope for s in st.overridden] == [loser]


def test_status_user_override_beats_system_enable(tmp_path: Path) -> None:
    jc.enable("system", notebook6=False)
    user = write(folder(tmp_path, "user") / SERVER_CONFIG, sets(OTHER))

    st = jc.status().server

    assert st.state is State.OTHER and not st.enabled
    assert st.effective is not None and st.effective.path == user and st.effective.value == OTHER
    assert [(s.scope, s.is_kernelkeeper) for s in st.overridden] == [("system", True)]
    assert [s.scope for s in st.settings] == ["system", "user"]  # load order: later wins
    # enabling again at system says it is pointless while the user file wins
    again = jc.enable("system", notebook6=False)
    assert not again.changed and any(str(user) in w and OTHER in w for w in again.warnings)


def test_status_app_config_beats_jupyter_config_of_a_higher_folder(tmp_path: Path) -> None:
    # jupyter_config.* is loaded from every folder before any jupyter_server_config.*
    write(folder(tmp_path, "user") / "jupyter_config.json", sets(PROVIDER))
    system = write(folder(tmp_path, "system") / SERVER_CONFIG, sets(OTHER))
    st = jc.status().server
    assert st.effective is not None and st.effective.path == system and st.state is State.OTHER
    assert [s.path.name for s in st.overridden] == ["jupyter_config.json"]


def test_status_python_config_file(tmp_path: Path) -> None:
    user = folder(tmp_path, "user")
    py = write(
        user / "jupyter_server_config.py",
        "c = get_config()  # noqa\n# c.ServerApp.kernel_spec_manager_class = 'commented.Out'\n"
        "c.ServerApp.ip = '::'\n"
        "    c.ServerApp.kernel_spec_manager_class = pick()\n"
        "c.NotebookApp['kernel_spec_manager_class'] = 'x.Y'\n",
    )
    st = jc.status()
    (setting,) = st.server.settings
    assert setting.path == py and setting.line == 4 and setting.value is None
    assert setting.note == "set in a Python config file, value not evaluated"
    assert st.server.state is State.UNKNOWN and setting.is_kernelkeeper is None
    assert st.notebook6.settings == ()  # jupyter_server_config.py is not Notebook 6's file

    # in one folder the .json loads after the .py, so it wins
    js = write(user / SERVER_CONFIG, sets(PROVIDER))
    st = jc.status()
    assert [s.path for s in st.server.settings] == [py, js] and st.server.enabled


def test_status_reports_malformed_files_as_problems(fake_home: Path) -> None:
    bad = write(fake_home / ".jupyter" / SERVER_CONFIG, "{")
    jc.enable("system", notebook6=False)
    st = jc.status()
    assert st.server.enabled and any(str(bad) in p for p in st.problems)


def test_status_notebook6_reads_its_own_files(tmp_path: Path) -> None:
    write(folder(tmp_path, "user") / "jupyter_notebook_config.json", sets(PROVIDER, "NotebookApp"))
    write(folder(tmp_path, "sys-prefix") / "jupyter_config.json", {**sets(OTHER), **sets(OTHER, "NotebookApp")})
    st = jc.status()
    assert st.notebook6.enabled and st.server.state is State.OTHER


# --- agreement with a real jupyter_server --------------------------------------

STANDINS = """
from jupyter_client.kernelspec import KernelSpecManager
class Low(KernelSpecManager): pass
class Mid(KernelSpecManager): pass
class High(KernelSpecManager): pass
class FromPy(KernelSpecManager): pass
"""

# Each scenario: JUPYTER_PREFER_ENV_PATH (None: unset) and {(folder, file): class}. Folders as the
# server sees them, highest priority first: path-a, path-b (JUPYTER_CONFIG_PATH), then user and env
# (JUPYTER_CONFIG_DIR and the server's own venv's etc/jupyter; env first when preferred). The real
# system folders come last and set nothing here.
SCENARIOS: dict[str, tuple[str | None, dict[tuple[str, str], str]]] = {
    "app-config-beats-higher-jupyter_config": (
        "0",
        {
            ("user", "jupyter_config.json"): PROVIDER,
            ("env", SERVER_CONFIG): "standins.Mid",
            ("path-a", "jupyter_config.json"): "standins.High",
        },
    ),
    "user-beats-env": ("0", {("env", SERVER_CONFIG): "standins.Low", ("user", SERVER_CONFIG): PROVIDER}),
    "env-beats-user-when-preferred": ("1", {("env", SERVER_CONFIG): "standins.Low", ("user", SERVER_CONFIG): PROVIDER}),
    "env-beats-user-in-a-venv-by-default": (
        None,
        {("env", SERVER_CONFIG): "standins.Low", ("user", SERVER_CONFIG): PROVIDER},
    ),
    "higher-folder-wins": (
        "0",
        {
            ("user", SERVER_CONFIG): "standins.Low",
            ("path-b", "jupyter_config.json"): "standins.Mid",
            ("path-a", SERVER_CONFIG): PROVIDER,
        },
    ),
    "json-beats-py-in-a-folder": (
        "0",
        {
            ("user", SERVER_CONFIG): PROVIDER,
            ("path-b", "jupyter_server_config.py"): "standins.FromPy",
            ("path-b", SERVER_CONFIG): "standins.Mid",
            ("path-a", "jupyter_server_config.py"): "standins.FromPy",
            ("path-a", "jupyter_config.json"): "standins.High",
        },
    ),
}


def _show_config(proc: subprocess.Popen[str]) -> tuple[list[Path], str]:
    """The config files a server loaded, in order, and its kernel_spec_manager_class."""
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    loaded_block = out.split("Loaded config files:\n", 1)[1].split("\n\n", 1)[0]
    value = re.search(r"^  \.kernel_spec_manager_class = '([^']+)'$", out, re.MULTILINE)
    assert value, out
    return [Path(line.strip()) for line in loaded_block.splitlines()], value.group(1)


def test_status_agrees_with_jupyter_server_show_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real ``jupyter_server --show-config`` per scenario, run side by side, against ``status()``."""
    pytest.importorskip("jupyter_server")
    import venv

    import jupyter_core.paths as jpaths

    write(tmp_path / "standins" / "standins.py", STANDINS)
    pythonpath = os.pathsep.join([str(tmp_path / "standins"), *sys.path])
    runs = []
    for name, (prefer, files) in SCENARIOS.items():
        root = tmp_path / name
        # The server runs from its own venv so that its sys-prefix config folder is in tmp too.
        venv.EnvBuilder(with_pip=False, symlinks=os.name != "nt").create(root / "venv")
        python = root / "venv" / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
        dirs = {
            "user": root / "user",
            "env": root / "venv" / "etc" / "jupyter",
            "path-a": root / "path-a",
            "path-b": root / "path-b",
        }
        values = {dirs[where] / file: value for (where, file), value in files.items()}
        for path, value in values.items():
            if path.suffix == ".py":
                write(path, f"c.ServerApp.kernel_spec_manager_class = {value!r}\n")
            else:
                write(path, sets(value))
        monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(dirs["user"]))
        monkeypatch.setenv("JUPYTER_CONFIG_PATH", os.pathsep.join([str(dirs["path-a"]), str(dirs["path-b"])]))
        if prefer is None:
            monkeypatch.delenv("JUPYTER_PREFER_ENV_PATH", raising=False)
            # Unset, jupyter_core decides from sys.prefix: ours is the dev venv, as the server's is a venv.
            assert jpaths.prefer_environment_over_user()
        else:
            monkeypatch.setenv("JUPYTER_PREFER_ENV_PATH", prefer)
        monkeypatch.setattr(jpaths, "ENV_CONFIG_PATH", [str(dirs["env"])])
        st = jc.status().server
        env = dict(os.environ, PYTHONPATH=pythonpath)
        proc = subprocess.Popen(
            [str(python), "-m", "jupyter_server", "--show-config", "--no-browser"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=root,
        )
        runs.append((name, st, values, proc))

    for name, st, values, proc in runs:
        loaded, value = _show_config(proc)
        # every file in a scenario sets the key, so status lists exactly the server's load order
        assert [s.path for s in st.settings] == [p for p in loaded if tmp_path in p.parents], name
        assert st.effective is not None, name
        assert value == values[st.effective.path], name
        if st.effective.evaluated:
            assert st.effective.value == value, name
        assert st.enabled == (value == PROVIDER), name
