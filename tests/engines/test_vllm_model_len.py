"""vLLM's ``max_model_len`` comes from the work: the tuner's trials and eval size it.

vLLM allocates its KV cache when it loads, for ``max_model_len`` tokens; on
CPU an unsized engine either wastes memory or refuses to start on a real
model (issue 11).  These tests read the length back from the loaded vLLM
engine (``model_config.max_model_len``), on a synthetic model.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engines import GenerationRequest
from engines.models import resolve_model
from engines.tokens import encode_prompt
from engines.vllm import VLLMConfig, llm_settings, on_cpu
from evaluation.datasets import load_problems
from evaluation.plan import build_plan
from evaluation.prompts import PromptSettings, build_request
from evaluation.request import EvalRequest
from tests.conftest import REPO, requires_vllm
from tuner.measurement.benchmark import run_trial
from tuner.measurement.trial_worker import engine_settings
from tuner.measurement.workload import build_workload

MODEL = "synthetic:tiny"
pytestmark = [pytest.mark.vllm, requires_vllm]


def longest_prompt(requests: list[GenerationRequest]) -> int:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(MODEL))
    return max(len(encode_prompt(tokenizer, r)) for r in requests)


def test_a_tuner_trial_loads_vllm_sized_for_its_workload() -> None:
    workload = build_workload(MODEL, "synthetic", size=3, max_new_tokens=8, num_canary=3)
    settings = {"max_num_seqs": 4, "enforce_eager": True, "kv_cache_memory_bytes": 1 << 26}
    result = run_trial("vllm", MODEL, settings, workload, time_limit_s=300)
    assert result.is_ok, result.message
    expected = longest_prompt(workload.requests()) + 8
    assert result.engine_settings["max_model_len"] == expected < 4096  # not vLLM's default
    # the searched configuration (what a profile records) stays free of it
    assert "max_model_len" not in settings


def test_a_trials_explicit_length_wins() -> None:
    workload = build_workload(MODEL, "synthetic", size=2, max_new_tokens=8, num_canary=2)
    assert engine_settings("vllm", MODEL, {"max_model_len": 300}, workload) == {
        "max_model_len": 300
    }
    assert engine_settings("transformers", MODEL, {"batch_size": 2}, workload) == {"batch_size": 2}


def test_eval_loads_vllm_sized_for_its_prompts(tmp_path: Path) -> None:
    # a subprocess: vLLM needs these variables before torch starts its threads
    env = os.environ | {"OMP_NUM_THREADS": "1", "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
                        "PYTHONPATH": str(REPO)}  # fmt: skip
    flags = ["--model", MODEL, "--dataset", "synthetic", "--count", "3",
             "--max-new-tokens", "12", "--backend", "vllm", "--engine-arg", "enforce_eager=true",
             "--engine-arg", "kv_cache_memory_bytes=67108864",
             "--results-dir", str(tmp_path)]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "evaluation.eval", *flags],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    [run_json] = tmp_path.glob("*/run.json")
    settings = json.loads(run_json.read_text())
    prompt = PromptSettings.from_record(settings["prompt"])
    requests = [build_request(p, prompt) for p in load_problems("synthetic", count=3)]
    # "engine" is what the loaded engine reports: vLLM's own model config
    assert settings["engine"]["max_model_len"] == longest_prompt(requests) + 12


def test_an_explicit_engine_arg_wins_in_eval(tmp_path: Path) -> None:
    request = EvalRequest(model=MODEL, dataset="synthetic", count=3, backend="vllm",
                          max_new_tokens=12, engine_args={"max_model_len": 999},
                          results_dir=str(tmp_path))  # fmt: skip
    assert build_plan(request).engine_settings["max_model_len"] == 999
    sized = build_plan(dataclasses.replace(request, engine_args={}))
    assert sized.engine_settings["max_model_len"] < 999


def test_a_one_step_agent_is_sized_like_a_standard_run(tmp_path: Path) -> None:
    # majority_vote sends the problems' own prompts k times: sized, not vLLM's 4,096 tokens
    # (measured on SmolLM2: it ran with 4,096 while the standard run of it had 363)
    base = EvalRequest(model=MODEL, dataset="synthetic", count=3, backend="vllm",
                       max_new_tokens=12, results_dir=str(tmp_path))  # fmt: skip
    standard = build_plan(base).engine_settings["max_model_len"]
    vote = build_plan(dataclasses.replace(base, mode="majority_vote")).engine_settings
    assert vote["max_model_len"] == standard
    # a stepwise agent's prompts grow with its steps: the engine's default stays
    stepwise = build_plan(dataclasses.replace(base, mode="solver_checker")).engine_settings
    assert "max_model_len" not in stepwise


def test_on_cpu_the_kv_cache_is_sized_in_bytes_for_the_length() -> None:
    if not on_cpu():
        pytest.skip("the CPU sizing applies without a GPU")
    config = VLLMConfig(model=MODEL, max_model_len=140)
    settings = llm_settings(config, resolve_model(MODEL))
    assert settings["max_model_len"] == 140 and "gpu_memory_utilization" not in settings
    assert settings["kv_cache_memory_bytes"] > 0


@pytest.mark.gpu
def test_on_gpu_the_memory_share_sizes_the_kv_cache() -> None:
    if on_cpu():
        pytest.skip("needs a CUDA GPU")
    config = VLLMConfig(model=MODEL, max_model_len=140, gpu_memory_utilization=0.5)
    settings = llm_settings(config, resolve_model(MODEL))
    assert settings["max_model_len"] == 140 and settings["gpu_memory_utilization"] == 0.5
    assert "kv_cache_memory_bytes" not in settings  # vLLM's own profiling decides on GPU
