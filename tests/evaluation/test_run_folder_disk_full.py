"""A full disk is one line and exit 2, leaves every file whole, and the run resumes.

The fault is injected at the lowest layer only: ``os.fsync`` of one chosen file
fails with ``ENOSPC`` after its data was written, as it does on a full file
system with delayed allocation, so the real recovery code runs.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from evaluation.records import read_records
from tests.evaluation.conftest import only_run_dir, problem_records

FLAGS = ("--count", "8", "--batch_size", "4")  # two batches
STEM = "synthetic-tiny_synthetic_standard"


def _fill_disk_on(monkeypatch: pytest.MonkeyPatch, name: str, after: int = 0) -> None:
    """``fsync`` of a file called ``name`` fails with ENOSPC after ``after`` good ones."""
    real_fsync, calls = os.fsync, []

    def fsync(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").rsplit("/", 1)[-1].startswith(name):
            calls.append(fd)
            if len(calls) > after:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def _one_line(capsys: pytest.CaptureFixture) -> str:
    """The error line: the last on stderr (after progress bars), alone, with no traceback."""
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("error:") == 1, err
    return err.splitlines()[-1]


def test_a_full_disk_mid_run_keeps_whole_records_and_resumes(
    run_eval, tmp_path: Path, capsys, monkeypatch
) -> None:
    _fill_disk_on(monkeypatch, "records.jsonl", after=1)  # the second batch does not fit
    capsys.readouterr()
    assert run_eval(*FLAGS) == 2
    run_dir = only_run_dir(tmp_path / "results")
    message = _one_line(capsys)
    assert f"no space left to write in {run_dir} (" in message and "MiB free)" in message
    assert message.endswith(f"then resume with --resume {run_dir}")
    path = run_dir / "records.jsonl"
    assert path.read_bytes().endswith(b"\n")  # the failed batch was cut, not left torn
    assert len(problem_records(run_dir)) == 4
    answers = json.loads((run_dir / "answers" / f"{STEM}_answers.json").read_text())
    assert answers["summary"]["num_done"] == 4  # the reports match the records kept

    monkeypatch.undo()  # space was freed
    assert run_eval("--resume", str(run_dir)) == 0
    records = problem_records(run_dir)
    assert len(records) == len({r["id"] for r in records}) == 8
    assert all(r["kind"] != "error" for r in read_records(path)[0])


def test_no_room_for_run_json_leaves_no_folder(run_eval, tmp_path: Path, capsys, monkeypatch):
    _fill_disk_on(monkeypatch, ".run.json.")  # write_atomic's temporary file
    capsys.readouterr()
    assert run_eval(*FLAGS) == 2
    message = _one_line(capsys)
    assert "no space left to write in" in message and "--resume" not in message
    assert [p for p in (tmp_path / "results").iterdir() if p.is_dir()] == []


def test_no_room_for_the_reports_keeps_the_old_ones_and_resumes(
    run_eval, tmp_path: Path, capsys, monkeypatch
) -> None:
    assert run_eval(*FLAGS) == 0
    run_dir = only_run_dir(tmp_path / "results")
    answers = run_dir / "answers" / f"{STEM}_answers.json"
    before = answers.read_bytes()
    _fill_disk_on(monkeypatch, f".{STEM}_answers.json.")
    capsys.readouterr()
    assert run_eval("--resume", str(run_dir)) == 2
    assert "no space left to write in" in _one_line(capsys)
    assert answers.read_bytes() == before  # the old report, whole
    assert not list(run_dir.rglob("*.tmp"))

    monkeypatch.undo()
    assert run_eval("--resume", str(run_dir)) == 0
