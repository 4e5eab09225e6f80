"""``tuner.tune``: the notebook call behind ``infertune tune``, on synthetic:tiny."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import tuner
from tuner.profiles import load_profile


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


def test_tune_budget_is_a_duration_like_the_command_s() -> None:
    from engines.errors import ConfigError

    with pytest.raises(ConfigError, match="budget '4 trials': want a duration"):
        tuner.tune(model="synthetic:tiny", dataset="synthetic", budget="4 trials")


def test_engines_import_neither_evaluation_nor_tuner() -> None:
    code = (
        "import engines, engines.registry, engines.base, sys; "
        "print([m for m in sys.modules if m.split('.')[0] in "
        "('evaluation', 'tuner', 'commands')])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr[-2000:]
