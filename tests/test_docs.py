"""Every ```console example in README.md and docs/*.md, run, and its output's shape compared.

A ``console`` block holds ``$ command`` lines, each followed by the output it shows. The test runs
each command in one world built to match what the docs talk about (a fake HOME with the api poetry
project, the web uv project, the science conda environment, the scratch venv, and a `uv` that
writes what building an ipykernel overlay writes),
on a pseudo-terminal of ``COLUMNS`` columns, as a person would see it. Each shown line must appear,
in order, among the lines the command printed, once both are normalised: HOME is ``~`` (``/home/me``
in the docs), version numbers are ``V``, poetry's path hash is ``HASH``, runs of spaces are one.
A line ``...`` stands for lines left out. ``$ cmd   # exit 1`` says the command must exit 1
(otherwise 0). Blocks that cannot run here (sudo, a browser) are ```bash, not ```console.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import fakes
from conftest import hermetic

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
COLUMNS = 120


@dataclass(frozen=True)
class Example:
    doc: Path
    line: int
    command: str
    shown: tuple[str, ...]
    exit_code: int

    @property
    def id(self) -> str:
        return f"{self.doc.name}:{self.line}"


def examples(doc: Path) -> list[Example]:
    out: list[Example] = []
    inside = False
    current: dict[str, object] | None = None
    for number, line in enumerate(doc.read_text().splitlines(), 1):
        if line.strip() == "```console":
            inside = True
            continue
        if inside and line.strip() == "```":
            inside = False
            if current:
                out.append(Example(doc, **current))  # type: ignore[arg-type]
            current = None
            continue
        if not inside:
            continue
        if line.startswith("$ "):
            if current:
                out.append(Example(doc, **current))  # type: ignore[arg-type]
            command, _, comment = line[2:].partition("   #")
            m = re.search(r"exit (\d+)", comment)
            current = {
                "line": number,
                "command": command.strip(),
                "shown": (),
                "exit_code": int(m.group(1)) if m else 0,
            }
        else:
            assert current is not None, f"{doc.name}:{number}: output before any `$ command` in a console block"
            current["shown"] = (*current["shown"], line)  # type: ignore[misc]
    return out


def normal(line: str, home: str) -> str:
    line = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", line)  # colours: what is shown, not how
    line = line.replace(home, "~").replace("/home/me", "~")
    line = re.sub(r"-[A-Za-z0-9_-]{8}-py", "-HASH-py", line)
    line = re.sub(r"\d{4}-\d\d-\d\dT[0-9:+.Z-]+", "DATE", line)
    line = re.sub(r"\d+\.\d+(\.\d+)?", "V", line)
    return " ".join(line.split())


def test_the_docs_have_console_examples() -> None:
    every = [e for doc in DOCS for e in examples(doc)]
    by_doc = {e.doc.name for e in every}
    assert "README.md" in by_doc and len(every) >= 15, by_doc
    for e in every:
        assert e.command.startswith(("kernelkeeper", "cd ")), f"{e.id}: only kernelkeeper commands run here"


@pytest.fixture
def world(fake_home: Path, tmp_path: Path) -> dict[str, str]:
    """The machine the docs describe, in the test's fake HOME."""
    from kernelkeeper.projects import path_hash

    minor = fakes.MINOR
    api = fakes.project(fake_home / "projects" / "api", files={"pyproject.toml": '[tool.poetry]\nname = "api"\n'})
    cache = fake_home / ".cache" / "pypoetry" / "virtualenvs"
    fakes.venv(cache / f"api-{path_hash(api)}-py{minor}", tool="virtualenv", ipykernel=True)
    kernelspec = {"name": f"poetry-api-py{minor}", "display_name": f"Python {minor} (api · poetry)"}
    notebook = {"metadata": {"kernelspec": kernelspec}, "cells": []}
    (api / "analysis.ipynb").write_text(json.dumps(notebook))
    fakes.venv(fakes.project(fake_home / "projects" / "web") / ".venv", tool="uv")
    fakes.conda(fake_home / "miniconda3" / "envs" / "science", version="3.10.13", ipykernel=True)
    fakes.venv(fakes.project(fake_home / "projects" / "scratch") / ".venv")
    # PATH holds `kernelkeeper` and a `uv` that writes what `uv pip install --target DIR ipykernel` writes
    # (the real build needs the network: test_overlay.py runs it), and no Python of the machine running
    # the tests, which would show up as an environment.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    uv = bin_dir / "uv"
    uv.write_text(
        f"#!{sys.executable}\n"
        "import os, sys\n"
        "target = sys.argv[sys.argv.index('--target') + 1]\n"
        "os.makedirs(os.path.join(target, 'ipykernel'))\n"
        "info = os.path.join(target, 'ipykernel-7.4.0.dist-info')\n"
        "os.makedirs(info)\n"
        "meta = 'Metadata-Version: 2.1\\nName: ipykernel\\nVersion: 7.4.0\\n'\n"
        "open(os.path.join(info, 'METADATA'), 'w').write(meta)\n"
    )
    uv.chmod(0o755)
    wrapper = bin_dir / "kernelkeeper"
    wrapper.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m kernelkeeper "$@"\n')
    wrapper.chmod(0o755)
    env = dict(os.environ, PATH=str(bin_dir), PYTHONPATH=os.pathsep.join(sys.path), COLUMNS=str(COLUMNS))
    env.pop("VIRTUAL_ENV", None)
    return hermetic(env, tmp_path / "jupyter-root")


def run_in_pty(command: str, env: dict[str, str], cwd: Path) -> tuple[int, str]:
    import fcntl
    import pty
    import select
    import struct
    import termios
    import time

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, COLUMNS, 0, 0))
    proc = subprocess.Popen(
        ["/bin/sh", "-c", command], stdin=follower, stdout=follower, stderr=follower, env=env, cwd=cwd
    )
    os.close(follower)
    out = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    code = proc.wait(timeout=30)
    os.close(leader)
    return code, out.decode("utf-8", "replace").replace("\r\n", "\n")


def run_doc(doc: Path, world: dict[str, str], home: Path) -> list[str]:
    """Run every example of one doc in order (each may depend on the ones before); return the mismatches."""
    failures = []
    for e in examples(doc):
        code, out = run_in_pty(e.command, world, home)
        out = out.replace(world["PATH"] + "/", "")  # the world's own tools, by name as a person has them
        got = [normal(line, str(home)) for line in out.splitlines()]
        at = 0
        for shown in e.shown:
            want = normal(shown, str(home))
            if want == "...":
                continue
            while at < len(got) and got[at] != want:
                at += 1
            if at == len(got):
                failures.append(f"{e.id} `{e.command}`: no line\n  {shown}\nin what it printed:\n{out}")
                break
            at += 1
        if code != e.exit_code:
            failures.append(f"{e.id} `{e.command}` exited {code}, the doc says {e.exit_code}:\n{out}")
    return failures


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: d.name)
def test_console_examples_match_what_the_program_prints(doc: Path, world: dict[str, str], fake_home: Path) -> None:
    failures = run_doc(doc, world, fake_home)
    assert not failures, "\n\n".join(failures)


def test_the_quick_start_commands_match_ci() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = "bash .ci/setup.sh && pip install -e '.[test]' && python -m pytest"
    assert command in readme and "## Development" in readme
    assert readme.index("## Development") < readme.index(command)
    assert "bash .ci/setup.sh" in ci and "pip install -e '.[test]'" in ci and "python -m pytest" in ci


def test_docs_links_resolve() -> None:
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", doc.read_text()):
            if target.startswith(("http://", "https://")):
                continue
            assert (doc.parent / target).exists(), f"{doc.name} links to {target}, which does not exist"
