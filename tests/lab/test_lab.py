"""Issue 16 in a real JupyterLab in chromium, over a home with 300+ kernel-capable environments.

The launcher is short and fits 1600×1000; four letters of a project's name in kernelkeeper's
picker and Enter start that project's kernel; a notebook saved with a kernel that is not
listed opens and starts without a prompt; with the front-end extension disabled the short
list still works. Screenshots go to docs/img/ with KK_SAVE_SCREENSHOTS=1.

The environments are on-disk venvs (tests/fakes.py) whose site-packages point at the test
run's (ipykernel and its dependencies), so each kernel really runs, as that environment's
interpreter; building 300 of them takes a second.
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


def _unavailable(message: str) -> None:
    if os.environ.get("KK_REQUIRE_HUB") == "1":
        pytest.fail(message)
    pytest.skip(message)


def runnable_venv(prefix: Path) -> Path:
    fakes.venv(prefix, ipykernel=True)
    site = next(prefix.glob("lib/python*/site-packages"))
    (site / "test-run.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return prefix


class Lab:
    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token

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
        name = f"{WORDS[i % len(WORDS)]}-{i:03d}"
        out[name] = runnable_venv(fakes.project(projects / name) / ".venv")
    # Quiet JupyterLab: no news toast over the screenshots.
    settings = Path(os.environ["JUPYTER_CONFIG_DIR"]) / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    return out


def lab_server(tmp_path: Path, root: Path, *, extension: bool = True) -> Iterator[Lab]:
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
        sys.executable, "-m", "jupyterlab", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", "--ServerApp.open_browser=False",
        f"--ServerApp.root_dir={root}", "--allow-root",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]  # fmt: skip
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=root)
    lab = Lab(f"http://127.0.0.1:{port}", token)
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


def test_short_launcher_picker_and_unlisted_notebooks(farm: dict[str, Path], tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=UI_TIMEOUT)  # Playwright's `expect` would give up after 5 s
    minor = fakes.MINOR
    hidden = f"venv-{WORDS[7]}-007-py{minor}"  # never started: not in the short list
    notebook = tmp_path / "saved.ipynb"
    notebook.write_text(
        json.dumps(
            {
                "cells": [{"cell_type": "code", "source": "", "metadata": {}, "outputs": [], "execution_count": None}],
                "metadata": {"kernelspec": {"name": hidden, "display_name": "x", "language": "python"}},
                "nbformat": 4,
                "nbformat_minor": 5,
            }
        )
    )
    shots: dict[str, Path] = {}
    with sync_playwright() as p:
        for lab in lab_server(tmp_path, tmp_path):
            catalog = lab.api("/kernelkeeper/kernels")["kernels"]
            assert sum(1 for k in catalog if k["startable"]) > 300, "the farm is there"
            assert hidden not in lab.api("/api/kernelspecs")["kernelspecs"]
            context = browser(p, tmp_path / "profile")
            try:
                page = context.pages[0] if context.pages else context.new_page()
                page.goto(f"{lab.url}/lab?reset&token={lab.token}")
                cards = page.locator('.jp-LauncherCard[data-category="Notebook"]')
                all_kernels = cards.filter(has_text="All kernels")
                expect(all_kernels).to_have_count(1)
                # The launcher's tiles fit one 1600×1000 screen: the last tile's bottom is on it.
                last = page.locator(".jp-LauncherCard").last
                box = last.bounding_box()
                assert box is not None and box["y"] + box["height"] <= 1000, box
                assert cards.count() < 10, cards.all_inner_texts()
                shots["lab-launcher.png"] = tmp_path / "lab-launcher.png"
                page.screenshot(path=str(shots["lab-launcher.png"]))

                # One search (4 letters), Enter: the project's kernel, idle, its interpreter.
                all_kernels.click()
                search = page.locator(".kk-picker-search")
                expect(search).to_be_focused()
                search.type(PROJECT[:4])
                expect(page.locator(".kk-picker-item").first).to_contain_text(PROJECT)
                shots["lab-picker.png"] = tmp_path / "lab-picker.png"
                page.screenshot(path=str(shots["lab-picker.png"]))
                page.keyboard.press("Enter")
                expect(page.locator("#jp-main-statusbar")).to_contain_text(idle(PROJECT, minor))
                _run_and_check(page, expect, farm[PROJECT])

                # The stock "Change Kernel…" now opens the picker.
                page.locator("#jp-main-statusbar").get_by_role("button", name=idle(PROJECT, minor)).click()
                expect(page.locator(".kk-picker-search")).to_be_visible()
                page.keyboard.press("Escape")

                # A notebook saved with a kernel that is not listed opens and starts, no prompt.
                page.goto(f"{lab.url}/lab/tree/saved.ipynb?token={lab.token}")
                expect(page.locator("#jp-main-statusbar")).to_contain_text(idle(f"{WORDS[7]}-007", minor))
                expect(page.locator(".jp-Dialog")).to_have_count(0)
                _run_and_check(page, expect, farm[f"{WORDS[7]}-007"])
            finally:
                context.close()

        # The front-end extension disabled: the stock launcher shows the short list, now with the
        # kernels started above (recent), and they start. (A notebook naming a kernel that is not
        # listed gets JupyterLab's own "Select Kernel" prompt here: see docs/lab-extension.md.)
        notebook.write_text(notebook.read_text().replace(hidden, f"venv-{PROJECT}-py{minor}"))
        for lab in lab_server(tmp_path, tmp_path, extension=False):
            context = browser(p, tmp_path / "profile-stock")
            try:
                page = context.pages[0] if context.pages else context.new_page()
                page.goto(f"{lab.url}/lab?reset&token={lab.token}")
                cards = page.locator('.jp-LauncherCard[data-category="Notebook"]')
                expect(cards.filter(has_text=f"{PROJECT} (venv")).to_have_count(1)
                expect(cards.filter(has_text="All kernels")).to_have_count(0)
                assert cards.count() < 10, cards.all_inner_texts()
                shots["lab-launcher-stock.png"] = tmp_path / "lab-launcher-stock.png"
                page.screenshot(path=str(shots["lab-launcher-stock.png"]))
                page.goto(f"{lab.url}/lab/tree/saved.ipynb?token={lab.token}")
                expect(page.locator("#jp-main-statusbar")).to_contain_text(f"{PROJECT} (venv · {minor}) | Idle")
                _run_and_check(page, expect, farm[PROJECT])
            finally:
                context.close()
    save(shots)


def idle(project: str, minor: str) -> re.Pattern[str]:
    """The status bar with the kernel idle. A kernel started by name that was not in the list the page
    loaded shows under its name (JupyterLab reads display names from that list) until the next reload."""
    return re.compile(rf"({re.escape(project)} \(venv · {minor}\)|venv-{re.escape(project)}-py{minor}) \| Idle")


def _run_and_check(page: Any, expect: Any, prefix: Path) -> None:
    panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")  # the notebook in front, not an earlier tab
    cell = panel.locator(".jp-Cell").first.locator(".cm-content")
    cell.click()
    page.keyboard.type("import sys; print(sys.executable)")
    page.keyboard.press("Shift+Enter")
    output = panel.locator(".jp-OutputArea-output").first
    python = str(prefix / "bin" / "python")
    expect(output).to_contain_text(python)
