"""Batch invariance, stopping strategies and OOM recovery of the transformers engine."""

from __future__ import annotations

import functools
import itertools

import pytest
import torch

from engines import Decoding, GenerationRequest, load_engine
from engines.tokens import encode_prompt
from tests.engines.prompts import PROMPTS

MAX_NEW = 20


@pytest.fixture(scope="module")
def reference():
    """Batch size 1, no sorting, post stopping: the plainest configuration."""
    engine = load_engine(
        "transformers",
        "synthetic:tiny",
        batch_size=1,
        sort_by_length=False,
        stopping="post",
        dtype="float32",
    )
    requests = [GenerationRequest(prompt=p, max_new_tokens=MAX_NEW) for p in PROMPTS]
    return [c[0].token_ids for c in engine.generate(requests)]


@pytest.mark.parametrize(
    ("batch_size", "sort_by_length", "stopping"),
    list(itertools.product([1, 4, 16], [True, False], ["post", "per_row"])),
)
def test_batched_greedy_equals_batch_one(reference, batch_size, sort_by_length, stopping):
    engine = load_engine(
        "transformers",
        "synthetic:tiny",
        batch_size=batch_size,
        sort_by_length=sort_by_length,
        stopping=stopping,
        dtype="float32",
    )
    requests = [GenerationRequest(prompt=p, max_new_tokens=MAX_NEW) for p in PROMPTS]
    assert [c[0].token_ids for c in engine.generate(requests)] == reference


def _early_stop_requests(engine) -> list[GenerationRequest]:
    """Each prompt with a stop string taken from early in its own greedy output."""
    free = engine.generate([GenerationRequest(prompt=p, max_new_tokens=32) for p in PROMPTS])
    requests = []
    for prompt, [completion] in zip(PROMPTS, free, strict=True):
        stop = completion.text[3:6]
        requests.append(GenerationRequest(prompt=prompt, max_new_tokens=32, stop=(stop,)))
    return requests


def test_per_row_matches_post_with_fewer_decode_steps():
    post = load_engine("transformers", "synthetic:tiny", batch_size=16, stopping="post")
    per_row = load_engine("transformers", "synthetic:tiny", batch_size=16, stopping="per_row")
    requests = _early_stop_requests(post)
    post.stats.num_decode_steps = 0
    post_out, row_out = post.generate(requests), per_row.generate(requests)
    assert [c[0].text for c in row_out] == [c[0].text for c in post_out]
    assert [c[0].finish_reason for c in row_out] == [c[0].finish_reason for c in post_out]
    assert sum(c[0].finish_reason == "stop" for c in row_out) >= len(PROMPTS) - 2
    assert post.stats.num_decode_steps == 32
    assert per_row.stats.num_decode_steps < post.stats.num_decode_steps


def test_out_of_memory_splits_batch_and_loses_nothing(monkeypatch, reference):
    engine = load_engine("transformers", "synthetic:tiny", batch_size=16)
    real_generate = engine.model.generate
    calls = []

    def generate_that_fails_on_big_batches(*args, **kwargs):
        # The lowest layer we call: a batch of more than 4 rows "does not fit".
        rows = kwargs["input_ids"].shape[0]
        calls.append(rows)
        if rows > 4:
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        return real_generate(*args, **kwargs)

    monkeypatch.setattr(engine.model, "generate", generate_that_fails_on_big_batches)
    requests = [GenerationRequest(prompt=p, max_new_tokens=MAX_NEW) for p in PROMPTS]
    outputs = engine.generate(requests)
    assert [c[0].token_ids for c in outputs] == reference
    assert engine.stats.num_oom_splits == 3  # 16 -> 8 + 8 -> 4 + 4 + 4 + 4
    assert sorted(calls) == [4, 4, 4, 4, 8, 8, 16]


def test_out_of_memory_on_one_request_is_reported(monkeypatch):
    from engines import EngineOutOfMemoryError

    engine = load_engine("transformers", "synthetic:tiny", batch_size=2)

    def always_oom(*args, **kwargs):
        raise torch.OutOfMemoryError("injected")

    monkeypatch.setattr(engine.model, "generate", always_oom)
    with pytest.raises(EngineOutOfMemoryError, match="single request"):
        engine.generate([GenerationRequest(prompt=p) for p in PROMPTS[:2]])


def test_cpu_allocator_failure_counts_as_out_of_memory(monkeypatch, reference):
    engine = load_engine("transformers", "synthetic:tiny", batch_size=16)
    real_generate = engine.model.generate

    def cpu_allocator_fails_on_big_batches(*args, **kwargs):
        # What torch's CPU allocator raises: a plain RuntimeError, not OutOfMemoryError.
        if kwargs["input_ids"].shape[0] > 8:
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to ...")
        return real_generate(*args, **kwargs)

    monkeypatch.setattr(engine.model, "generate", cpu_allocator_fails_on_big_batches)
    requests = [GenerationRequest(prompt=p, max_new_tokens=MAX_NEW) for p in PROMPTS]
    assert [c[0].token_ids for c in engine.generate(requests)] == reference
    assert engine.stats.num_oom_splits == 1


def test_other_runtime_errors_are_not_swallowed(monkeypatch):
    engine = load_engine("transformers", "synthetic:tiny", batch_size=4)

    def broken(*args, **kwargs):
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(engine.model, "generate", broken)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        engine.generate([GenerationRequest(prompt=p) for p in PROMPTS[:4]])
    assert engine.stats.num_oom_splits == 0


@pytest.mark.parametrize("batch_size", [1, 5, 16])
def test_samples_sharing_one_prefill_continue_every_prompt_correctly(reference, batch_size):
    """n=3 samples per prompt ride on one prefill whose cache is copied 3 ways.

    A top_p this small keeps only the most likely token, so every sample must
    equal the batch-1 greedy output: a wrong position, mask or cache row after
    the copy (left-padded prompts of different lengths) would change tokens.
    """
    engine = load_engine("transformers", "synthetic:tiny", batch_size=batch_size, dtype="float32")
    requests, prefills = _three_near_greedy_samples(engine, reference)
    # Each prompt went through the model once, not once per sample, except in a
    # batch of one-token prompts, which has no prefix to share (batches are
    # cut from the prompts sorted longest first).
    lengths = sorted((len(encode_prompt(engine.tokenizer, r)) for r in requests), reverse=True)
    batches = [lengths[i : i + batch_size] for i in range(0, len(lengths), batch_size)]
    unshared = sum(len(b) for b in batches if max(b) == 1)
    assert prefills["rows"] == len(PROMPTS) + 2 * unshared


def test_models_that_cannot_share_a_prefill_compute_each_sample(reference):
    """The fallback for models whose forward lacks logits_to_keep: same tokens, n prefills."""
    engine = load_engine("transformers", "synthetic:tiny", batch_size=16, dtype="float32")
    engine.shares_prefill = False
    _, prefills = _three_near_greedy_samples(engine, reference)
    assert prefills["rows"] == 3 * len(PROMPTS)


def _three_near_greedy_samples(engine, reference) -> tuple[list[GenerationRequest], dict]:
    """Generate n=3 near-greedy samples of every prompt, check each equals the greedy
    reference, and return the requests and the prefill row count."""
    near_greedy = Decoding(temperature=1.0, top_p=1e-9, n=3, seed=0)
    requests = [GenerationRequest(prompt=p, max_new_tokens=MAX_NEW, decoding=near_greedy)
                for p in PROMPTS]  # fmt: skip
    prefills = _count_forward_rows(engine)
    outputs = engine.generate(requests)
    assert [[c.token_ids for c in samples] for samples in outputs] == [[r] * 3 for r in reference]
    return requests, prefills


def _count_forward_rows(engine) -> dict[str, int]:
    """Count the rows of forward passes that start from an empty cache, calling through."""
    counts = {"rows": 0}
    forward = engine.model.forward

    # wraps keeps forward's signature, which generate() inspects (position_ids).
    @functools.wraps(forward)
    def counting(*args, **kwargs):
        cache = kwargs.get("past_key_values")
        if cache is None or cache.get_seq_length() == 0:
            counts["rows"] += kwargs.get("input_ids", args[0] if args else None).shape[0]
        return forward(*args, **kwargs)

    engine.model.forward = counting
    return counts
