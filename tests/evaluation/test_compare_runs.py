"""scripts/compare_runs.py: two real evaluation runs compared by tune's parity rule."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from commands.main import main
from tests.conftest import REPO


def _eval(results: Path, round_name: str, batch_size: int) -> Path:
    code = main(
        ["eval", "--model", "synthetic:tiny", "--dataset", "synthetic", "--count", "4",
         "--max-new-tokens", "6", "--dtype", "float32", "--batch-size", str(batch_size),
         "--round", round_name, "--results-dir", str(results)]
    )  # fmt: skip
    assert code == 0
    [folder] = results.glob(f"{round_name}_*")
    return folder


def test_batched_run_compared_with_batch_1_writes_the_report(tmp_path: Path) -> None:
    batched, single = _eval(tmp_path, "batched", 4), _eval(tmp_path, "single", 1)
    out = tmp_path / "parity.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "compare_runs.py"), str(batched), str(single),
         "--out", str(out)],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert report["run"]["engine"]["batch_size"] == 4 and report["run"]["problems"] == 4
    # fp32 on CPU: batching changes no token, so every response (the non-answering rule) agrees
    assert report["parity"]["agreement"] == 1.0 and report["parity"]["is_acceptable"]


def test_runs_with_no_problem_in_common_are_one_line_and_exit_2(tmp_path: Path) -> None:
    run = _eval(tmp_path, "one", 2)
    other = tmp_path / "other"
    other.mkdir()
    (other / "run.json").write_text((run / "run.json").read_text())
    (other / "records.jsonl").write_text("")
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "compare_runs.py"), str(run), str(other)],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2 and "share no problem" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
