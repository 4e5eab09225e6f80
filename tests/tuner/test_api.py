"""``tuner.tune``: the notebook call behind ``infertune tune``, on synthetic:tiny."""

from __future__ import annotations

import json
import subprocess
import sys
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


def test_the_libraries_never_import_the_command_layer() -> None:
    # commands/ sits on top: it imports tuner and evaluation, never the reverse
    code = (
        "import tuner, tuner.api, tuner.profiles, tuner.sweep.runner, evaluation.eval, sys; "
        "print([m for m in sys.modules if m.split('.')[0] == 'commands'])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr[-2000:]


def test_common_imports_none_of_the_packages() -> None:
    # every package may use common, so common may use none of them (not even engines.errors)
    modules = sorted(p.stem for p in (Path(__file__).resolve().parents[2] / "common").glob("*.py"))
    code = (
        f"import sys; [__import__('common.' + m) for m in {modules!r}]; "
        "print([m for m in sys.modules if m.split('.')[0] in "
        "('engines', 'evaluation', 'tuner', 'commands')])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr[-2000:]
