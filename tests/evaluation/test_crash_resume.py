"""SIGKILL the eval process after the first, a middle and the last batch, then resume.

The kill comes from the record store itself (``INFERTUNE_KILL_AFTER_BATCH``),
right after a batch reached the disk: the real process dies with SIGKILL and
the real recovery path runs.  The final records must equal an uninterrupted
run's, with no problem lost or duplicated.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from evaluation.records import KILL_AFTER_BATCH_ENV
from tests.evaluation.conftest import BASE_ARGS, only_run_dir, problem_records, snapshot

REPO = Path(__file__).resolve().parents[2]
FLAGS = ("--count", "12", "--batch_size", "4")  # three batches


def _killed_run(*flags: str) -> None:
    env = os.environ | {KILL_AFTER_BATCH_ENV: "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "evaluation.eval", *BASE_ARGS, *flags],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == -signal.SIGKILL, done.stderr


def test_sigkill_at_any_batch_then_resume_matches_uninterrupted(run_eval, tmp_path: Path) -> None:
    assert run_eval(*FLAGS, results=tmp_path / "clean") == 0
    clean = sorted(problem_records(only_run_dir(tmp_path / "clean")), key=lambda r: r["index"])

    results = tmp_path / "crashed"
    _killed_run(*FLAGS, "--results_dir", str(results))  # after the 1st batch
    run_dir = only_run_dir(results)
    assert len(problem_records(run_dir)) == 4
    _killed_run("--resume", str(run_dir))  # after the middle batch
    assert len(problem_records(run_dir)) == 8
    _killed_run("--resume", str(run_dir))  # after the last batch, before the reports
    assert len(problem_records(run_dir)) == 12
    assert not (run_dir / "answers").exists()

    assert run_eval("--resume", str(run_dir)) == 0  # nothing left: only the reports
    records = problem_records(run_dir)
    assert len({r["id"] for r in records}) == len(records) == 12
    assert sorted(records, key=lambda r: r["index"]) == clean
    stem = "synthetic-tiny_synthetic_standard"
    answers = json.loads((run_dir / "answers" / f"{stem}_answers.json").read_text())
    assert answers["summary"]["num_done"] == 12
    assert answers["summary"]["num_correct"] == sum(r["correct"] for r in clean)
    assert answers["summary"]["num_sessions"] == 3


def test_resume_refuses_a_run_with_a_corrupt_middle_record(
    run_eval, tmp_path: Path, capsys
) -> None:
    assert run_eval("--count", "8", "--batch_size", "4") == 0
    run_dir = only_run_dir(tmp_path / "results")
    path = run_dir / "records.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b'"kind"', b'"ki\x00d"', 1)
    path.write_bytes(b"".join(lines))
    before = snapshot(run_dir)
    capsys.readouterr()
    assert run_eval("--resume", str(run_dir)) == 2
    [message] = capsys.readouterr().err.splitlines()
    assert "records.jsonl:2: corrupt record" in message
    assert snapshot(run_dir) == before  # no record cut, no report rewritten
