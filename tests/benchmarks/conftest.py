"""Shared pieces of the throughput benchmarks.

Benchmarks use fixed (replayed) output lengths so every configuration does the
same work, synchronise the device inside the timed function, and put their
throughput in ``extra_info`` under keys ending in ``_per_s`` (what
``infertune bench-gate`` compares).  Under the default ``--benchmark-disable``
they run once as smoke tests; ``--benchmark-enable`` times them.
"""

from __future__ import annotations

import pytest

from engines import GenerationRequest
from tuner.measurement.measure import synchronize


def replayed_requests(num: int, *, seed: int = 0, low: int = 16, high: int = 48):
    """``num`` prompts of mixed length with deterministic, uneven output lengths."""
    import random

    rng = random.Random(seed)
    words = [
        "Ann",
        "has",
        "apples",
        "and",
        "buys",
        "more",
        "pens",
        "for",
        "each",
        "of",
        "her",
        "friends",
        "at",
        "the",
        "market",
    ]
    requests = []
    for _ in range(num):
        prompt = " ".join(rng.choice(words) for _ in range(rng.randint(8, 60))) + " ?"
        target = rng.randint(low, high)
        requests.append(
            GenerationRequest(prompt=prompt, max_new_tokens=high, target_output_tokens=target)
        )
    return requests


def run_timed(benchmark, engine, requests, *, rounds: int = 3) -> dict[str, float]:
    """Time ``engine.generate(requests)``; record tokens/s and requests/s in extra_info."""

    def generate():
        outputs = engine.generate(requests)
        synchronize()
        return outputs

    if not benchmark.disabled:  # a smoke test (--benchmark-disable) times nothing to protect
        generate()  # warm-up: first-call allocations and lazy initialisation are not timed
    # Every round prefills its prompts, as a real run does: none are left cached.
    setup = engine.forget_cached_prompts
    outputs = benchmark.pedantic(generate, setup=setup, rounds=rounds, iterations=1)
    tokens = sum(c.completion_tokens for o in outputs for c in o)
    assert tokens == sum(r.max_tokens for r in requests), "replayed lengths were not honoured"
    info = {"generated_tokens": float(tokens), "requests": float(len(requests))}
    if benchmark.stats is not None:  # None under --benchmark-disable
        median = benchmark.stats.stats.median
        info |= {"tokens_per_s": tokens / median, "requests_per_s": len(requests) / median}
    benchmark.extra_info.update(info)
    return info


@pytest.fixture(scope="session")
def small_model() -> str:
    return "synthetic:small"
