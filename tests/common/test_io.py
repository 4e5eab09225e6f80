"""Atomic writes: readable by others, never half a file, the old file kept on failure."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from common.io import read_json, write_atomic, write_json


def test_written_files_are_world_readable(tmp_path: Path) -> None:
    # mkstemp's 0600 once made results and profiles unreadable to other users
    path = write_atomic(tmp_path / "sub" / "run.json", "{}")
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert path.read_text() == "{}"


def test_failure_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path, monkeypatch) -> None:
    path = write_atomic(tmp_path / "a.txt", "old")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, b"new")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_json_round_trip_keeps_non_ascii(tmp_path: Path) -> None:
    path = write_json(tmp_path / "x.json", {"question": "Wie viel ist 2 × 3?"})
    assert "×" in path.read_text(encoding="utf-8")
    assert read_json(path) == {"question": "Wie viel ist 2 × 3?"}
