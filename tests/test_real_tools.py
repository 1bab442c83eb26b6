"""Discovery over environments made by the real tools (venv, virtualenv, virtualenvwrapper,
uv, poetry, pipenv, hatch, pdm) plus faithful copies of conda, pyenv and pixi layouts.

The environments are built once per session by realenvs.build_real_home; each
entry of ``real_home.expected`` is what the tool made, checked field by field
against `kernelkeeper envs --json` run as a person would run it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

pytestmark = pytest.mark.realtools


def envs_json(real_home: Any, *args: str, python: str = sys.executable) -> list[dict[str, Any]]:
    """`kernelkeeper envs --json ARGS` run by `python` over the real home."""
    res = subprocess.run(
        [python, "-m", "kernelkeeper", "envs", "--json", *args],
        env=real_home.env,
        cwd=str(real_home.home),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    data: list[dict[str, Any]] = json.loads(res.stdout)
    return data


def under_home(real_home: Any, data: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    home = str(real_home.home)
    return {d["prefix"]: d for d in data if d["prefix"].startswith(home + os.sep)}


def test_every_real_environment_is_found_once(real_home: Any) -> None:
    found = under_home(real_home, envs_json(real_home))
    expected = real_home.by_prefix()
    assert sorted(set(expected) - set(found)) == [], "environments not found"
    assert sorted(set(found) - set(expected)) == [], "found something that is not an environment"
    data = envs_json(real_home)
    prefixes = [d["prefix"] for d in data]
    assert len(prefixes) == len(set(prefixes)), "one prefix, one environment"
    for alias in real_home.aliases:
        assert alias not in prefixes


@pytest.mark.parametrize("field", ["python", "version", "kinds", "project", "has_ipykernel", "healthy", "name"])
def test_every_field_matches_what_the_tool_made(real_home: Any, field: str) -> None:
    found = under_home(real_home, envs_json(real_home))
    wrong = []
    for prefix, want in real_home.by_prefix().items():
        got = found.get(prefix)
        if got is None:
            continue  # reported by the test above
        if got[field] != want[field]:
            wrong.append(f"{prefix}: {field} = {got[field]!r}, the tool made {want[field]!r}")
    assert wrong == []


def test_broken_ones_say_why(real_home: Any) -> None:
    found = under_home(real_home, envs_json(real_home))
    broken = [e for e in real_home.expected if not e["healthy"]]
    assert broken, "the real home holds broken environments"
    for want in broken:
        got = found[want["prefix"]]
        assert got["healthy"] is False
        assert any(want["problems_contains"] in p for p in got["problems"]), got["problems"]
    for want in real_home.expected:
        if want["healthy"]:
            assert found[want["prefix"]]["problems"] == [], want["prefix"]


def test_hazards_are_skipped_with_a_reason(real_home: Any) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "kernelkeeper", "envs", "--json"],
        env=real_home.env,
        cwd=str(real_home.home),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0
    assert "symlink loop" in res.stderr


def test_kind_filter_on_real_envs(real_home: Any) -> None:
    for kind in ("poetry", "pipenv", "hatch", "pdm", "uv", "conda", "virtualenvwrapper", "venv"):
        want = {e["prefix"] for e in real_home.expected if kind in e["kinds"]}
        got = set(under_home(real_home, envs_json(real_home, "--kind", kind)))
        assert got == want, kind
