"""``tuner.tune``: the notebook call behind ``infertune tune``, on synthetic:tiny."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import evaluation
import tuner
from tuner.profiles import eval_settings, load_profile


def test_tune_returns_the_saved_profile(tmp_path: Path) -> None:
    profile = tuner.tune(
        model="synthetic:tiny",
        dataset="synthetic",
        n_trials=2,
        budget="3m",
        count=4,
        canary_size=4,
        max_new_tokens=4,
        backends=["transformers"],
        profiles_dir=tmp_path,
        storage=f"journal:{tmp_path / 'study.log'}",
        seed=0,
        log=lambda line: None,
    )
    [path] = tmp_path.glob("synthetic-tiny/*.json")
    assert load_profile(path) == profile
    assert profile.config.backend == "transformers" and profile.metrics.parity_agreement == 1.0
    # ...and a notebook evaluates with it, as `eval --profile PATH` does
    result = evaluation.evaluate(model="synthetic:tiny", dataset="synthetic", count=4,
                                 max_new_tokens=4, results_dir=tmp_path / "results",
                                 profile=eval_settings(profile, path))  # fmt: skip
    stored = json.loads((result.run_dir / "run.json").read_text())
    assert stored["profile"]["path"] == str(path) and result.summary.num_done == 4
    assert stored["engine"]["batch_size"] == profile.config.batch_size


def test_probe_returns_the_confirmed_batch() -> None:
    result = tuner.probe(model="synthetic:tiny", dataset="synthetic", count=4,
                         max_new_tokens=4, max_batch_size=2)  # fmt: skip
    assert result.model == "synthetic:tiny" and result.confirmed_batch in (1, 2)


def test_tune_budget_is_a_duration_like_the_command_s() -> None:
    from engines.errors import ConfigError

    with pytest.raises(ConfigError, match="budget '4 trials': want a duration"):
        tuner.tune(model="synthetic:tiny", dataset="synthetic", budget="4 trials")
