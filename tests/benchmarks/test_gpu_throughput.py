"""Generated tokens/s on one GPU (GPU suite): synthetic:qwen2.5-1.5b.

Transformers at batch sizes 1, 16 and 64, and vLLM with ``max_num_seqs=64``,
each on replayed (fixed, uneven) output lengths.  The cases are one table,
:data:`CASES`, run by one function, :func:`run_case`, that builds requests and
times them with the same helpers as the CPU suite (``replayed_requests``,
``run_timed``: warm-up, device sync inside the timed function, ``*_per_s`` in
``extra_info`` for ``infertune bench-gate``).

The GPU tests are marked ``gpu`` and skip without CUDA.  So that their code is
not dead on CPU-only CI, ``test_gpu_case_runs_on_cpu`` runs every case through
the same :func:`run_case` on ``synthetic:tiny`` with a few requests.

Batch 1 runs fewer requests than the batched cases so the suite stays short
(tokens/s does not depend on the request count at batch 1).  Override the model
with ``INFERTUNE_GPU_BENCH_MODEL``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import pytest

from engines import load_engine
from tests.benchmarks.conftest import replayed_requests, run_timed
from tests.conftest import vllm_installed

GPU_MODEL = os.environ.get("INFERTUNE_GPU_BENCH_MODEL", "synthetic:qwen2.5-1.5b")
# Output lengths of the GPU cases: uneven, so batching pays for its padding.
LOW_TOKENS, HIGH_TOKENS = 32, 128


@dataclass(frozen=True, slots=True, kw_only=True)
class GpuCase:
    """One benchmarked configuration: a backend, its settings, and how many requests."""

    name: str
    backend: str
    settings: dict[str, Any] = field(default_factory=dict)
    num_requests: int

    def __post_init__(self) -> None:
        if self.num_requests < 1:
            raise ValueError(f"GpuCase.num_requests must be >= 1, got {self.num_requests}")


CASES = (
    GpuCase(name="transformers-bs1", backend="transformers", settings={"batch_size": 1},
            num_requests=4),
    GpuCase(name="transformers-bs16", backend="transformers", settings={"batch_size": 16},
            num_requests=32),
    GpuCase(name="transformers-bs64", backend="transformers", settings={"batch_size": 64},
            num_requests=128),
    GpuCase(name="vllm-seqs64", backend="vllm",
            settings={"max_num_seqs": 64, "gpu_memory_utilization": 0.85}, num_requests=256),
)  # fmt: skip


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def run_case(
    benchmark,  # noqa: ANN001 - pytest-benchmark fixture
    case: GpuCase,
    model: str,
    *,
    num_requests: int | None = None,
    low: int = LOW_TOKENS,
    high: int = HIGH_TOKENS,
    rounds: int = 2,
    **overrides: Any,
) -> dict[str, float]:
    """Load ``case`` on ``model`` (``overrides`` replace some of its settings), time it
    on replayed lengths, and return its extra_info."""
    if case.backend == "vllm" and not vllm_installed():
        pytest.skip("vLLM is not installed")
    benchmark.group = f"gpu-throughput:{model}"
    settings = case.settings | overrides
    benchmark.extra_info |= {"backend": case.backend, **settings}
    requests = replayed_requests(num_requests or case.num_requests, low=low, high=high)
    with load_engine(case.backend, model, **settings) as engine:
        return run_timed(benchmark, engine, requests, rounds=rounds)


@pytest.mark.gpu
@pytest.mark.skipif(not cuda_available(), reason="needs a CUDA GPU (none visible to torch)")
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_gpu_tokens_per_s(benchmark, case):
    info = run_case(benchmark, case, GPU_MODEL)
    assert info["generated_tokens"] > 0


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_gpu_case_runs_on_cpu(benchmark, case):
    """The GPU suite's code path (request building, timing, extra_info) on CPU."""
    # vLLM's graph compilation would cost a minute on two cores and is not what is tested.
    overrides = {"enforce_eager": True} if case.backend == "vllm" else {}
    info = run_case(
        benchmark, case, "synthetic:tiny", num_requests=4, low=4, high=8, rounds=1, **overrides
    )
    assert info["requests"] == 4
    assert benchmark.extra_info["backend"] == case.backend
