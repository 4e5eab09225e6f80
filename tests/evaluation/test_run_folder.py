"""A run folder is resumable from its first moment and has one writer at a time.

Real processes throughout: the eval CLI in a subprocess, frozen after a batch
(``INFERTUNE_STOP_AFTER_BATCH``) or killed while its model loads, and real
``flock`` locks held by those processes.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from evaluation.records import STOP_AFTER_BATCH_ENV
from evaluation.run_folder import LOCK_FILE
from tests.evaluation.conftest import BASE_ARGS, only_run_dir, problem_records, snapshot

REPO = Path(__file__).resolve().parents[2]
FLAGS = ("--count", "8", "--batch_size", "4")  # two batches
STEM = "synthetic-tiny_synthetic_standard"

# The model load is replaced by a SIGKILL of the process: a kill at exactly that moment.
_KILLED_IN_LOAD = """
import os, signal, sys
import engines
engines.load_engine = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
from commands.eval import main
sys.exit(main(sys.argv[1:]))
"""


def _default_sigint() -> None:
    # pytest started as a shell's background job (nohup ... &) hands its children SIGINT
    # ignored, which the eval rightly keeps ignored; a Ctrl-C test needs it live.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _eval_process(*flags: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "evaluation.eval", *BASE_ARGS, *flags],
        cwd=REPO, env=os.environ | {"PYTHONPATH": str(REPO)} | (env or {}),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint,
    )  # fmt: skip


def _frozen_after_first_batch(results: Path, *flags: str) -> subprocess.Popen:
    """An eval process stopped (SIGSTOP) right after its first batch reached the disk."""
    env = {STOP_AFTER_BATCH_ENV: "1"}
    process = _eval_process(*FLAGS, *flags, "--results_dir", str(results), env=env)
    _, status = os.waitpid(process.pid, os.WUNTRACED)
    assert os.WIFSTOPPED(status), process.communicate(timeout=60)
    return process


def test_a_kill_during_model_load_leaves_a_folder_resume_accepts(run_eval, tmp_path: Path) -> None:
    results = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, "-c", _KILLED_IN_LOAD, *BASE_ARGS, *FLAGS, "--results_dir", str(results)],
        cwd=REPO, env=os.environ | {"PYTHONPATH": str(REPO)}, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == -signal.SIGKILL, done.stderr
    run_dir = only_run_dir(results)
    assert json.loads((run_dir / "run.json").read_text())["problem_ids"]
    assert problem_records(run_dir) == []

    assert run_eval("--resume", str(run_dir)) == 0
    assert len(problem_records(run_dir)) == 8


def test_a_second_writer_is_refused_naming_the_first_and_changes_nothing(
    run_eval, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    first = _frozen_after_first_batch(tmp_path / "results")
    try:
        run_dir = only_run_dir(tmp_path / "results")
        before = snapshot(run_dir)
        capsys.readouterr()
        assert run_eval("--resume", str(run_dir)) == 2
        [message] = capsys.readouterr().err.splitlines()
        assert f"is being written by pid {first.pid}" in message
        assert snapshot(run_dir) == before
    finally:
        first.kill()  # the kernel drops its lock with it: no stale lock to clean up
        first.wait(timeout=60)

    assert run_eval("--resume", str(run_dir)) == 0
    records = problem_records(run_dir)
    assert len(records) == len({r["id"] for r in records}) == 8


def test_a_lock_held_by_this_process_refuses_a_run_in_it(run_eval, tmp_path: Path, capsys) -> None:
    assert run_eval(*FLAGS) == 0
    run_dir = only_run_dir(tmp_path / "results")
    with (run_dir / LOCK_FILE).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        capsys.readouterr()
        assert run_eval("--resume", str(run_dir)) == 2
    assert f"pid {os.getpid()}" in capsys.readouterr().err


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_stops_with_one_line_reports_and_a_resumable_folder(
    run_eval, tmp_path: Path, signum: int, code: int
) -> None:
    process = _frozen_after_first_batch(tmp_path / "results")
    process.send_signal(signum)
    process.send_signal(signal.SIGCONT)  # the signal is handled as the process wakes
    _, err = process.communicate(timeout=60)
    run_dir = only_run_dir(tmp_path / "results")
    assert process.returncode == code
    name = signal.Signals(signum).name
    # the last stderr line (progress bars come before it), and no traceback
    assert err.splitlines()[-1] == (
        f"python -m evaluation.eval: error: stopped by {name}; resume with --resume {run_dir}"
    )
    assert "Traceback" not in err
    answers = json.loads((run_dir / "answers" / f"{STEM}_answers.json").read_text())
    assert answers["summary"]["num_done"] == 4  # the reports match the records so far

    assert run_eval("--resume", str(run_dir)) == 0
    assert len(problem_records(run_dir)) == 8


def test_sigterm_stops_an_agent_run_that_then_resumes(run_eval, tmp_path: Path) -> None:
    agent = ("--agent", "majority_vote", "--num_runs", "2", "--temperature", "0.7")
    process = _frozen_after_first_batch(tmp_path / "results", *agent)
    process.send_signal(signal.SIGTERM)
    process.send_signal(signal.SIGCONT)
    _, err = process.communicate(timeout=60)
    run_dir = only_run_dir(tmp_path / "results")
    assert process.returncode == 143, err
    assert err.splitlines()[-1].endswith(f"stopped by SIGTERM; resume with --resume {run_dir}")
    assert "Traceback" not in err

    assert run_eval("--resume", str(run_dir)) == 0
    records = problem_records(run_dir)
    assert len(records) == len({r["id"] for r in records}) == 8
