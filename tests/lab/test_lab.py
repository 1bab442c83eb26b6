"""Issue 16 in a real JupyterLab in chromium, over a home with 300+ kernel-capable environments.

The launcher is short and fits 1600×1000; four letters of a project's name in kernelkeeper's
picker and Enter start that project's kernel; a notebook saved with a kernel that is not
listed opens and starts without a prompt; with the front-end extension disabled the short
list still works, and a notebook in the server's folder naming a never-started kernel opens
and starts without a prompt (the server lists the kernels its notebooks name). Notebook 7:
the tree's New menu is the short list, a notebook made there runs, and Kernel > Change
Kernel is kernelkeeper's picker. Screenshots go to docs/img/ with KK_SAVE_SCREENSHOTS=1.

The environments are on-disk venvs (tests/fakes.py) of several kinds (venv, uv, poetry,
pipenv, pdm, virtualenv: the project files decide the kind) whose site-packages point at the
test run's (ipykernel and its dependencies), so each kernel really runs, as that
environment's interpreter; building 300 of them takes a second. The user has used a few
kernels before (their recent list is on disk) and has written "Python (this project)"
(`kernelkeeper add --this-project`), as the docs suggest.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import fakes
from conftest import hermetic
from jupyter_server_proc import free_port

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
UI_TIMEOUT = 60_000  # ms for each browser step
FARM = 320
PROJECT = "tango-papaya"
WORDS = ["apple", "basil", "cedar", "delta", "ember", "fjord", "grove", "heron", "iris", "juniper"]
MINOR = fakes.MINOR
# The kind of farm project i: its project files and the tool its .venv looks made by (3 and 7 stay venv).
KINDS: list[tuple[str, dict[str, str], str]] = [
    ("venv", {}, "venv"),
    ("uv", {"uv.lock": ""}, "uv"),
    ("poetry", {"poetry.lock": "", "pyproject.toml": '[tool.poetry]\nname = "{name}"\n'}, "virtualenv"),
    ("venv", {}, "venv"),
    ("pipenv", {"Pipfile": "[packages]\n"}, "virtualenv"),
    ("pdm", {"pdm.lock": "", "pyproject.toml": '[project]\nname = "{name}"\n[tool.pdm]\n'}, "virtualenv"),
    ("virtualenv", {}, "virtualenv"),
    ("venv", {}, "venv"),
]
# Kernels the user started before (their recent list): one per kind, for the launcher's badges.
USED_BEFORE = [1, 2, 4, 5]


def farm_name(i: int) -> str:
    return f"{WORDS[i % len(WORDS)]}-{i:03d}"


def farm_kernel(i: int) -> str:
    return f"{KINDS[i % len(KINDS)][0]}-{farm_name(i)}-py{MINOR}"


def _unavailable(message: str) -> None:
    if os.environ.get("KK_REQUIRE_HUB") == "1":
        pytest.fail(message)
    pytest.skip(message)


def runnable_venv(prefix: Path, tool: str = "venv") -> Path:
    fakes.venv(prefix, ipykernel=True, tool=tool)
    site = next(prefix.glob("lib/python*/site-packages"))
    (site / "test-run.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return prefix


class Lab:
    def __init__(self, url: str, token: str, log: Path) -> None:
        self.url, self.token, self.log = url, token, log

    def wait_for_log(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log.read_text(errors="replace"):
            assert time.monotonic() < deadline, f"{text!r} not in {self.log}"
            time.sleep(0.2)

    def api(self, path: str) -> Any:
        req = urllib.request.Request(self.url + path, headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read().decode())


@pytest.fixture
def farm(fake_home: Path) -> dict[str, Path]:
    try:
        import playwright  # noqa: F401
    except ImportError:
        _unavailable("the lab tests need playwright (pip install -e '.[test]')")
    if not CHROMIUM.exists():
        _unavailable("the lab tests need Debian's chromium: run .ci/setup.sh")
    projects = fake_home / "projects"
    out = {PROJECT: runnable_venv(fakes.project(projects / PROJECT) / ".venv")}
    for i in range(FARM):
        name = farm_name(i)
        _, files, tool = KINDS[i % len(KINDS)]
        files = {"pyproject.toml": f'[project]\nname = "{name}"\n', **files}
        folder = fakes.project(projects / name, files={k: v.format(name=name) for k, v in files.items()})
        out[name] = runnable_venv(folder / ".venv", tool)
    recent = fake_home / ".local" / "share" / "kernelkeeper" / "recent-kernels.json"
    recent.parent.mkdir(parents=True, exist_ok=True)
    recent.write_text(json.dumps({"kernels": [farm_kernel(i) for i in USED_BEFORE]}))
    from kernelkeeper.cli import main

    assert main(["add", "--this-project"]) == 0
    # Quiet JupyterLab: no news toast over the screenshots.
    settings = Path(os.environ["JUPYTER_CONFIG_DIR"]) / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    return out


def lab_server(tmp_path: Path, root: Path, *, extension: bool = True, app: str = "jupyterlab") -> Iterator[Lab]:
    """JupyterLab (or Notebook 7: ``app="notebook"``) over ``root``, kernelkeeper's server extension on."""
    config_dir = Path(os.environ["JUPYTER_CONFIG_DIR"])
    (config_dir / "jupyter_server_config.json").write_text(
        json.dumps({"ServerApp": {"jpserver_extensions": {"kernelkeeper": True}}})
    )
    labconfig = config_dir / "labconfig"
    labconfig.mkdir(exist_ok=True)
    # `jupyter labextension disable kernelkeeper` writes this.
    (labconfig / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {} if extension else {"kernelkeeper": True}})
    )
    env = hermetic(dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)), tmp_path)
    # The prebuilt extension is where `pip install` put it: this Python's share/jupyter.
    env["JUPYTER_PATH"] = os.pathsep.join([os.environ["JUPYTER_PATH"], str(Path(sys.prefix) / "share" / "jupyter")])
    port, token = free_port(), uuid.uuid4().hex
    log = tmp_path / f"lab-{uuid.uuid4().hex[:6]}.log"
    cmd = [
        sys.executable, "-m", app, "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", "--ServerApp.open_browser=False",
        f"--ServerApp.root_dir={root}", "--allow-root",
    ]  # fmt: skip
    if app == "jupyterlab":
        cmd.append("--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate")
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=root)
    lab = Lab(f"http://127.0.0.1:{port}", token, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                lab.api("/api/status")
                break
            except OSError:
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.3)
        yield lab
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)


def browser(p: Any, profile: Path) -> Any:
    context = p.chromium.launch_persistent_context(
        str(profile),
        executable_path=str(CHROMIUM),
        headless=True,
        args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--no-first-run"],
        viewport={"width": 1600, "height": 1000},
        timeout=UI_TIMEOUT,
    )  # fmt: skip
    context.set_default_timeout(UI_TIMEOUT)
    return context


def save(shots: dict[str, Path]) -> None:
    if os.environ.get("KK_SAVE_SCREENSHOTS") == "1":
        dest = REPO / "docs" / "img"
        dest.mkdir(parents=True, exist_ok=True)
        for name, path in shots.items():
            shutil.copy2(path, dest / name)


# The server's log line when its walk of the root for notebooks (notebook_kernels.py) is done.
WALKED = "notebooks under"


def write_notebook(path: Path, kernel: str) -> Path:
    cell = {"cell_type": "code", "source": "", "metadata": {}, "outputs": [], "execution_count": None}
    metadata = {"kernelspec": {"name": kernel, "display_name": "x", "language": "python"}}
    path.write_text(json.dumps({"cells": [cell], "metadata": metadata, "nbformat": 4, "nbformat_minor": 5}))
    return path


def fits_one_screen(page: Any, tiles: str = ".jp-LauncherCard") -> None:
    """The launcher's tiles fit one 1600×1000 screen: the last tile's bottom is on it."""
    box = page.locator(tiles).last.bounding_box()
    assert box is not None and box["y"] + box["height"] <= 1000, box


def test_short_launcher_picker_and_unlisted_notebooks(farm: dict[str, Path], tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=UI_TIMEOUT)  # Playwright's `expect` would give up after 5 s
    minor = MINOR
    hidden = farm_kernel(7)  # never started, and no notebook named it when the server looked
    shots: dict[str, Path] = {}
    with sync_playwright() as p:
        for lab in lab_server(tmp_path, tmp_path):
            catalog = lab.api("/kernelkeeper/kernels")["kernels"]
            assert sum(1 for k in catalog if k["startable"]) > 300, "the farm is there"
            kinds = {k["kind"] for k in catalog if k["startable"]}
            assert {"venv", "uv", "poetry", "pipenv", "pdm", "virtualenv"} <= kinds, kinds
            listed = {k["name"]: k["listed"] for k in catalog if k["listed"]}
            assert all(listed.get(farm_kernel(i)) == "recent" for i in USED_BEFORE), listed
            assert listed.get("python-this-project") == "this-project", listed
            # A notebook that appears after the server walked its folder: not in the list the page loads.
            lab.wait_for_log(WALKED)
            write_notebook(tmp_path / "saved.ipynb", hidden)
            assert hidden not in lab.api("/api/kernelspecs")["kernelspecs"]
            context = browser(p, tmp_path / "profile")
            try:
                page = context.pages[0] if context.pages else context.new_page()
                page.goto(f"{lab.url}/lab?reset&token={lab.token}")
                cards = page.locator('.jp-LauncherCard[data-category="Notebook"]')
                all_kernels = cards.filter(has_text="All kernels")
                expect(all_kernels).to_have_count(1)
                expect(cards.filter(has_text="Python (this project)")).to_have_count(1)
                expect(cards.filter(has_text=f"{farm_name(1)} (uv")).to_have_count(1)
                fits_one_screen(page)
                assert cards.count() < 10, cards.all_inner_texts()
                shots["lab-launcher.png"] = tmp_path / "lab-launcher.png"
                page.screenshot(path=str(shots["lab-launcher.png"]))

                # One search (4 letters), Enter: the project's kernel, idle, its interpreter.
                all_kernels.click()
                shots["lab-picker.png"] = _pick_project(page, expect, tmp_path / "lab-picker.png")
                expect(page.locator("#jp-main-statusbar")).to_contain_text(idle(PROJECT, minor))
                _run_and_check(page, expect, farm[PROJECT])

                # The stock "Change Kernel…" now opens the picker.
                page.locator("#jp-main-statusbar").get_by_role("button", name=idle(PROJECT, minor)).click()
                expect(page.locator(".kk-picker-search")).to_be_visible()
                page.keyboard.press("Escape")

                # A notebook saved with a kernel that is not listed opens and starts, no prompt.
                page.goto(f"{lab.url}/lab/tree/saved.ipynb?token={lab.token}")
                expect(page.locator("#jp-main-statusbar")).to_contain_text(idle(farm_name(7), minor))
                expect(page.locator(".jp-Dialog")).to_have_count(0)
                _run_and_check(page, expect, farm[farm_name(7)])
            finally:
                context.close()

        # The front-end extension disabled: the stock launcher shows the short list, now with the
        # kernels started above (recent), and they start. A notebook in the server's folder naming a
        # kernel never started is listed too (the server read it), so stock JupyterLab starts it
        # without its "Select Kernel" prompt.
        never = farm_kernel(3)
        write_notebook(tmp_path / "unlisted.ipynb", never)
        for lab in lab_server(tmp_path, tmp_path, extension=False):
            lab.wait_for_log(WALKED)
            listed = lab.api("/api/kernelspecs")["kernelspecs"]
            assert never in listed and farm_kernel(11) not in listed, sorted(listed)
            context = browser(p, tmp_path / "profile-stock")
            try:
                page = context.pages[0] if context.pages else context.new_page()
                page.goto(f"{lab.url}/lab?reset&token={lab.token}")
                cards = page.locator('.jp-LauncherCard[data-category="Notebook"]')
                expect(cards.filter(has_text=f"{PROJECT} (venv")).to_have_count(1)
                expect(cards.filter(has_text="All kernels")).to_have_count(0)
                shots["lab-launcher-stock.png"] = tmp_path / "lab-launcher-stock.png"
                page.screenshot(path=str(shots["lab-launcher-stock.png"]))
                fits_one_screen(page, '.jp-LauncherCard[data-category="Console"]')  # the kernels' tiles
                assert cards.count() <= 12, cards.all_inner_texts()
                page.goto(f"{lab.url}/lab/tree/unlisted.ipynb?token={lab.token}")
                expect(page.locator("#jp-main-statusbar")).to_contain_text(f"{farm_name(3)} (venv · {minor}) | Idle")
                expect(page.locator(".jp-Dialog")).to_have_count(0)
                _run_and_check(page, expect, farm[farm_name(3)])
            finally:
                context.close()
    save(shots)


def test_notebook7_new_menu_runs_and_change_kernel_is_the_picker(farm: dict[str, Path], tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=UI_TIMEOUT)
    minor = MINOR
    used = farm_name(USED_BEFORE[0])  # a uv project's kernel, in the short list (recent)
    shots: dict[str, Path] = {}
    with sync_playwright() as p:
        for lab in lab_server(tmp_path, tmp_path, app="notebook"):
            context = browser(p, tmp_path / "profile-nb7")
            try:
                page = context.pages[0] if context.pages else context.new_page()
                page.goto(f"{lab.url}/tree?token={lab.token}")
                # The tree's New menu: one item per listed kernel, then Console, New File, New Folder...
                page.locator('[data-jp-item-name="new-dropdown"] .lm-MenuBar-item').click()
                items = page.locator(".lm-Menu-item")
                expect(items.filter(has_text="Python (this project)")).to_have_count(1)
                expect(items.filter(has_text=f"{used} (uv · {minor})")).to_have_count(1)
                assert items.count() < 15, items.all_inner_texts()
                menu = page.locator(".lm-Menu").last.bounding_box()
                assert menu is not None and menu["y"] + menu["height"] <= 1000, menu
                shots["notebook7-new.png"] = tmp_path / "notebook7-new.png"
                page.screenshot(path=str(shots["notebook7-new.png"]))

                # A notebook made there opens in its own tab and runs that environment's Python.
                with context.expect_page() as opened:
                    items.filter(has_text=f"{used} (uv · {minor})").click()
                notebook = opened.value
                _run_and_check(notebook, expect, farm[used])

                # Kernel > Change Kernel… is kernelkeeper's picker: 4 letters, Enter, that project's Python.
                notebook.get_by_role("menuitem", name="Kernel").click()
                notebook.locator(".lm-Menu-item").filter(has_text="Change Kernel").first.click()
                shots["notebook7-picker.png"] = _pick_project(notebook, expect, tmp_path / "notebook7-picker.png")
                expect(notebook.locator(".kk-picker-search")).to_have_count(0)
                # Run once the new kernel is the notebook's and idle (a cell run while it changes is not sent).
                expect(notebook.get_by_role("button", name=re.compile(re.escape(PROJECT)))).to_be_visible()
                expect(notebook.locator('.jp-Notebook-ExecutionIndicator[data-status="idle"]')).to_have_count(1)
                _run_and_check(notebook, expect, farm[PROJECT], again=True)
            finally:
                context.close()
    save(shots)


def _pick_project(page: Any, expect: Any, shot: Path) -> Path:
    """In kernelkeeper's open picker: 4 letters of the project's name, its kernel first, a screenshot, Enter."""
    search = page.locator(".kk-picker-search")
    expect(search).to_be_focused()
    search.type(PROJECT[:4])
    expect(page.locator(".kk-picker-item").first).to_contain_text(PROJECT)
    page.screenshot(path=str(shot))
    page.keyboard.press("Enter")
    return shot


def idle(project: str, minor: str) -> re.Pattern[str]:
    """The status bar with the kernel idle. A kernel started by name that was not in the list the page
    loaded shows under its name (JupyterLab reads display names from that list) until the next reload."""
    return re.compile(rf"({re.escape(project)} \(venv · {minor}\)|venv-{re.escape(project)}-py{minor}) \| Idle")


def _run_and_check(page: Any, expect: Any, prefix: Path, *, again: bool = False) -> None:
    """Run ``print(sys.executable)`` in the notebook in front and wait for ``prefix``'s Python.

    ``again``: the first cell already ran (on another kernel): replace its code and run it again.
    """
    panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")  # the notebook in front, not an earlier tab
    cell = panel.locator(".jp-Cell").first.locator(".cm-content")
    cell.click()
    if again:
        page.keyboard.press("ControlOrMeta+a")
    page.keyboard.type("import sys; print(sys.executable)")
    page.keyboard.press("Shift+Enter")
    output = panel.locator(".jp-Cell").first.locator(".jp-OutputArea-output").first
    python = str(prefix / "bin" / "python")
    expect(output).to_contain_text(python)
