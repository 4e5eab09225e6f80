"""Prompts, and how flags, profiles and resumed runs combine into a plan."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pytest

from commands.eval import add_arguments, parse_engine_args, request_from_args
from engines import Decoding
from engines.errors import ConfigError
from evaluation.datasets import Problem
from evaluation.plan import build_plan, engine_settings
from evaluation.prompts import PromptSettings, build_request, prompt_text
from evaluation.request import EvalRequest, ProfileSettings

PROBLEM = Problem(id="p", question="What is 2 + 3?", answer="5")


def _args(*flags: str) -> EvalRequest:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return request_from_args(parser.parse_args(list(flags)))


def _profile(backend: str, engine: dict) -> ProfileSettings:
    return ProfileSettings(path="p.json", backend=backend, engine=engine)


def test_default_prompt_asks_for_a_box() -> None:
    text = prompt_text(PROBLEM, PromptSettings())
    assert text.startswith("What is 2 + 3?\n") and text.endswith("within \\boxed{}.")
    request = build_request(PROBLEM, PromptSettings(max_new_tokens=64))
    assert request.prompt == text and request.messages is None and request.max_new_tokens == 64


def test_chat_template_builds_messages() -> None:
    settings = PromptSettings(apply_chat_template=True, system_prompt="Be brief.")
    request = build_request(PROBLEM, settings)
    assert request.prompt is None
    assert [m["role"] for m in request.messages] == ["system", "user"]


def test_prompt_settings_round_trip_and_validation() -> None:
    settings = PromptSettings(decoding=Decoding(temperature=0.7, seed=3), stop=("\n\n",))
    assert PromptSettings.from_record(settings.as_record()) == settings
    with pytest.raises(ConfigError, match="template"):
        PromptSettings(template="no placeholder")
    with pytest.raises(ConfigError, match="--system-prompt needs the chat template"):
        PromptSettings(system_prompt="x")


def test_engine_settings_layering() -> None:
    profile = _profile("vllm", {"max_num_seqs": 64, "enforce_eager": False})
    args = _args("--inference_backend", "vllm", "--batch_size", "32", "--engine_arg",
                 "enforce_eager=true", "--engine_arg", "kv_cache_memory_bytes=64")  # fmt: skip
    settings = engine_settings(args, profile, {"dtype": "float32"}, backend="vllm")
    assert settings == {"dtype": "float32", "max_num_seqs": 32, "enforce_eager": True,
                        "kv_cache_memory_bytes": 64}  # fmt: skip
    assert engine_settings(_args("--batch_size", "4")) == {"batch_size": 4}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_engine_args(["novalue"])


def test_profile_backend_applies_unless_flag_given(tmp_path: Path) -> None:
    base = ("--model", "synthetic:tiny", "--dataset", "synthetic", "--count", "2",
            "--results_dir", str(tmp_path))  # fmt: skip
    profile = _profile("vllm", {"max_num_seqs": 8})
    plan = build_plan(dataclasses.replace(_args(*base), profile=profile))
    assert plan.backend == "vllm" and plan.engine_settings["max_num_seqs"] == 8
    # vLLM is sized for this run's prompts (max_model_len) before it loads
    assert set(plan.engine_settings) == {"max_num_seqs", "max_model_len"}
    assert 0 < plan.engine_settings["max_model_len"] < 4096
    assert plan.chunk_size is not None and plan.settings["profile"] == profile.as_record()
    request = _args(*base, "--inference_backend", "transformers")
    plan = build_plan(dataclasses.replace(request, profile=profile))
    assert plan.backend == "transformers" and plan.chunk_size is None
    assert plan.engine_settings == {} and plan.settings["profile"]["ignored"] is True
    assert list(tmp_path.iterdir()) == []  # planning writes nothing


def test_missing_model_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="--model"):
        build_plan(_args("--dataset", "synthetic"))


@pytest.mark.parametrize(
    ("backend", "field"),
    [("transformers", "batch_size"), ("vllm", "max_num_seqs"),
     ("transformers_cb", "max_requests_per_batch")],
)  # fmt: skip
def test_batch_size_sets_the_backends_own_batch_setting(backend: str, field: str) -> None:
    # transformers_cb once got a `batch_size` setting, refused only at engine load
    request = _args("--backend", backend, "--batch-size", "4")
    assert engine_settings(request, backend=backend) == {field: 4}


def test_every_agent_is_an_entry_of_the_mode_table(tmp_path: Path) -> None:
    # agents once ran through a second pipeline (eval_agent); --mode NAME did not know them
    from evaluation.agents import AGENTS
    from evaluation.plan import MODES

    assert set(AGENTS) <= set(MODES)
    request = _args("--model", "synthetic:tiny", "--dataset", "synthetic", "--count", "2",
                    "--mode", "majority_vote", "--results-dir", str(tmp_path))  # fmt: skip
    plan = build_plan(request)
    assert plan.mode.name == "majority_vote" and plan.mode.is_stepwise
    assert plan.settings["agent"]["name"] == "majority_vote"
    assert plan.settings["prompt"]["decoding"]["temperature"] == 0.7  # the agent's default
