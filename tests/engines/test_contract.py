"""One contract, run against every engine on the same synthetic model."""

from __future__ import annotations

import pytest

from engines import Decoding, GenerationRequest, load_engine
from tests.conftest import requires_vllm
from tests.engines.prompts import PROMPTS

ENGINES = {
    "transformers": {"batch_size": 4},
    "transformers_cb": {"num_blocks": 64, "page_size": 32, "max_batch_tokens": 256},
    "vllm": {"max_num_seqs": 8, "enforce_eager": True, "kv_cache_memory_bytes": 64 << 20},
}


@pytest.fixture(
    scope="module",
    params=["transformers", "transformers_cb", pytest.param("vllm", marks=requires_vllm)],
)
def engine(request):
    with load_engine(request.param, "synthetic:tiny", **ENGINES[request.param]) as engine:
        yield engine


def greedy(prompt: str, **kwargs) -> GenerationRequest:
    return GenerationRequest(
        prompt=prompt, max_new_tokens=kwargs.pop("max_new_tokens", 16), **kwargs
    )


def test_greedy_is_deterministic_and_keeps_order(engine):
    requests = [greedy(p) for p in PROMPTS]
    first = engine.generate(requests)
    again = engine.generate(list(reversed(requests)))[::-1]
    assert [c[0].token_ids for c in first] == [c[0].token_ids for c in again]
    alone = [engine.generate([r])[0][0].token_ids for r in requests[:3]]
    assert alone == [c[0].token_ids for c in first[:3]]


def test_completion_counts_and_length_limit(engine):
    [[completion]] = engine.generate([greedy(PROMPTS[0], max_new_tokens=5)])
    assert completion.finish_reason in ("length", "eos")
    assert completion.completion_tokens <= 5
    assert completion.prompt_tokens == len(engine.tokenizer(PROMPTS[0])["input_ids"])


def test_stop_string_cuts_text_and_sets_reason(engine):
    [[full]] = engine.generate([greedy(PROMPTS[4], max_new_tokens=24)])
    stop = full.text[len(full.text) // 2 :][:3]
    assert stop.strip(), f"degenerate output {full.text!r}"
    [[cut]] = engine.generate([greedy(PROMPTS[4], max_new_tokens=24, stop=(stop,))])
    assert cut.finish_reason == "stop"
    assert cut.text == full.text[: full.text.find(stop)]
    assert cut.completion_tokens < full.completion_tokens


def test_sampling_n_returns_n_seeded_completions(engine):
    decoding = Decoding(temperature=1.0, top_p=0.95, seed=7, n=4)
    request = greedy(PROMPTS[0], decoding=decoding)
    [samples] = engine.generate([request])
    assert len(samples) == 4
    assert len({s.token_ids for s in samples}) > 1, "4 samples at temperature 1 all identical"
    assert [s.token_ids for s in engine.generate([request])[0]] == [s.token_ids for s in samples]


def test_replayed_lengths_are_exact(engine):
    targets = [3, 17, 9, 30]
    requests = [
        greedy(p, max_new_tokens=32, target_output_tokens=t, stop=(" ",))
        for p, t in zip(PROMPTS, targets, strict=False)
    ]
    outputs = engine.generate(requests)
    assert [o[0].completion_tokens for o in outputs] == targets
    assert {o[0].finish_reason for o in outputs} == {"length"}


def test_chat_messages(engine):
    messages = ({"role": "user", "content": PROMPTS[3]},)
    [[completion]] = engine.generate([GenerationRequest(messages=messages, max_new_tokens=6)])
    assert completion.prompt_tokens > len(engine.tokenizer(PROMPTS[3])["input_ids"])
    assert completion.completion_tokens >= 1


def test_settings_are_the_engines_resolved_config(engine):
    # Every engine states what it ran with; run.json and trial results store it.
    settings = engine.settings()
    assert settings and set(ENGINES[engine.name]) <= set(settings)


def test_an_engine_without_settings_cannot_be_built():
    # settings() is part of the interface: callers never ask hasattr first.
    from engines.base import Engine

    class Silent(Engine):
        def iter_batches(self, requests):
            yield from ()

    with pytest.raises(TypeError, match="settings"):
        Silent()
