"""Generated tokens/s of the engines on synthetic:small (CPU suite).

Batch 1 and batch 16 on transformers run side by side in one session so their
ratio is measured under the same load; vLLM runs at its default settings.
"""

from __future__ import annotations

import pytest

from engines import load_engine
from tests.benchmarks.conftest import replayed_requests, run_timed
from tests.conftest import requires_vllm

NUM_REQUESTS = 32


@pytest.mark.parametrize("batch_size", [1, 16])
def test_transformers_tokens_per_s(benchmark, small_model, batch_size):
    benchmark.group = "engine-throughput"
    engine = load_engine("transformers", small_model, batch_size=batch_size, dtype="float32")
    run_timed(benchmark, engine, replayed_requests(NUM_REQUESTS))


@requires_vllm
def test_vllm_tokens_per_s(benchmark, small_model):
    benchmark.group = "engine-throughput"
    with load_engine("vllm", small_model) as engine:
        run_timed(benchmark, engine, replayed_requests(NUM_REQUESTS))
