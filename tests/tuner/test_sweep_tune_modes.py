"""A sweep's tune step tunes for the sweep's run: its largest count and each sampled mode."""

from __future__ import annotations

from pathlib import Path

from tuner.sweep.jobs import tune_commands
from tuner.sweep.spec import load_spec

SWEEP = """\
name: t
models: [synthetic:tiny]
datasets: [{name: synthetic, count: 20}, {name: synthetic, count: 50, start: 5}]
modes: [standard, {name: majority_vote, num_runs: 3}, {name: majority_vote, num_runs: 3,
        label: mv-again}, solver_checker]
"""


def _flag(command: list[str], name: str) -> str | None:
    return command[command.index(name) + 1] if name in command else None


def test_the_tune_step_runs_once_per_mode_for_the_largest_count(tmp_path: Path) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text(SWEEP, encoding="utf-8")
    commands = tune_commands(load_spec(path, results_root=tmp_path / "out"), "synthetic:tiny")
    # solver_checker puts one sequence per problem in flight: the standard entry serves it
    assert [(_flag(c, "--mode"), _flag(c, "--num-runs")) for c in commands] == [
        ("standard", None),
        ("majority_vote", "3"),
    ]
    assert {_flag(c, "--for-count") for c in commands} == {"50"}


def test_a_whole_dataset_counts_from_its_start(tmp_path: Path) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text(
        "name: t\nmodels: [synthetic:tiny]\nmodes: [standard]\n"
        "datasets: [{name: synthetic, count: 20}, {name: synthetic, start: 9000}]\n",
        encoding="utf-8",
    )
    [command] = tune_commands(load_spec(path, results_root=tmp_path / "out"), "synthetic:tiny")
    assert _flag(command, "--for-count") == "1000"  # the 10,000 synthetic problems from 9,000
