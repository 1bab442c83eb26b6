"""safeio: hostile files give a clear error, never a hang or a traceback."""

from __future__ import annotations

import os
import threading
import unittest.mock
from pathlib import Path

import pytest

from kernelkeeper import safeio


def _in_thread(fn, *args):  # type: ignore[no-untyped-def]
    """Run fn with a deadline: a read that blocks (a FIFO opened without O_NONBLOCK) fails the test."""
    out: dict[str, object] = {}

    def run() -> None:
        try:
            out["value"] = fn(*args)
        except BaseException as e:
            out["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(5)
    assert not t.is_alive(), f"{fn.__name__} blocked"
    return out


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "kernel.json"
    os.mkfifo(fifo)
    out = _in_thread(safeio.load_json, fifo)
    assert isinstance(out["error"], safeio.NotARegularFile)
    assert "FIFO" in str(out["error"])


def test_folder_and_large_file_are_refused(tmp_path: Path) -> None:
    with pytest.raises(safeio.NotARegularFile, match="folder"):
        safeio.read_bytes(tmp_path)
    big = tmp_path / "big"
    big.write_bytes(b"x" * 2000)
    with pytest.raises(safeio.TooLarge):
        safeio.read_bytes(big, limit=1000)
    assert safeio.read_bytes(big, limit=2000) == b"x" * 2000


def test_deep_json_nul_and_non_utf8_are_value_errors(tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match="nested too deeply"):
        safeio.load_json(deep)
    bad = tmp_path / "config.toml"
    bad.write_bytes(b"a = '\xff'\n")
    with pytest.raises(ValueError, match="not UTF-8"):
        safeio.load_toml(bad)
    nul = tmp_path / "nul.toml"
    nul.write_bytes(b"a = 1\x00\n")
    with pytest.raises(ValueError, match="not valid TOML"):
        safeio.load_toml(nul)
    ok = tmp_path / "ok.json"
    ok.write_text('{"a": [1]}')
    assert safeio.load_json(ok) == {"a": [1]}
    assert safeio.read_text(nul) == "a = 1\x00\n"


def test_read_bytes_reads_whole_files_of_every_size_in_one_read_when_fstat_is_right(tmp_path: Path) -> None:
    """A file of the size fstat gives is read with one read (a scan reads thousands of small
    files); a file whose size fstat does not give (/proc says 0) is still read whole."""
    for size in (0, 1, 200, 1 << 16, (1 << 16) + 1, 300_000):
        path = tmp_path / f"f{size}"
        data = os.urandom(size)
        path.write_bytes(data)
        with unittest.mock.patch("os.read", wraps=os.read) as spy:
            assert safeio.read_bytes(path) == data
        assert spy.call_count == 1, size
    status = safeio.read_bytes("/proc/self/status")
    assert os.stat("/proc/self/status").st_size == 0 and b"\nPid:" in status and status.endswith(b"\n")
