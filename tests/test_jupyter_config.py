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

ENABLED = {"ServerApp": {"jpserver_extensions": {"kernelkeeper": True}}}


def ext_file(tmp_path: Path, scope: str) -> Path:
    return folder(tmp_path, scope) / "jupyter_server_config.d" / "kernelkeeper.json"


@pytest.mark.parametrize("scope", ["user", "sys-prefix", "system"])
def test_enable_writes_the_extension_enable_file(tmp_path: Path, scope: str) -> None:
    result = jc.enable(scope)

    target = ext_file(tmp_path, scope)
    assert result.config_dir == folder(tmp_path, scope)
    assert [(c.path, c.key, c.change, c.file_created) for c in result.changes] == [
        (target, "jpserver_extensions.kernelkeeper", Change.SET, True)
    ]
    assert result.changed and not result.warnings
    assert read(target) == ENABLED
    assert stat.S_IMODE(target.stat().st_mode) == 0o644  # a system-wide file must be readable by every user
    assert not list(target.parent.glob(".*.tmp"))
    # The key that stops a Jupyter without kernelkeeper is never written.
    assert sorted(p.relative_to(folder(tmp_path, scope)) for p in folder(tmp_path, scope).rglob("*")) == [
        Path("jupyter_server_config.d"),
        Path("jupyter_server_config.d/kernelkeeper.json"),
    ]
    st = result.status
    assert st.extension.enabled and st.extension.effective is not None
    assert st.extension.effective.path == target and st.extension.effective.scope == scope
    assert st.server.state is State.DEFAULT and st.provider_active and not st.legacy
    assert jc.status().to_json() == st.to_json()


def test_enable_migrates_the_legacy_key_and_keeps_everything_else(fake_home: Path) -> None:
    original: dict[str, Any] = {
        "ServerApp": {"ip": "0.0.0.0", "open_browser": False, KEY: PROVIDER, "port": 9999},
        "MappingKernelManager": {"cull_idle_timeout": 600},
        "LabApp": {"collaborative": True, "note": "é"},
    }
    legacy = write(fake_home / ".jupyter" / SERVER_CONFIG, original)
    os.chmod(legacy, 0o600)
    notebook = write(fake_home / ".jupyter" / "jupyter_notebook_config.json", sets(PROVIDER, "NotebookApp"))
    base = write(fake_home / ".jupyter" / "jupyter_config.json", {**sets(PROVIDER), "Application": {"log_level": 10}})
    assert [s.path for s in jc.status().legacy] == [base, legacy, notebook]

    result = jc.enable("user")

    assert [(c.path.name, c.change) for c in result.changes] == [
        ("kernelkeeper.json", Change.SET),
        (SERVER_CONFIG, Change.REMOVED),
        ("jupyter_notebook_config.json", Change.REMOVED),
        ("jupyter_config.json", Change.REMOVED),
    ]
    assert "old way" in result.changes[1].message
    data = read(legacy)
    assert data == {**original, "ServerApp": {"ip": "0.0.0.0", "open_browser": False, "port": 9999}}
    assert list(data) == ["ServerApp", "MappingKernelManager", "LabApp"]
    assert legacy.read_text(encoding="utf-8") == json.dumps(data, indent=2) + "\n"
    assert stat.S_IMODE(legacy.stat().st_mode) == 0o600  # permissions kept
    assert not notebook.exists()  # nothing else was in it
    assert read(base) == {"Application": {"log_level": 10}}
    assert not result.status.legacy and result.status.provider_active and not result.warnings


def test_enable_never_touches_another_managers_setting(fake_home: Path) -> None:
    other = write(fake_home / ".jupyter" / SERVER_CONFIG, sets("nb_conda_kernels.CondaKernelSpecManager"))
    before = other.read_bytes()

    result = jc.enable("user")

    assert [(c.path.name, c.change) for c in result.changes] == [
        ("kernelkeeper.json", Change.SET),
        (SERVER_CONFIG, Change.FOREIGN),
    ]
    assert other.read_bytes() == before
    assert result.status.extension.enabled and not result.status.provider_active
    assert any(str(other) in w and "CondaKernelSpecManager" in w and "not used" in w for w in result.warnings)


def test_enable_keeps_other_extensions_in_the_file(fake_home: Path) -> None:
    target = write(ext_file(fake_home.parent, "user"), {"ServerApp": {"jpserver_extensions": {"x": True}}, "Z": {}})
    assert jc.enable("user").changes[0].change is Change.SET
    assert read(target) == {"ServerApp": {"jpserver_extensions": {"x": True, "kernelkeeper": True}}, "Z": {}}


def test_enable_turns_a_disabled_extension_back_on(fake_home: Path) -> None:
    # what `jupyter server extension disable kernelkeeper` writes
    target = write(ext_file(fake_home.parent, "user"), {"ServerApp": {"jpserver_extensions": {"kernelkeeper": False}}})
    assert not jc.status().extension.enabled
    (change,) = jc.enable("user").changes
    assert change.change is Change.REPLACED and change.before == "false" and read(target) == ENABLED


@pytest.mark.parametrize(
    "text",
    ['{"ServerApp": {"ip": "0.0.0.0",}}\n', '["not", "an", "object"]\n', b"\xff\xfe{}".decode("latin-1")],
)
def test_malformed_files_are_left_untouched(fake_home: Path, text: str) -> None:
    # A malformed legacy candidate (Jupyter ignores it too): a warning, and the extension is still enabled.
    legacy = fake_home / ".jupyter" / SERVER_CONFIG
    legacy.parent.mkdir(parents=True)
    legacy.write_bytes(text.encode("latin-1"))
    before = legacy.read_bytes()
    result = jc.enable("user")
    assert result.status.extension.enabled and any(str(legacy) in w for w in result.warnings)
    off = jc.disable("user")
    assert not off.status.extension.enabled and any(str(legacy) in w for w in off.warnings)
    assert legacy.read_bytes() == before

    # A malformed enable file is ours to write: an error naming it, file untouched.
    ext = ext_file(fake_home.parent, "user")
    ext.parent.mkdir(parents=True, exist_ok=True)
    ext.write_bytes(text.encode("latin-1"))
    with pytest.raises(UserError) as err:
        jc.enable("user")
    assert str(ext) in str(err.value) and err.value.hint
    with pytest.raises(UserError, match=re.escape(str(ext))):
        jc.disable("user")
    assert ext.read_bytes() == text.encode("latin-1")


def test_enable_refuses_a_fifo_without_blocking(fake_home: Path) -> None:
    ext = ext_file(fake_home.parent, "user")
    ext.parent.mkdir(parents=True)
    os.mkfifo(ext)
    with pytest.raises(UserError, match="FIFO"):
        jc.enable("user")
    legacy = fake_home / ".jupyter" / SERVER_CONFIG
    os.unlink(ext)
    os.mkfifo(legacy)
    assert jc.enable("user").status.extension.enabled
    assert any("FIFO" in p for p in jc.status().problems)


def test_enable_into_an_empty_file(fake_home: Path) -> None:
    target = write(ext_file(fake_home.parent, "user"), "")
    assert jc.enable("user").changes[0].change is Change.SET
    assert read(target) == ENABLED


def test_enable_writes_through_a_symlinked_file(fake_home: Path, tmp_path: Path) -> None:
    real = write(tmp_path / "dotfiles" / "kernelkeeper.json", {"ServerApp": {"jpserver_extensions": {"x": True}}})
    link = ext_file(tmp_path, "user")
    link.parent.mkdir(parents=True)
    link.symlink_to(real)
    jc.enable("user")
    assert link.is_symlink() and read(real) == {"ServerApp": {"jpserver_extensions": {"x": True, "kernelkeeper": True}}}


def test_enable_is_idempotent(fake_home: Path) -> None:
    write(fake_home / ".jupyter" / SERVER_CONFIG, {"ServerApp": {"ip": "::", KEY: PROVIDER}})
    jc.enable("user")
    files = sorted((fake_home / ".jupyter").rglob("*.json"))
    before = {p: p.read_bytes() for p in files}
    for p in files:
        os.utime(p, (1, 1))

    again = jc.enable("user")

    assert not again.changed
    (change,) = again.changes
    assert change.change is Change.ALREADY and change.message.startswith("already enabled")
    assert {p: p.read_bytes() for p in files} == before and all(p.stat().st_mtime == 1 for p in files)


def test_enable_never_writes_a_notebook6_setting(fake_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jc, "classic_notebook_installed", lambda: True)
    result = jc.enable("user")
    assert [c.path.name for c in result.changes] == ["kernelkeeper.json"]
    assert not (fake_home / ".jupyter" / "jupyter_notebook_config.json").exists()
    assert result.status.notebook6.state is State.DEFAULT
    assert any("Notebook 6" in w for w in result.warnings)


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
        jc.enable("system")
    assert err.value.hint and "--user" in err.value.hint


# --- disable -------------------------------------------------------------------


def test_disable_removes_the_enable_file_holding_only_our_entry(fake_home: Path) -> None:
    jc.enable("user")
    target = ext_file(fake_home.parent, "user")

    result = jc.disable("user")

    (change,) = result.changes
    assert change.change is Change.REMOVED and change.file_removed and change.before == "true"
    assert not target.exists() and not result.status.extension.enabled and not result.status.provider_active
    again = jc.disable("user")
    assert not again.changed and [c.change for c in again.changes] == [Change.NOT_SET]


def test_disable_removes_both_mechanisms_and_keeps_other_settings(fake_home: Path) -> None:
    ext = write(
        ext_file(fake_home.parent, "user"), {"ServerApp": {"jpserver_extensions": {"x": True, "kernelkeeper": True}}}
    )
    legacy = write(
        fake_home / ".jupyter" / SERVER_CONFIG,
        {"LabApp": {"x": 1}, "ServerApp": {KEY: PROVIDER, "jpserver_extensions": {"kernelkeeper": True}}},
    )
    result = jc.disable("user")
    assert [(c.path.name, c.key, c.change) for c in result.changes] == [
        ("kernelkeeper.json", "jpserver_extensions.kernelkeeper", Change.REMOVED),
        (SERVER_CONFIG, "jpserver_extensions.kernelkeeper", Change.REMOVED),
        (SERVER_CONFIG, KEY, Change.REMOVED),
    ]
    assert read(ext) == {"ServerApp": {"jpserver_extensions": {"x": True}}}
    assert read(legacy) == {"LabApp": {"x": 1}}
    assert not result.status.provider_active and not result.status.legacy


def test_disable_leaves_another_class_alone(fake_home: Path) -> None:
    target = write(fake_home / ".jupyter" / SERVER_CONFIG, sets("nb_conda_kernels.CondaKernelSpecManager"))
    before = target.read_bytes()

    result = jc.disable("user")

    change = result.changes[-1]
    assert change.change is Change.FOREIGN and change.before == "nb_conda_kernels.CondaKernelSpecManager"
    assert "left" in change.message and "CondaKernelSpecManager" in change.message
    assert not result.changed and target.read_bytes() == before


def test_disable_warns_when_still_enabled_elsewhere(tmp_path: Path) -> None:
    jc.enable("system")
    write(folder(tmp_path, "system") / SERVER_CONFIG, sets(PROVIDER))
    jc.enable("user")
    result = jc.disable("user")
    assert result.changed and result.status.extension.enabled
    assert any("still loads" in w and str(folder(tmp_path, "system")) in w for w in result.warnings)


def test_disable_is_not_blocked_by_a_malformed_jupyter_config_json(fake_home: Path) -> None:
    jc.enable("user")
    bad = write(fake_home / ".jupyter" / "jupyter_config.json", "{oops")
    result = jc.disable("user")
    assert result.changes[0].change is Change.REMOVED
    assert bad.read_text() == "{oops" and any(str(bad) in w for w in result.warnings)


# --- dry run -------------------------------------------------------------------


def test_dry_run_writes_nothing(fake_home: Path) -> None:
    legacy = write(fake_home / ".jupyter" / SERVER_CONFIG, {"ServerApp": {"ip": "::", KEY: PROVIDER}})
    before = legacy.read_bytes()

    preview = jc.enable("user", dry_run=True)

    assert preview.dry_run and preview.changed
    assert [c.change for c in preview.changes] == [Change.SET, Change.REMOVED]
    assert preview.changes[0].content is not None and json.loads(preview.changes[0].content) == ENABLED
    assert preview.status.extension.enabled and not preview.status.legacy  # as it would be
    assert not (fake_home / ".jupyter" / "jupyter_server_config.d").exists() and legacy.read_bytes() == before
    assert jc.status().server.enabled and not jc.status().extension.enabled

    jc.enable("user")
    ext = ext_file(fake_home.parent, "user")
    before = ext.read_bytes()
    preview = jc.disable("user", dry_run=True)
    assert preview.changes[0].change is Change.REMOVED
    assert not preview.status.extension.enabled
    assert ext.read_bytes() == before and jc.status().extension.enabled


# --- the extension's precedence ----------------------------------------------------


def test_extension_precedence_follows_jupyter_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUPYTER_PREFER_ENV_PATH", "0")
    on = {"ServerApp": {"jpserver_extensions": {"kernelkeeper": True}}}
    off = {"ServerApp": {"jpserver_extensions": {"kernelkeeper": False}}}
    write(ext_file(tmp_path, "system"), off)
    user = write(ext_file(tmp_path, "user"), on)
    assert jc.status().extension.effective == jc.ExtensionSetting(user, "user", True)  # higher folder wins

    # In one folder the main file is merged after config.d/
    main = write(folder(tmp_path, "user") / SERVER_CONFIG, off)
    st = jc.status().extension
    assert not st.enabled and st.effective is not None and st.effective.path == main

    # A name in the traitlets-loaded dict (here a system jupyter_config.json) is never merged over.
    main.unlink()
    base = write(folder(tmp_path, "system") / "jupyter_config.json", off)
    st = jc.status().extension
    assert not st.enabled and st.effective is not None and st.effective.path == base


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
    # the legacy key, as earlier versions wrote it
    write(folder(tmp_path, "sys-prefix") / SERVER_CONFIG, sets(PROVIDER))
    write(folder(tmp_path, "user") / SERVER_CONFIG, sets(PROVIDER))
    st = jc.status().server
    assert st.enabled and [s.scope for s in st.settings] == [loser, winner]

    other = write(folder(tmp_path, winner) / SERVER_CONFIG, sets(OTHER))
    st = jc.status().server
    assert st.state is State.OTHER and st.effective is not None and st.effective.path == other
    assert [s.scope for s in st.overridden] == [loser]


def test_status_user_override_beats_system_enable(tmp_path: Path) -> None:
    write(folder(tmp_path, "system") / SERVER_CONFIG, sets(PROVIDER))
    user = write(folder(tmp_path, "user") / SERVER_CONFIG, sets(OTHER))

    st = jc.status().server

    assert st.state is State.OTHER and not st.enabled
    assert st.effective is not None and st.effective.path == user and st.effective.value == OTHER
    assert [(s.scope, s.is_kernelkeeper) for s in st.overridden] == [("system", True)]
    assert [s.scope for s in st.settings] == ["system", "user"]  # load order: later wins
    # enabling at system migrates the legacy key and says the provider stays off while the user file wins
    again = jc.enable("system")
    assert again.changed and not again.status.legacy and not again.status.provider_active
    assert any(str(user) in w and OTHER in w for w in again.warnings)


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
    jc.enable("system")
    st = jc.status()
    assert st.extension.enabled and st.provider_active and any(str(bad) in p for p in st.problems)


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


# --- the Jupyters on the machine, from files ----------------------------------------


def _fake_jupyter(prefix: Path, *, kernelkeeper: str | None = None) -> Path:
    """A venv holding jupyter_server (dist-info) and a `jupyter` script, as pip/uv leave them."""
    import fakes

    fakes.venv(prefix)
    site = prefix / "lib" / f"python{fakes.MINOR}" / "site-packages"
    (site / "jupyter_server-2.14.0.dist-info").mkdir()
    script = prefix / "bin" / "jupyter"
    script.write_text(f"#!{prefix / 'bin' / 'python'}\nfrom jupyter_core.command import main\nmain()\n")
    script.chmod(0o755)
    if kernelkeeper == "package":
        (site / "kernelkeeper").mkdir()
        (site / "kernelkeeper" / "__init__.py").write_text("")
    elif kernelkeeper == "pth":  # an editable install: a .pth naming the source folder
        src = prefix / "src"
        (src / "kernelkeeper").mkdir(parents=True)
        (src / "kernelkeeper" / "__init__.py").write_text("")
        (site / "_kernelkeeper.pth").write_text(f"{src}\n")
    elif kernelkeeper == "hook":  # setuptools' editable finder
        hook = "__editable___kernelkeeper_0_1_0_finder"
        (site / "__editable__.kernelkeeper-0.1.0.pth").write_text(f"import {hook}; {hook}.install()\n")
        (site / f"{hook}.py").write_text("")
    elif kernelkeeper == "comment":  # a .pth that only mentions the name: no import works from it
        (site / "other.pth").write_text("import os  # kernelkeeper\n/nonexistent/kernelkeeper\n")
    elif kernelkeeper == "dist-info-only":  # a broken install: metadata, no package
        (site / "kernelkeeper-0.1.0.dist-info").mkdir()
    return prefix


@pytest.mark.parametrize(
    ("how", "imports"),
    [(None, False), ("package", True), ("pth", True), ("hook", True), ("comment", False), ("dist-info-only", False)],
)
def test_importability_is_read_from_files(tmp_path: Path, how: str | None, imports: bool) -> None:
    prefix = _fake_jupyter(tmp_path / "j", kernelkeeper=how)
    assert jc.imports_kernelkeeper(jc.site_dirs(prefix)) is imports


def test_enable_says_what_each_jupyter_will_do(tmp_path: Path, fake_home: Path) -> None:
    from kernelkeeper.context import Context

    without = _fake_jupyter(tmp_path / "without")
    with_kk = _fake_jupyter(tmp_path / "with", kernelkeeper="package")
    env = dict(os.environ, PATH=f"{without / 'bin'}:{with_kk / 'bin'}:/usr/bin:/bin")
    installs = jc.find_jupyters(Context.from_environ(env=env), ())
    mine = {i.prefix: i for i in installs if i.prefix in (without, with_kk)}
    assert mine[without].found_as == (f"`jupyter` on PATH: {without / 'bin' / 'jupyter'}",)
    assert mine[without].jupyter_server == "2.14.0" and not mine[without].imports_kernelkeeper
    assert mine[with_kk].imports_kernelkeeper

    result = jc.enable("user", installs=list(mine.values()))

    views = {v.install.prefix: v for v in result.jupyters}
    assert views[without].outcome is jc.Outcome.AS_BEFORE
    assert views[without].reason == "runs as before: its Python cannot import kernelkeeper"
    assert views[with_kk].outcome is jc.Outcome.PROVIDER and views[with_kk].reason == "uses the provider"
    data = result.to_json()["jupyters"]
    assert {(d["prefix"], d["outcome"]) for d in data} == {
        (str(without), "runs-as-before"),
        (str(with_kk), "uses-provider"),
    }


def test_doctor_reports_a_jupyter_the_legacy_key_stops(tmp_path: Path, fake_home: Path) -> None:
    from kernelkeeper.context import Context
    from kernelkeeper.doctor import config_breaks_jupyter

    without = _fake_jupyter(tmp_path / "without")
    ctx = Context.from_environ(env=dict(os.environ, PATH=f"{without / 'bin'}:/usr/bin:/bin"))
    assert config_breaks_jupyter(ctx, ()) == []
    legacy = write(fake_home / ".jupyter" / SERVER_CONFIG, sets(PROVIDER))

    (finding,) = config_breaks_jupyter(ctx, ())

    assert finding.severity == "error" and finding.code == "config-breaks-jupyter"
    assert finding.subject == str(legacy) and str(without) in finding.message
    assert finding.fix == "kernelkeeper jupyter enable"
    jc.enable("user")
    assert config_breaks_jupyter(ctx, ()) == []
    # a Jupyter that can import kernelkeeper is not stopped by the key
    write(fake_home / ".jupyter" / SERVER_CONFIG, sets(PROVIDER))
    _fake_jupyter(tmp_path / "with", kernelkeeper="package")
    ctx = Context.from_environ(env=dict(os.environ, PATH=f"{tmp_path / 'with' / 'bin'}:/usr/bin:/bin"))
    assert config_breaks_jupyter(ctx, ()) == []


# --- two real Jupyters: one with kernelkeeper, one without -----------------------------


@pytest.fixture(scope="session")
def bare_jupyter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second real jupyter_server in its own venv, without kernelkeeper (uv venv + uv pip install)."""
    import shutil

    from procs import run_checked

    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not installed: cannot build a second Jupyter")
    root = tmp_path_factory.mktemp("bare-jupyter")
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["UV_CACHE_DIR"] = str(root / "uv-cache")
    run_checked([uv, "venv", "-q", "--python", sys.executable, root / "venv"], env)
    try:
        run_checked(
            [uv, "pip", "install", "-q", "--python", root / "venv" / "bin" / "python", "jupyter_server"],
            env,
            timeout=600,
        )
    except RuntimeError as e:
        pytest.skip(f"cannot install jupyter_server into a second venv (no index reachable?): {e}")
    return root / "venv"


def _server_env(tmp_path: Path) -> dict[str, str]:
    from conftest import hermetic

    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return hermetic(env, tmp_path)


def _both_servers(tmp_path: Path, bare: Path, tag: str) -> tuple[dict[str, Any], dict[str, Any]]:
    from jupyter_server_proc import jupyter_server

    # The provider lists a short list by default (recent, shared, this project): ask for every
    # kernel, so an environment's dynamic kernel shows whether the provider is active. A config
    # for a class the bare Jupyter does not have is ignored there.
    every = {"KernelKeeperSpecManager": {"list_all": True}}
    write(Path(os.environ["JUPYTER_CONFIG_DIR"]) / "jupyter_config.json", every)
    env = _server_env(tmp_path)
    with jupyter_server(env, tmp_path, tmp_path / f"{tag}-kk.log") as server:
        ours = server.kernelspecs()
    with jupyter_server(env, tmp_path, tmp_path / f"{tag}-bare.log", python=bare / "bin" / "python") as server:
        assert server.request("GET", "/api/status") is not None
        theirs = server.kernelspecs()
    return ours, theirs


@pytest.mark.timeout(600)
def test_enable_keeps_a_jupyter_without_kernelkeeper_starting(
    bare_jupyter: Path, tmp_path: Path, fake_home: Path
) -> None:
    import fakes
    from kernelkeeper.cli import main

    fakes.venv(fakes.project(fake_home / "projects" / "alpha") / ".venv", ipykernel=True)
    dynamic = f"venv-alpha-py{fakes.MINOR}"

    assert main(["jupyter", "enable", "--user"]) == 0
    assert (fake_home / ".jupyter" / "jupyter_server_config.d" / "kernelkeeper.json").is_file()

    ours, theirs = _both_servers(tmp_path, bare_jupyter, "enabled")
    assert dynamic in ours, sorted(ours)  # the provider is active where kernelkeeper imports
    assert dynamic not in theirs  # the stock list where it does not
    assert "could not be found" in (tmp_path / "enabled-bare.log").read_text()  # only a warning


@pytest.mark.timeout(600)
def test_legacy_key_is_reported_and_enable_migrates_it(bare_jupyter: Path, tmp_path: Path, fake_home: Path) -> None:
    import fakes
    from jupyter_server_proc import jupyter_server
    from kernelkeeper.commands.common import discover_args
    from kernelkeeper.doctor import config_breaks_jupyter

    fakes.venv(fakes.project(fake_home / "projects" / "alpha") / ".venv", ipykernel=True)
    dynamic = f"venv-alpha-py{fakes.MINOR}"
    legacy = write(
        fake_home / ".jupyter" / SERVER_CONFIG, {"ServerApp": {KEY: PROVIDER, "shutdown_no_activity_timeout": 0}}
    )

    # What earlier versions wrote stops the Jupyter that cannot import kernelkeeper...
    with (
        pytest.raises(RuntimeError, match="could not be imported"),
        jupyter_server(
            _server_env(tmp_path), tmp_path, tmp_path / "legacy.log", python=bare_jupyter / "bin" / "python"
        ),
    ):
        pass
    # ...and doctor says so, with the fix.
    env = dict(os.environ, PATH=f"{bare_jupyter / 'bin'}:{os.environ['PATH']}")
    ctx, found = discover_args(argparse_namespace(), env)
    findings = config_breaks_jupyter(ctx, found.environments)
    assert [(f.severity, f.subject, f.fix) for f in findings] == [("error", str(legacy), "kernelkeeper jupyter enable")]
    assert str(bare_jupyter) in findings[0].message

    result = jc.enable("user", installs=jc.find_jupyters(ctx, found.environments))
    views = {v.install.prefix: v.outcome for v in result.jupyters}
    assert views[bare_jupyter] is jc.Outcome.AS_BEFORE
    assert read(legacy) == {"ServerApp": {"shutdown_no_activity_timeout": 0}}
    assert config_breaks_jupyter(ctx, found.environments) == []

    ours, theirs = _both_servers(tmp_path, bare_jupyter, "migrated")
    assert dynamic in ours and dynamic not in theirs


def argparse_namespace() -> Any:
    import argparse

    return argparse.Namespace(root=[], depth=None, no_default_roots=False)


def test_the_extension_respects_a_chosen_manager_and_the_providers_config(tmp_path: Path, fake_home: Path) -> None:
    """A real ServerApp.initialize in a subprocess: which manager it made, with which settings."""
    probe = (
        "from jupyter_server.serverapp import ServerApp\n"
        "app = ServerApp()\n"
        "app.initialize(['--ServerApp.port=0', '--ServerApp.open_browser=False'])\n"
        "m = app.kernel_spec_manager\n"
        "print('KSM', type(m).__module__ + '.' + type(m).__name__, getattr(m, 'cache_seconds', None))\n"
    )
    jc.enable("user")
    write(fake_home / ".jupyter" / SERVER_CONFIG, {"KernelKeeperSpecManager": {"cache_seconds": 7}})

    def manager() -> str:
        out = subprocess.run(
            [sys.executable, "-c", probe],
            env=_server_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
        assert out.returncode == 0, out.stderr
        (line,) = [ln for ln in out.stdout.splitlines() if ln.startswith("KSM ")]
        return line[4:]

    assert manager() == f"{PROVIDER} 7.0"
    write(fake_home / ".jupyter" / SERVER_CONFIG, sets(OTHER))  # a manager the person chose wins
    assert manager() == f"{OTHER} None"
