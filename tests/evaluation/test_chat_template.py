"""The chat template is on by default when the tokenizer has one, recorded resolved, and a
profile tuned under other prompt settings is applied with a warning, never silently."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from common.hardware import fingerprint, hardware_id
from engines.errors import ConfigError
from engines.synthetic import resolve_model
from evaluation.plan import build_plan
from evaluation.prompts import resolve_chat_template
from evaluation.request import EvalRequest
from tests.evaluation.conftest import only_run_dir
from tuner.measurement.workload import build_workload
from tuner.profiles import Profile, ProfileConfig, ProfileMetrics, save_profile


@pytest.fixture(scope="module")
def with_template(tmp_path_factory) -> str:
    """synthetic:tiny's folder given as a path: a model like any other, with a chat template."""
    folder = tmp_path_factory.mktemp("chat") / "tiny"
    shutil.copytree(resolve_model("synthetic:tiny"), folder)
    return str(folder)


@pytest.fixture(scope="module")
def without_template(tmp_path_factory, with_template) -> str:
    folder = tmp_path_factory.mktemp("plain") / "tiny"
    shutil.copytree(with_template, folder)
    (folder / "chat_template.jinja").unlink(missing_ok=True)
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config.pop("chat_template", None)
    config_path.write_text(json.dumps(config))
    return str(folder)


def test_auto_follows_the_tokenizer(with_template, without_template) -> None:
    assert resolve_chat_template(None, with_template) is True
    assert resolve_chat_template(None, without_template) is False
    # random weights keep raw prompts, so their figures stay comparable with earlier runs
    assert resolve_chat_template(None, "synthetic:tiny") is False
    assert resolve_chat_template(False, with_template) is False  # an explicit choice wins


def test_a_system_prompt_needs_the_template(with_template, without_template) -> None:
    with pytest.raises(ConfigError, match="--chat-template is off"):
        resolve_chat_template(False, with_template, system_prompt="Be brief.")
    with pytest.raises(ConfigError, match="has no chat template by default"):
        resolve_chat_template(None, without_template, system_prompt="Be brief.")


def _request(tmp_path: Path, model: str, **values) -> EvalRequest:
    return EvalRequest(model=model, dataset="synthetic", count=2, max_new_tokens=8,
                       results_dir=tmp_path, **values)  # fmt: skip


def test_the_plan_records_the_resolved_value_and_a_resume_keeps_it(
    tmp_path: Path, with_template
) -> None:
    plan = build_plan(_request(tmp_path, with_template, system_prompt="Be brief.", stop=("\n\n",)))
    prompt = plan.settings["prompt"]
    assert prompt["apply_chat_template"] is True  # never "auto" or None
    assert prompt["system_prompt"] == "Be brief." and prompt["stop"] == ["\n\n"]
    stored = {**plan.settings, "prompt": {**prompt, "apply_chat_template": False,
                                          "system_prompt": None}}  # fmt: skip
    plan.run_dir.mkdir(parents=True)
    (plan.run_dir / "run.json").write_text(json.dumps(stored))
    resumed = build_plan(EvalRequest(resume=plan.run_dir))
    assert resumed.settings["prompt"]["apply_chat_template"] is False


def _save_profile(root: Path, *, chat_template: bool) -> Path:
    """A profile as `infertune tune` records it: the workload's own description."""
    workload = build_workload("synthetic:tiny", "synthetic", size=4, num_canary=2,
                              max_new_tokens=12, chat_template=chat_template)  # fmt: skip
    hardware = fingerprint()
    profile = Profile(
        model="synthetic:tiny",
        hardware=hardware,
        hardware_id=hardware_id(hardware),
        config=ProfileConfig(backend="transformers", settings={"batch_size": 2}, batch_size=2),
        metrics=ProfileMetrics(problems_per_s=2.0, output_tokens_per_s=20.0,
                               baseline_problems_per_s=1.0, speedup=2.0, parity_agreement=1.0),
        workload=workload.describe(),
    )  # fmt: skip
    return save_profile(profile, root)


def test_profile_tuned_with_the_template_warns_when_eval_turns_it_off(
    run_eval, tmp_path: Path, capsys
) -> None:
    path = _save_profile(tmp_path / "profiles", chat_template=True)
    assert run_eval("--count", "2", "--profile", str(path), "--chat-template", "off") == 0
    err = capsys.readouterr().err
    [warning] = [line for line in err.splitlines() if "prompt settings" in line]
    assert warning.startswith("warning: profile ")
    assert "apply_chat_template True -> False" in warning
    settings = json.loads((only_run_dir(tmp_path / "results") / "run.json").read_text())
    assert settings["profile"]["prompt_mismatch"] == {
        "apply_chat_template": {"profile": True, "run": False}
    }
    assert settings["engine"]["batch_size"] == 2  # applied anyway: its knobs only change speed


def test_a_matching_profile_applies_without_a_warning(run_eval, tmp_path: Path, capsys) -> None:
    path = _save_profile(tmp_path / "profiles", chat_template=True)
    assert run_eval("--count", "2", "--profile", str(path), "--apply_chat_template") == 0
    assert "prompt settings" not in capsys.readouterr().err
    settings = json.loads((only_run_dir(tmp_path / "results") / "run.json").read_text())
    assert "prompt_mismatch" not in settings["profile"]
