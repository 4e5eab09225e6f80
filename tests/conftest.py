"""Test-wide settings: offline, single-threaded OpenMP for vLLM-on-CPU, a shared model cache."""

from __future__ import annotations

import os
from pathlib import Path

# Must be set before torch/vLLM start: vLLM on CPU in one process is ~20x
# slower with more OpenMP threads than it was given cores for.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("INFERTUNE_DATA_DIR", REPO.parent / "shared" / "data"))


def vllm_installed() -> bool:
    from engines.vllm import is_available

    return is_available()


requires_vllm = pytest.mark.skipif(not vllm_installed(), reason="vLLM is not installed")
requires_data = pytest.mark.skipif(
    not DATA_DIR.is_dir(), reason=f"data folder {DATA_DIR} is absent (set INFERTUNE_DATA_DIR)"
)


def spy_on_vllm_generate(engine: object) -> list[tuple[int, list[int]]]:
    """Record each ``vllm.LLM.generate`` call of a vLLM ``engine``, then call through.

    Returns the list that fills up, one ``(number of prompts, each prompt's n)`` a call.
    """
    seen: list[tuple[int, list[int]]] = []
    real_generate = engine.llm.generate

    def spy(prompts, sampling_params, **kwargs):  # noqa: ANN001, ANN003, ANN202
        seen.append((len(prompts), [p.n for p in sampling_params]))
        return real_generate(prompts, sampling_params=sampling_params, **kwargs)

    engine.llm.generate = spy
    return seen
