"""JupyterHub for real: shared environments from the admin, per-user environments from the provider, in a browser.

The machine is built by conftest.py's `world` fixture: two shared environments registered with
`kernelkeeper add --scope system` / `--scope prefix:...`, the provider enabled with `kernelkeeper jupyter enable
--system`, and alice's and bob's own environments under their HOMEs. The tests run in file order; the last one
deletes a shared environment and one of bob's. `pytest -m hub`; KK_SAVE_SCREENSHOTS=1 also copies the
screenshots into docs/img.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

import pytest

from .hubrun import CHROMIUM, REPO, HTTPFailure, World, wait_for

pytestmark = [pytest.mark.hub, pytest.mark.timeout(240)]

UI_TIMEOUT = 60_000  # ms, for every browser step (Playwright's `expect` would give up after 5 s)
PROBE = "import sys, os, shutil; print(sys.executable, os.environ.get('VIRTUAL_ENV'), shutil.which('python'))"


def _ours(world: World, specs: dict[str, Any]) -> dict[str, Any]:
    """The kernels that run something this test made (leaves out e.g. the server's own `python3`)."""
    return {n: s for n, s in specs.items() if s["spec"]["argv"][0].startswith(str(world.base))}


def test_each_user_sees_the_shared_kernels_and_their_own_only(world: World) -> None:
    for user, server in world.servers.items():
        other = next(u for u in world.servers if u != user)
        specs = server.kernelspecs()
        visible = world.visible_to(user)
        assert set(_ours(world, specs)) == set(visible), f"{user} sees {sorted(specs)}"
        for name, env in visible.items():
            spec = specs[name]["spec"]
            assert spec["argv"][0] == env.python
            assert spec["display_name"] == env.display
            assert spec["env"]["VIRTUAL_ENV"] == str(env.prefix)
            assert spec["metadata"]["kernelkeeper"]["prefix"] == str(env.prefix)
        for env in world.shared.values():  # written by the admin, read through JUPYTER_PATH
            written = json.loads(
                (world.system / "share" / "jupyter" / "kernels" / env.kernel / "kernel.json").read_text()
            )
            assert specs[env.kernel]["spec"]["argv"] == written["argv"]
        listing = json.dumps(specs)
        assert f"/homes/{other}/" not in listing, f"{user} must not see {other}'s environments"
        assert "scratch" not in listing, "an environment without ipykernel is not a kernel"


def test_kernels_run_their_environment_activated(world: World) -> None:
    """Each user runs their own environments and one of the shared ones (alice the venv, bob the uv one)."""
    started = []
    try:
        for (user, server), shared in zip(world.servers.items(), world.shared.values()):
            for env in [shared, *world.user_envs[user].values()]:
                started.append((server, env, server.ready_kernel(env.kernel)))
                out = server.execute(started[-1][2], PROBE)
                assert out.split() == [env.python, str(env.prefix), env.python], (server.name, env.kernel, out)
    finally:
        for server in world.servers.values():
            server.stop_kernels([kernel_id for s, _, kernel_id in started if s is server])


def test_browser_launcher_and_notebook(world: World) -> None:
    """alice logs in, sees her kernels in JupyterLab's launcher, runs a cell in her own environment."""
    from playwright.sync_api import expect, sync_playwright

    user = "alice"
    mine = world.user_envs[user]["churn"]
    theirs = [e.display for e in world.user_envs["bob"].values()]
    shots = world.screenshots
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(world.base / "chromium-profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
            ],
            env={**os.environ, "KK_HUB_RUN": world.hub.marker},  # the hub's sweep also finds a stray browser
            viewport={"width": 1280, "height": 800},
            timeout=UI_TIMEOUT,
        )
        try:
            context.set_default_timeout(UI_TIMEOUT)
            page = context.pages[0] if context.pages else context.new_page()
            page.goto(f"{world.hub.url}/hub/login")
            page.fill("#username_input", user)
            page.fill("#password_input", "any password: DummyAuthenticator")
            page.click("#login_submit")
            page.wait_for_url(lambda url: "/hub/login" not in url)  # to /hub/home, or straight to the server
            page.goto(f"{world.hub.url}/user/{user}/lab?reset")

            notebook_cards = page.locator('.jp-LauncherCard[data-category="Notebook"]')
            for env in world.visible_to(user).values():
                expect(notebook_cards.filter(has_text=env.display)).to_have_count(1, timeout=UI_TIMEOUT)
            for display in theirs:
                expect(page.get_by_text(display)).to_have_count(0)
            page.screenshot(path=str(shots / "hub-launcher.png"))

            notebook_cards.filter(has_text=mine.display).click()
            # The toolbar says "idle" before the kernel is connected; the status bar names the kernel once it is.
            expect(page.locator("#jp-main-statusbar")).to_contain_text(f"{mine.display} | Idle", timeout=UI_TIMEOUT)
            cell = page.locator(".jp-Notebook .jp-Cell").first.locator(".cm-content")
            cell.click()
            page.keyboard.type("import sys, os; print(sys.executable); print(os.environ['VIRTUAL_ENV'])")
            page.keyboard.press("Shift+Enter")
            output = page.locator(".jp-OutputArea-output").first
            expect(output).to_contain_text(mine.python, timeout=UI_TIMEOUT)
            assert output.inner_text().split() == [mine.python, str(mine.prefix)]
            page.screenshot(path=str(shots / "hub-notebook.png"))
        finally:
            context.close()
    if os.environ.get("KK_SAVE_SCREENSHOTS") == "1":
        dest = REPO / "docs" / "img"
        dest.mkdir(parents=True, exist_ok=True)
        for shot in ("hub-launcher.png", "hub-notebook.png"):
            shutil.copy2(shots / shot, dest / shot)


def test_deleting_a_shared_environment_while_the_hub_runs(world: World) -> None:
    alice, bob = world.servers["alice"], world.servers["bob"]
    gone, kept = world.shared["ml"], world.shared["sci"]
    own = world.user_envs["bob"]["physics"]
    try:
        on_gone = alice.ready_kernel(gone.kernel)  # a notebook open on the environment about to go
        on_kept = bob.ready_kernel(kept.kernel)
        on_own = bob.ready_kernel(own.kernel)
        assert alice.execute(on_gone, "print(6 * 7)").strip() == "42"
        shutil.rmtree(gone.prefix)

        # The shared kernel is a written kernelspec: the provider stops listing it as soon as its interpreter
        # is gone (no restart), while `kernelkeeper list` shows the spec on disk as stale until it is pruned.
        assert not os.path.exists(gone.python)
        for server in (alice, bob):
            wait_for(lambda s=server: gone.kernel not in s.kernelspecs(), 10, f"{gone.kernel} leaving {server.name}'s")
            assert set(_ours(world, server.kernelspecs())) == set(world.visible_to(server.name)) - {gone.kernel}
        stale = world.admin("list", "--status", "stale", "--json")
        assert [(k["name"], k["status"]) for k in stale] == [(gone.kernel, "stale")], stale
        # Starting it fails: the interpreter is gone (jupyter_server answers 500, its log says why).
        with pytest.raises(HTTPFailure) as failed:
            bob.start_kernel(gone.kernel)
        assert failed.value.status == 500, failed.value
        assert f"No such file or directory: '{gone.python}'" in world.hub.tail(100_000)
        # A kernel that was already running keeps running (its interpreter is loaded; the stdlib is the base
        # Python's)...
        assert alice.execute(on_gone, "print(6 * 7)").strip() == "42"
        # ...until it is restarted: the restart cannot start the interpreter again.
        with pytest.raises(HTTPFailure) as failed:
            alice.api("POST", f"/api/kernels/{on_gone}/restart", timeout=60)
        assert failed.value.status == 500, failed.value

        # The admin prunes the stale spec; the lists stay without it, nothing restarted.
        would = world.admin("prune", "--dry-run", "--json")
        assert [a["kernel"] for a in would["actions"]] == [gone.kernel], (
            f"prune must remove {gone.kernel} only: {would}"
        )
        pruned = world.admin("prune", "--yes", "--json")
        assert [a["kernel"] for a in pruned["actions"]] == [gone.kernel], pruned
        assert not (world.system / "share" / "jupyter" / "kernels" / gone.kernel).exists()
        for server in (alice, bob):
            wait_for(lambda s=server: gone.kernel not in s.kernelspecs(), 10, f"{gone.kernel} leaving {server.name}'s")
            assert set(_ours(world, server.kernelspecs())) == set(world.visible_to(server.name)) - {gone.kernel}
        # Now a notebook asking for it gets "no such kernel" (jupyter_server: 500 and NoSuchKernel in its log).
        with pytest.raises(HTTPFailure) as failed:
            alice.start_kernel(gone.kernel)
        assert failed.value.status == 500, failed.value
        assert f"No such kernel named {gone.kernel}" in world.hub.tail(100_000)

        # Everything else still works: running kernels, and new ones.
        for kernel_id, env in ((on_kept, kept), (on_own, own)):
            assert bob.execute(kernel_id, PROBE).split() == [env.python, str(env.prefix), env.python]
        churn = world.user_envs["alice"]["churn"]
        fresh = alice.ready_kernel(churn.kernel)
        assert alice.execute(fresh, "import sys; print(sys.executable)").strip() == churn.python

        # A user's own environment is a dynamic kernel: deleted, it leaves that user's list by itself.
        thesis = world.user_envs["bob"]["thesis"]
        shutil.rmtree(thesis.prefix)
        wait_for(lambda: thesis.kernel not in bob.kernelspecs(), 15, f"{thesis.kernel} leaving bob's list")
        assert set(_ours(world, bob.kernelspecs())) == {kept.kernel, own.kernel}
        assert set(_ours(world, alice.kernelspecs())) == {
            kept.kernel,
            *(e.kernel for e in world.user_envs["alice"].values()),
        }
    finally:
        for server in (alice, bob):
            server.stop_kernels()
