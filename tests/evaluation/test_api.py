"""``evaluation.evaluate``: the notebook call behind ``infertune eval``."""

from __future__ import annotations

import json
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
