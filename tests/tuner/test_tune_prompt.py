"""`infertune tune` measures the prompts eval sends, records them in the profile, and never
reuses a study measured on other prompts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import optuna
import pytest

from commands.main import main
from engines.errors import ConfigError
from engines.synthetic import resolve_model
from tuner.measurement.workload import build_workload
from tuner.search.tuning import _check_same_workload


@pytest.fixture(scope="module")
def chat_model(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("chat") / "tiny"
    shutil.copytree(resolve_model("synthetic:tiny"), folder)
    return str(folder)


def test_the_profile_records_the_prompt_settings_it_was_tuned_under(
    chat_model: str, tmp_path: Path
) -> None:
    profiles = tmp_path / "profiles"
    argv = ["tune", "--model", chat_model, "--dataset", "synthetic", "--count", "2",
            "--canary-size", "2", "--max-new-tokens", "4", "--n-trials", "1",
            "--backend", "transformers", "--system-prompt", "Be brief.", "--stop", "\n\n",
            "--profiles-dir", str(profiles)]  # fmt: skip
    assert main(argv) == 0
    [path] = profiles.rglob("*.json")
    workload = json.loads(path.read_text())["workload"]
    assert workload["prompt"] == {
        "template": workload["prompt"]["template"],
        "apply_chat_template": True,  # auto, resolved from the tokenizer before recording
        "system_prompt": "Be brief.",
        "stop": ["\n\n"],
        "max_new_tokens": 4,
    }
    summaries = optuna.get_all_study_summaries(f"sqlite:///{path.parent / 'studies.db'}")
    # the tuning study, beside the storage's shared parity references
    [study] = [s for s in summaries if s.study_name != "infertune-references"]
    assert "-" + workload["key"][:8] in study.study_name  # the workload names the study


def test_a_study_measured_on_other_prompts_is_not_joined(chat_model: str) -> None:
    on = build_workload(chat_model, "synthetic", size=2, max_new_tokens=4)
    off = build_workload(chat_model, "synthetic", size=2, max_new_tokens=4, chat_template=False)
    study = optuna.create_study(study_name="shared")
    _check_same_workload(study, on)
    _check_same_workload(study, on)  # the same workload joins
    with pytest.raises(ConfigError, match="'shared' was measured on another workload"):
        _check_same_workload(study, off)


def test_speedup_notes_a_tuned_profile_measured_on_other_prompts(
    chat_model: str, tmp_path: Path
) -> None:
    from common.hardware import fingerprint, hardware_id
    from tuner.api import tuned_config
    from tuner.profiles import Profile, ProfileConfig, ProfileMetrics, save_profile

    tuned_on = build_workload(chat_model, "synthetic", size=2, max_new_tokens=4)
    here = fingerprint()
    save_profile(Profile(
        model=chat_model, hardware=here, hardware_id=hardware_id(here),
        config=ProfileConfig(backend="transformers", settings={"batch_size": 2}, batch_size=2),
        metrics=ProfileMetrics(problems_per_s=2.0, output_tokens_per_s=8.0,
                               baseline_problems_per_s=1.0, speedup=2.0, parity_agreement=1.0),
        workload=tuned_on.describe(),
    ), tmp_path)  # fmt: skip
    same, notes = tuned_config(chat_model, here, tmp_path, prompt=tuned_on.prompt_settings)
    assert same is not None and not any("prompt settings" in n for n in notes)
    other = build_workload(chat_model, "synthetic", size=2, max_new_tokens=4, stop=["x"])
    _, notes = tuned_config(chat_model, here, tmp_path, prompt=other.prompt_settings)
    assert "tuned under other prompt settings (stop [] -> ['x'])" in notes[-1]


def test_the_probe_measures_the_chat_prompt(chat_model: str) -> None:
    from types import SimpleNamespace

    from engines.tokens import encode_prompt, load_tokenizer
    from tuner.measurement.probe import _probe_lengths

    tokenizer = load_tokenizer(chat_model)
    workload = build_workload(chat_model, "synthetic", size=4, max_new_tokens=8,
                              system_prompt="Be brief.")  # fmt: skip
    lengths, request = _probe_lengths(SimpleNamespace(tokenizer=tokenizer), workload)
    assert request.messages[0] == {"role": "system", "content": "Be brief."}
    assert lengths.prompt_tokens == len(encode_prompt(tokenizer, request))
    raw = len(tokenizer(request.messages[-1]["content"])["input_ids"])
    assert lengths.prompt_tokens > raw  # the template's tokens are counted too
