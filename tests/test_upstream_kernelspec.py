"""jupyter_client's own kernelspec tests, run against the provider it is swapped for.

The provider replaces ``jupyter_client.kernelspec.KernelSpecManager`` in a
running server, so it must keep every promise of that class. This takes
``tests/test_kernelspec.py`` (and the local helpers it imports) from the sdist
of the installed jupyter_client, and runs it in a pytest subprocess three times:

- ``stock``: jupyter_client untouched, the control run;
- ``provider``: ``KernelSpecManager`` is a `KernelKeeperSpecManager` subclass
  (tests/upstream_shim/kk_upstream_patch.py) with the shipping defaults and
  nothing for it to add: it must behave exactly like the stock class;
- ``provider-env``: the same, and each test's HOME holds one venv with
  ipykernel, so one dynamic kernel is listed. A test that fails here only
  because that extra kernel is listed is an expected difference; it is
  printed, never hidden.

The upstream tests isolate themselves with pytest-jupyter's ``jp_environ``
(HOME, Jupyter dirs and jupyter_core's system paths in tmp; a stand-in is
used when pytest-jupyter is not installed). Discovery reads HOME (temporary)
and PATH, so the runs get a PATH holding no Python: the only environments the
provider can find are the ones a pass puts in HOME. Child processes the tests
start (``python -m jupyter_client.kernelspecapp remove``) get the provider too,
through the shim's sitecustomize. Upstream's CI installs ipykernel, which gives
the stock manager its native ``python3`` kernel; when ipykernel is not
importable here the shim writes that kernelspec into the tests' (temporary)
system kernels folder, so every run sees what upstream's CI sees.

The sdist is downloaded once per session with ``pip download`` (certificates
and index settings come from the environment). Everything is written under
pytest's tmp; conftest's ``fake_home`` has already moved HOME and the Jupyter
variables there.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

SHIM_DIR = Path(__file__).parent / "upstream_shim"
UPSTREAM_TEST = "tests/test_kernelspec.py"
MODES = ("stock", "provider", "provider-env")
DYNAMIC_PREFIX = "venv-demo-"  # the kernel the provider-env pass's venv gets (HOME/projects/demo/.venv)
PIP_TIMEOUT = 420  # without hatchling here, pip builds the sdist's metadata in an isolated env: slow
RUN_TIMEOUT = 240


@dataclass
class Run:
    mode: str
    manager: str
    tests: dict[str, dict[str, Any]]
    children: list[str]
    seconds: float

    def names(self, *outcomes: str) -> list[str]:
        return sorted(n for n, t in self.tests.items() if t["outcome"] in outcomes)

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for t in self.tests.values():
            counts[t["outcome"]] = counts.get(t["outcome"], 0) + 1
        text = ", ".join(f"{n} {o}" for o, n in sorted(counts.items()))
        bad = self.names("failed", "error")
        return f"{text} ({self.seconds:.1f} s)" + (f"; failed: {', '.join(bad)}" if bad else "")

    def __repr__(self) -> str:
        return f"<Run {self.mode}: {self.summary()}>"


@dataclass
class Upstream:
    version: str
    notes: list[str]
    runs: dict[str, Run]

    def __repr__(self) -> str:
        return f"<Upstream jupyter_client {self.version}: {', '.join(map(repr, self.runs.values()))}>"


def _say(capsys: pytest.CaptureFixture[str], *lines: str) -> None:
    """Print past pytest's capture, so CI logs show the counts of passing runs too."""
    with capsys.disabled():
        print()
        for line in lines:
            print(f"[upstream kernelspec] {line}")


# --- getting the upstream tests --------------------------------------------------------


def _download_sdist(version: str, dest: Path) -> Path:
    base = [sys.executable, "-m", "pip", "download", f"jupyter_client=={version}", "--no-binary", ":all:"]
    base += ["--no-deps", "--no-cache-dir", "--disable-pip-version-check", "-d", str(dest)]
    attempts = [base]
    if importlib.util.find_spec("hatchling") is not None:  # jupyter_client builds with hatchling
        attempts.insert(0, [*base, "--no-build-isolation"])
    output = ""
    for cmd in attempts:
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            output = f"{' '.join(cmd)}: no answer in {PIP_TIMEOUT} s"
            continue
        found = sorted(dest.glob("jupyter_client-*.tar.gz"))
        if proc.returncode == 0 and found:
            return found[0]
        output = proc.stdout[-2000:] + proc.stderr[-2000:]
    pytest.skip(f"could not download the jupyter_client {version} sdist from the package index:\n{output}")


def _local_imports(source: str) -> set[str]:
    """Modules of the tests package a file imports relatively (``from .utils import x``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            names.update([node.module.split(".")[0]] if node.module else [a.name for a in node.names])
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tests."):
            names.add(node.module.split(".")[1])  # type: ignore[union-attr]
    return names


def _extract(sdist: Path, dest: Path) -> list[str]:
    """The upstream test file, conftest, package __init__, helpers they import, and the pytest config."""
    with tarfile.open(sdist) as tar:
        members = {m.name.split("/", 1)[1]: m for m in tar.getmembers() if m.isfile() and "/" in m.name}

        def read(rel: str) -> str:
            f = tar.extractfile(members[rel])
            assert f is not None
            return f.read().decode("utf-8")

        wanted: list[str] = [
            rel for rel in ("pyproject.toml", "tests/__init__.py", "tests/conftest.py") if rel in members
        ]
        queue = [UPSTREAM_TEST, "tests/conftest.py"]
        while queue:
            rel = queue.pop()
            if rel not in members:
                continue
            wanted.append(rel)
            for name in _local_imports(read(rel)):
                helper = f"tests/{name}.py"
                if helper not in wanted and helper in members:
                    queue.append(helper)
        for rel in dict.fromkeys(wanted):
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            (dest / rel).write_text(read(rel), encoding="utf-8")
    return sorted(set(wanted))


# --- running them ----------------------------------------------------------------------


def _run(mode: str, source: Path, work: Path, native: bool) -> Run:
    work.mkdir()
    shim = work / "shim"
    shutil.copytree(SHIM_DIR, shim, ignore=shutil.ignore_patterns("__pycache__"))
    empty_bin = work / "bin"  # PATH without Python: discovery sees only what the pass puts in HOME
    empty_bin.mkdir()
    (work / "tmp").mkdir()
    report, children = work / "report.json", work / "children.log"
    python_path = [str(shim)]
    if importlib.util.find_spec("pytest_jupyter") is None:
        python_path.append(str(shim / "fallback"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_CORE"))}
    env.update(
        PATH=str(empty_bin),
        PYTHONPATH=os.pathsep.join(python_path),
        PYTHONDONTWRITEBYTECODE="1",
        TMPDIR=str(work / "tmp"),
        KK_UPSTREAM_MODE=mode,
        KK_UPSTREAM_REPORT=str(report),
        KK_UPSTREAM_CHILD_LOG=str(children),
        KK_UPSTREAM_NATIVE="1" if native else "0",
    )
    cmd = [sys.executable, "-m", "pytest", "-c", "pyproject.toml", "--rootdir", str(source)]
    cmd += ["-p", "kk_upstream_plugin", "-p", "no:cacheprovider", "--color=no", "-q"]
    cmd += ["--basetemp", str(work / "basetemp"), UPSTREAM_TEST]
    start = time.monotonic()
    try:
        proc = subprocess.run(
            cmd, cwd=source, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"[{mode}] the upstream tests ran longer than {RUN_TIMEOUT} s:\n{e.stdout!r}")
    seconds = time.monotonic() - start
    if proc.returncode not in (0, 1) or not report.exists():
        pytest.fail(f"[{mode}] pytest exited {proc.returncode}:\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}")
    data = json.loads(report.read_text(encoding="utf-8"))
    logged = children.read_text(encoding="utf-8").splitlines() if children.exists() else []
    return Run(mode, data["manager"], data["tests"], logged, seconds)


@pytest.fixture(scope="session")
def _upstream_cache() -> dict[str, Upstream]:
    return {}


@pytest.fixture
def upstream(
    _upstream_cache: dict[str, Upstream], tmp_path_factory: pytest.TempPathFactory, fake_home: Path
) -> Upstream:
    """Download, extract and run the upstream tests in every mode, once per session.

    Function-scoped on purpose: the first test to ask runs everything inside
    conftest's ``fake_home`` (tool variables unset, HOME and Jupyter dirs in tmp).
    """
    if "done" not in _upstream_cache:
        version = importlib.metadata.version("jupyter_client")
        root = tmp_path_factory.mktemp("upstream-kernelspec")
        sdist = _download_sdist(version, root / "sdist")
        source = root / f"jupyter_client-{version}"
        files = _extract(sdist, source)
        native = importlib.util.find_spec("ipykernel") is None
        notes = [f"jupyter_client {version}: {', '.join(files)} from {sdist.name}"]
        if native:
            notes.append("ipykernel not importable: its native python3 kernelspec is written into the tests' tmp")
        runs = {mode: _run(mode, source, root / mode, native) for mode in MODES}
        _upstream_cache["done"] = Upstream(version, notes, runs)
    return _upstream_cache["done"]


def _normal(text: str, run: Run) -> str:
    """A failure message with what differs between runs for no reason taken out."""
    text = re.sub(r"0x[0-9a-fA-F]+", "0x…", text)
    text = re.sub(r"/\S*?/(stock|provider|provider-env)/", "/<run>/", text)
    return text.replace("UpstreamShimSpecManager", "KernelSpecManager")


def _tracebacks(run: Run, names: list[str]) -> str:
    return "\n\n".join(f"=== {run.mode}: {n}\n{run.tests[n]['longrepr']}" for n in names)


# --- the tests -------------------------------------------------------------------------


def test_the_runs_exercise_what_they_claim(upstream: Upstream, capsys: pytest.CaptureFixture[str]) -> None:
    runs = upstream.runs
    _say(capsys, *upstream.notes, *(f"{m}: {r.manager}" for m, r in runs.items()))
    assert len(runs["stock"].tests) >= 10, runs["stock"].tests
    assert {m: sorted(r.tests) for m, r in runs.items()} == {m: sorted(runs["stock"].tests) for m in MODES}
    assert runs["stock"].manager.startswith("jupyter_client.kernelspec.KernelSpecManager ")
    assert not runs["stock"].children, "the stock run's child processes keep the stock class"
    for mode in ("provider", "provider-env"):
        assert "kernelkeeper.provider.KernelKeeperSpecManager" in runs[mode].manager, runs[mode].manager
        # test_remove_kernel_spec_app runs `python -m jupyter_client.kernelspecapp remove`: it gets the provider too.
        assert any("kernelspecapp" in c and "KernelKeeperSpecManager" in c for c in runs[mode].children), runs[
            mode
        ].children
    seen = {k for t in runs["provider"].tests.values() for k in t["dynamic"]}
    assert not seen, f"the provider pass must have nothing to add, yet listed {seen}"
    seen = {k for t in runs["provider-env"].tests.values() for k in t["dynamic"]}
    assert seen and all(k.startswith(DYNAMIC_PREFIX) for k in seen), seen


def test_upstream_kernelspec_tests_pass_against_the_provider(
    upstream: Upstream, capsys: pytest.CaptureFixture[str]
) -> None:
    """With nothing to add, the provider passes every upstream test the stock class passes."""
    stock, provider = upstream.runs["stock"], upstream.runs["provider"]
    _say(capsys, f"stock:    {stock.summary()}", f"provider: {provider.summary()}")
    own: list[str] = []  # fail with the provider only: provider bugs
    shared: list[str] = []  # fail the same way with the stock class
    for name in provider.names("failed", "error"):
        s, p = stock.tests[name], provider.tests[name]
        if s["outcome"] == p["outcome"] and _normal(s["message"], stock) == _normal(p["message"], provider):
            shared.append(name)
        else:
            own.append(name)
    changed = [n for n in provider.tests if provider.tests[n]["outcome"] != stock.tests[n]["outcome"]]
    changed = [n for n in changed if n not in own and n not in shared]
    assert not own and not changed, (
        f"upstream tests that fail with the provider but not with the stock KernelSpecManager: {own}; "
        f"other outcome changes: {changed}\n\n{_tracebacks(provider, own)}"
    )
    if shared:
        reasons = "; ".join(f"{n}: {provider.tests[n]['message']}" for n in shared)
        pytest.xfail(f"fail identically with the stock KernelSpecManager (not the provider's doing): {reasons}")


def test_upstream_kernelspec_tests_with_a_discovered_environment(
    upstream: Upstream, capsys: pytest.CaptureFixture[str]
) -> None:
    """One venv in HOME: the only new failures allowed are ones caused by its kernel being listed."""
    provider, with_env = upstream.runs["provider"], upstream.runs["provider-env"]
    new = [n for n in with_env.names("failed", "error") if provider.tests[n]["outcome"] not in ("failed", "error")]
    expected = [n for n in new if DYNAMIC_PREFIX in with_env.tests[n]["longrepr"]]
    unexpected = [n for n in new if n not in expected]
    fixed = [n for n in provider.names("failed", "error") if with_env.tests[n]["outcome"] == "passed"]
    _say(
        capsys,
        f"provider-env: {with_env.summary()}",
        "expected differences (fail only because the discovered venv's kernel is listed): "
        + (", ".join(f"{n} [{with_env.tests[n]['message']}]" for n in expected) or "none"),
    )
    assert not unexpected and not fixed, (
        f"with a discovered venv, new failures not about its kernel: {unexpected}; "
        f"passing only with it: {fixed}\n\n{_tracebacks(with_env, unexpected)}"
    )
