"""majority_vote on vLLM: k samples are vLLM's own ``n``, one prompt per problem."""

from __future__ import annotations

from engines import Decoding, load_engine
from evaluation.agents import AgentMode, make_agent
from evaluation.datasets import load_problems
from evaluation.prompts import PromptSettings
from tests.conftest import requires_vllm, spy_on_vllm_generate

pytestmark = requires_vllm
CPU = {"enforce_eager": True, "kv_cache_memory_bytes": 64 << 20, "dtype": "float32"}


def test_majority_vote_k5_is_one_request_per_problem_with_n5() -> None:
    problems = load_problems("synthetic", count=6)
    prompt = PromptSettings(max_new_tokens=8, decoding=Decoding(temperature=0.8, seed=7))
    agent = make_agent("majority_vote", prompt=prompt, num_runs=5)
    with load_engine("vllm", "synthetic:tiny", max_num_seqs=32, **CPU) as engine:
        seen = spy_on_vllm_generate(engine)
        batches = list(AgentMode(agent=agent).run_batches(engine, problems))
    assert seen == [(6, [5] * 6)]  # one engine call, no duplicated prompts
    results = [r for batch in batches for r in batch.results]
    assert len(results) == 6
    for result in results:
        assert len(result.extra["votes"]) == 5
        assert len(result.extra["trace"][0]["responses"]) == 5
        assert sum(len(c) for c in result.extra["clusters"]) == sum(
            v is not None for v in result.extra["votes"]
        )
