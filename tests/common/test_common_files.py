"""Atomic writes: the old content survives a failed write, and stale temporary files are cleaned up."""

import os

import pytest

from echostream_fairseq.common.files import TEMP_PREFIX, atomic_open, atomic_path, remove_stale_temp_files


def test_atomic_write_keeps_old_content_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_open(target) as f:
            f.write("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
    with atomic_path(tmp_path / "new.npy") as temp:
        assert temp.endswith("new.npy") and os.path.basename(temp).startswith(TEMP_PREFIX)
        open(temp, "w").write("x")
    assert (tmp_path / "new.npy").read_text() == "x"


def test_cleans_stale_temps(tmp_path):
    (tmp_path / f"{TEMP_PREFIX}abc-x.wav").write_text("partial")
    assert remove_stale_temp_files(tmp_path) == 1
    assert list(tmp_path.iterdir()) == []
    assert remove_stale_temp_files(tmp_path / "missing") == 0
