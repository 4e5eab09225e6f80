"""A sweep's eval child never outlives it, and a stopped sweep says how to continue.

Real processes: the sweep command, its eval child frozen right after its first
batch (``INFERTUNE_STOP_AFTER_BATCH``), found through the run folder's lock.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from evaluation.records import STOP_AFTER_BATCH_ENV, read_records
from evaluation.reports import ordered_problems
from evaluation.run_folder import LOCK_FILE, lock_holder
from tests.tuner.test_sweep_run import JOBS, finish, sweep, sweep_file  # noqa: F401 - a fixture
from tuner.sweep.manifest import Manifest


def _frozen_child(root: Path) -> int:
    """The pid of the first job's eval process once it froze after its first batch."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        for lock in (root / JOBS[0]).glob(f"*/{LOCK_FILE}"):
            holder = lock_holder(lock)
            if holder.startswith("pid ") and _state(int(holder[4:])) == "T":
                return int(holder[4:])
        time.sleep(0.05)
    raise AssertionError("the eval child never froze after its first batch")


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "gone"


def _wait_gone(pid: int) -> None:
    deadline = time.monotonic() + 60
    while _state(pid) not in ("gone", "Z") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _state(pid) in ("gone", "Z"), f"eval child {pid} outlived its sweep"


def _has_pending_term(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status").read_text()
    pending = int(next(line for line in status.splitlines() if line.startswith("ShdPnd:"))[7:], 16)
    return bool(pending & (1 << (signal.SIGTERM - 1)))


def _each_job_done_once(root: Path) -> None:
    entries = Manifest(root).jobs()
    for job in JOBS:
        assert entries[job]["state"] == "done"
        records, _ = read_records(root / entries[job]["folder"] / "records.jsonl")
        problems = [r for r in records if r["kind"] == "problem"]
        assert len(problems) == len(ordered_problems(records)) == 4  # none written twice


def test_a_sigkilled_sweep_takes_its_eval_child_with_it(sweep_file: Path, tmp_path: Path) -> None:  # noqa: F811
    process = sweep(sweep_file, tmp_path, env=os.environ | {STOP_AFTER_BATCH_ENV: "1"})
    child = _frozen_child(tmp_path)
    process.kill()  # the sweep alone, not its process group
    finish(process)
    _wait_gone(child)  # killed by the parent-death signal, even though it was stopped

    code, output = finish(sweep(sweep_file, tmp_path))
    assert code == 0, output
    _each_job_done_once(tmp_path)


def test_sigterm_stops_sweep_and_job_in_one_line(sweep_file: Path, tmp_path: Path) -> None:  # noqa: F811
    process = sweep(sweep_file, tmp_path, env=os.environ | {STOP_AFTER_BATCH_ENV: "1"})
    child = _frozen_child(tmp_path)
    process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 60
    while not _has_pending_term(child) and time.monotonic() < deadline:
        time.sleep(0.05)  # the sweep forwards SIGTERM to its job...
    os.kill(child, signal.SIGCONT)  # ...which handles it as it wakes
    code, output = finish(process)
    assert code == 143, output
    assert output.splitlines()[-1].startswith("infertune sweep: error: stopped by SIGTERM; run")
    assert "Traceback" not in output
    assert (tmp_path / "summary.md").exists()
    entry = Manifest(tmp_path).jobs()[JOBS[0]]
    assert entry["state"] == "pending" and entry["folder"]
    log = (tmp_path / JOBS[0] / "job.log").read_text()
    assert "stopped by SIGTERM; resume with --resume" in log  # the job wrote its reports

    code, output = finish(sweep(sweep_file, tmp_path))
    assert code == 0, output
    _each_job_done_once(tmp_path)
