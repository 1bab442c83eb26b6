"""Issue 16: a badge per environment kind, on written kernels and on the provider's kernels."""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import pytest

import fakes
from kernelkeeper import logos
from kernelkeeper.cli import main
from kernelkeeper.logos import make
from test_listing import _server_env, projects  # noqa: F401  (fixture)

MINOR = fakes.MINOR
KINDS = ("venv", "uv", "poetry", "pipenv", "conda", "pyenv", "hatch", "pdm", "pixi", "virtualenv", "virtualenvwrapper")


def kernels_dir() -> Path:
    return Path(os.environ["JUPYTER_DATA_DIR"]) / "kernels"


def test_shipped_badges_are_what_make_draws() -> None:
    """The committed files are reproducible: `python -m kernelkeeper.logos.make` draws the same bytes."""
    drawn = make.all_badges()
    assert set(KINDS) | {"generic"} == set(drawn)
    for kind, files in drawn.items():
        assert logos.logo_files(kind) == {n: logos.HERE / kind / n for n in logos.FILES}
        for name, data in files.items():
            assert (logos.HERE / kind / name).read_bytes() == data, f"{kind}/{name}: rerun the generator"
        for name, size in (("logo-32x32.png", 32), ("logo-64x64.png", 64)):
            png = files[name]
            assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[16:24] == size.to_bytes(4, "big") * 2
        assert files["logo-svg.svg"].startswith(b"<svg ")
    labels = [label for label, _ in logos.BADGES.values()]
    colours = [colour for _, colour in logos.BADGES.values()]
    assert len(set(labels)) == len(labels) and len(set(colours)) == len(colours), "every kind looks different"


def test_badge_of_each_kind() -> None:
    assert logos.badge_kind("pyenv-virtualenv") == "pyenv"
    assert logos.badge_kind("uv-python") == "uv"
    assert logos.badge_kind("system") == "generic" and logos.badge_kind("anything") == "generic"
    assert logos.logo_dir("poetry") == logos.HERE / "poetry"


def _logos_of(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.glob("logo-*")}


def _badge(kind: str) -> dict[str, bytes]:
    return {n: p.read_bytes() for n, p in logos.logo_files(kind).items()}


def test_sync_writes_the_kinds_logos_once_and_updates_them_only_on_update(
    projects: dict[str, Path],  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["sync"]) == 0
    tango, sci = kernels_dir() / f"venv-tango-papaya-py{MINOR}", kernels_dir() / "conda-sci-py3.10"
    assert _logos_of(tango) == _badge("venv")
    assert _logos_of(sci) == _badge("conda")
    assert _badge("venv") != _badge("conda")

    stamps = {p: p.stat().st_mtime_ns for p in kernels_dir().rglob("*")}
    capsys.readouterr()
    assert main(["sync"]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in kernels_dir().rglob("*")} == stamps, "a second sync writes nothing"

    # A logo changed by hand is left alone by a sync with nothing to update...
    (tango / "logo-64x64.png").write_bytes(b"old logo")
    assert main(["sync"]) == 0
    assert (tango / "logo-64x64.png").read_bytes() == b"old logo"
    # ...and becomes the badge again when the kernel is updated (here: its interpreter moved).
    spec = json.loads((tango / "kernel.json").read_text())
    spec["argv"][0] = str(projects["tango-papaya"] / "bin" / "python-was-here")
    (tango / "kernel.json").write_text(json.dumps(spec))
    capsys.readouterr()
    assert main(["sync"]) == 0
    assert f"updated venv-tango-papaya-py{MINOR}" in capsys.readouterr().out
    assert _logos_of(tango) == _badge("venv")
    assert not [p.name for p in tango.iterdir() if p.name.startswith(".")], "no temporary file left"


def test_add_writes_the_kinds_logos(projects: dict[str, Path]) -> None:  # noqa: F811
    assert main(["add", str(projects["sci"]), "--name", "sci-here"]) == 0
    assert _logos_of(kernels_dir() / "sci-here") == _badge("conda")


def test_real_server_resources_point_at_the_kinds_badge(
    projects: dict[str, Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    """The provider's /api/kernelspecs: each kernel's logos are its kind's badge, served by jupyter_server."""
    from jupyter_server_proc import jupyter_server

    with jupyter_server(_server_env(tmp_path, {"list_all": True}), tmp_path, tmp_path / "server.log") as server:
        listed = server.kernelspecs()
        for name, kind in ((f"venv-tango-papaya-py{MINOR}", "venv"), ("conda-sci-py3.10", "conda")):
            resources = listed[name]["resources"]
            assert set(resources) == {"logo-svg", "logo-32x32", "logo-64x64"}, resources
            for key, url in resources.items():
                assert url == f"/kernelspecs/{name}/{key}.{'svg' if key == 'logo-svg' else 'png'}"
                req = urllib.request.Request(
                    f"http://127.0.0.1:{server.port}{url}", headers={"Authorization": f"token {server.token}"}
                )
                with urllib.request.urlopen(req, timeout=30) as resp:
                    assert resp.read() == _badge(kind)[url.rsplit("/", 1)[1]], (name, key)
