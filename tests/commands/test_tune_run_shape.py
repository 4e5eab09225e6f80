"""`infertune tune --mode majority_vote --num-runs 3 --for-count N` on synthetic:tiny: the
profile gains the mode's entry, with its wall-time figures, beside the standard one."""

from __future__ import annotations

from pathlib import Path

from commands.main import main
from tuner.profiles import list_profiles


def _tune(tmp_path: Path, *extra: str) -> list[str]:
    return ["tune", "--model", "synthetic:tiny", "--dataset", "synthetic", "--workload-size", "4",
            "--canary-size", "2", "--max-new-tokens", "4", "--n-trials", "1", "--backend",
            "transformers", "--seed", "0", "--profiles-dir", str(tmp_path / "profiles"),
            *extra]  # fmt: skip


def test_a_mode_tune_writes_its_entry_beside_the_standard_one(tmp_path: Path, capsys) -> None:
    assert main(_tune(tmp_path, "--for-count", "40")) == 0
    capsys.readouterr()
    assert main(_tune(tmp_path, "--mode", "majority_vote", "--num-runs", "3")) == 0
    printed = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    [entry] = list_profiles(tmp_path / "profiles")
    profile = entry.profile
    assert profile.mode == "standard" and set(profile.modes) == {"majority_vote/k3"}
    assert profile.metrics.for_count == 40
    voting = profile.entry("majority_vote/k3")
    assert voting.workload["samples_per_problem"] == 3
    metrics = voting.metrics
    assert metrics.for_count == 10_000  # the synthetic dataset's size: the default
    assert metrics.load_s > 0 and metrics.warmup_s >= 0
    expected = metrics.load_s + metrics.warmup_s + 10_000 / metrics.problems_per_s
    assert abs(metrics.predicted_wall_s - expected) < 1e-6 * expected
    # the summary speaks of the entry this tune made, not the standard one beside it
    assert f"{metrics.speedup:.2f}x the batch-1 reference" in printed
    assert "tuned for: majority_vote/k3, 10000 problems" in printed


def test_num_runs_without_majority_vote_is_one_line(tmp_path: Path, capsys) -> None:
    assert main(_tune(tmp_path, "--num-runs", "3")) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "--num-runs 3: only --mode majority_vote takes it" in line
    assert not (tmp_path / "profiles").exists()
