"""One slug: results folders, profile folders and sweep job ids spell a model alike."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.naming import model_slug
from evaluation.results import new_run_dir
from tuner.profiles import profile_path
from tuner.sweep.jobs import tune_job


@pytest.mark.parametrize(
    ("model", "slug"),
    [
        ("synthetic:tiny", "synthetic-tiny"),
        ("Qwen/Qwen2.5-Math-1.5B", "Qwen2.5-Math-1.5B"),
        ("/models/my model/", "my-model"),
        ("C:\\models\\llama", "llama"),
        (":::", "model"),
    ],
)
def test_model_slug(model: str, slug: str) -> None:
    assert model_slug(model) == slug


def test_every_folder_uses_the_one_slug(tmp_path: Path) -> None:
    # three functions once gave "Qwen2.5-Math-1.5B", "qwen--qwen2.5-math-1.5b" and a third
    model = "Qwen/Qwen2.5-Math-1.5B"
    run = new_run_dir(tmp_path, "r1", model, "gsm8k", 10)
    assert run.name.startswith(f"r1_{model_slug(model)}_gsm8k_10_")
    assert profile_path(model, "cpu-x", tmp_path).parent.name == model_slug(model)
    assert tune_job(model).id == f"tune__{model_slug(model)}"
