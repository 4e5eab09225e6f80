"""``evaluation.evaluate``: the notebook call behind ``infertune eval``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import evaluation
from engines.errors import ConfigError


def test_evaluate_returns_the_runs_metrics_and_folder(tmp_path: Path) -> None:
    result = evaluation.evaluate(
        model="synthetic:tiny",
        dataset="synthetic",
        count=4,
        batch_size=2,
        max_new_tokens=8,
        dtype="float32",
        results_dir=tmp_path,
    )
    assert result.run_dir.parent == tmp_path and result.exit_code == 0
    assert result.summary.num_done == 4 and 0 <= result.summary.accuracy <= 1
    stored = json.loads((result.run_dir / "run.json").read_text())
    assert (
        stored["engine"]["batch_size"] == 2
        and stored["problem_ids"] == result.settings["problem_ids"]
    )


def test_bad_request_fails_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown backend 'tensorrt'"):
        evaluation.evaluate(
            model="synthetic:tiny", dataset="synthetic", backend="tensorrt", results_dir=tmp_path
        )
    assert not list(tmp_path.iterdir())


def test_importing_evaluation_loads_neither_the_tuner_nor_the_commands() -> None:
    import subprocess

    code = (
        "import evaluation.eval, evaluation.plan, sys; "
        "print([m for m in sys.modules if m.split('.')[0] in ('tuner', 'commands')])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr[-2000:]
