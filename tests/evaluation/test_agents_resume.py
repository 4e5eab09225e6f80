"""SIGKILL solver_checker during round 2, resume: finished steps are not redone.

The kill comes from the record store (``INFERTUNE_KILL_AFTER_BATCH``) right after
an append reached the disk, so the real process dies and the real recovery path
runs.  Each agent step appends twice: the problems' states, then the runner's
batch line (with the problems that finished).  Solver-checker with two
iterations is four steps: solve, check, solve, check.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from commands.eval import main
from evaluation.records import KILL_AFTER_BATCH_ENV
from tests.evaluation.conftest import only_run_dir, problem_records

REPO = Path(__file__).resolve().parents[2]
FLAGS = ("--agent", "solver_checker", "--max_iterations", "2", "--model", "synthetic:tiny",
         "--dataset", "synthetic", "--count", "6", "--max_new_tokens", "8", "--dtype", "float32",
         "--batch_size", "4")  # fmt: skip
STATES_OF_STEP_3 = 5  # appends: step 1 -> 1, 2; step 2 -> 3, 4; step 3 -> 5 (the 2nd solve)


def _states(run_dir: Path) -> list[dict]:
    lines = (run_dir / "records.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == "agent_state"]


def test_sigkill_in_round_two_then_resume_matches_uninterrupted(tmp_path: Path) -> None:
    assert main([*FLAGS, "--results_dir", str(tmp_path / "clean")]) == 0
    clean = sorted(problem_records(only_run_dir(tmp_path / "clean")), key=lambda r: r["index"])

    env = os.environ | {KILL_AFTER_BATCH_ENV: str(STATES_OF_STEP_3), "PYTHONPATH": str(REPO)}
    killed = subprocess.run(
        [sys.executable, "-m", "evaluation.eval_agent", *FLAGS,
         "--results_dir", str(tmp_path / "crashed")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    run_dir = only_run_dir(tmp_path / "crashed")
    assert not problem_records(run_dir)
    assert max(s["step"] for s in _states(run_dir)) == 3  # round 2's solve is on disk

    assert main(["--resume", str(run_dir)]) == 0
    steps = Counter((s["id"], s["step"]) for s in _states(run_dir))
    assert set(steps.values()) == {1}  # no step was run twice
    assert sorted(step for _, step in steps) == sorted([1, 2, 3, 4] * 6)
    records = sorted(problem_records(run_dir), key=lambda r: r["index"])
    assert records == clean
    assert all(len(r["trace"]) == 4 and r["num_iterations"] == 2 for r in records)
    answers = run_dir / "answers" / "synthetic-tiny_synthetic_solver_checker_answers.json"
    assert json.loads(answers.read_text())["summary"]["num_sessions"] == 2
