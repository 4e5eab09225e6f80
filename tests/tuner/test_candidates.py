"""Candidates match the evaluation: batch sizes past the workload size, full batches.

The space and the per-trial workloads are built from the real dataset reader
and tokenizer of synthetic:tiny; no trial runs here (the tiny-budget tune in
test_tune_budget.py measures a batch of 16 on 32 problems for real).
"""

from __future__ import annotations

from engines.vllm import DEFAULT_MAX_NUM_SEQS
from tests.conftest import requires_vllm
from tuner.measurement.benchmark import workload_prefix
from tuner.measurement.workload import build_workload
from tuner.search.space import SearchSpace
from tuner.search.study import FILL_FACTOR, Objective, StudySettings
from tuner.search.tuning import pool_size

TINY = "synthetic:tiny"


def _space(max_batch_size: int | None, backends=("transformers", "vllm")) -> SearchSpace:
    return SearchSpace.for_machine(
        backends, has_gpu=False, num_gpus=0, max_batch_size=max_batch_size, max_new_tokens=8
    )


def test_batch_sizes_reach_the_probe_max_and_max_num_seqs_vllms_default():
    probed = _space(512)
    assert max(probed.batch_sizes) == 512 and max(probed.num_seqs) == 512
    small = _space(24)  # a probe that found little room: vLLM still reaches its default
    assert small.batch_sizes == (1, 2, 4, 8, 16, 24)
    assert max(small.num_seqs) == DEFAULT_MAX_NUM_SEQS
    unknown = _space(None)  # no probe: vLLM's default for both, not the workload's 64
    assert max(unknown.batch_sizes) == max(unknown.num_seqs) == DEFAULT_MAX_NUM_SEQS
    [vllm] = [c for c in small.largest_batch_configs() if c.backend == "vllm"]
    assert vllm.settings["max_num_seqs"] == DEFAULT_MAX_NUM_SEQS


def test_vllm_is_seeded_at_the_probe_max_and_searched_above_it():
    # a trial measures twice its batch: 512 sequences at 256 outlast a short CPU budget
    seeds = {c.backend: c.batch_size for c in _space(24).seed_configs()}
    assert seeds == {"transformers": 24, "vllm": 16}  # the largest max_num_seqs <= 24
    assert {c.batch_size for c in _space(None).seed_configs()} == {DEFAULT_MAX_NUM_SEQS}
    assert {c.batch_size for c in _space(512).seed_configs()} == {512}


def test_a_mode_seeds_vllm_at_k_times_the_batch_like_its_untuned_run():
    # SmolLM2, 32 svamp problems, k=5: seeded at 32 sequences the tuned entry took 258 s,
    # the untuned run's 5 x 32 = 160 took 194 s
    seeds = {c.backend: c.batch_size for c in _space(32).seed_configs(samples_per_problem=5)}
    assert seeds == {"transformers": 32, "vllm": 128}  # the largest max_num_seqs <= 160
    capped = _space(128).seed_configs(samples_per_problem=5)
    assert {c.backend: c.batch_size for c in capped} == {"transformers": 128, "vllm": 256}


def test_a_trial_never_measures_past_the_run_it_tunes_for():
    from tuner.search.objective_wall import RunShape

    workload = build_workload(TINY, "synthetic", size=40, max_new_tokens=4, num_canary=3)
    settings = StudySettings(model=TINY, trial_size=10)
    space = _space(16)
    vllm = next(c for c in space.grid() if c.backend == "vllm" and c.batch_size == 16)
    # filling 16 sequences twice would be 32; the run is 4 problems x 5 samples = 20
    short = Objective(space, workload, settings, log=print, run=RunShape(
        for_count=4, mode_key="majority_vote/k5", samples_per_problem=5))  # fmt: skip
    assert short.trial_workload(vllm).size == 20
    long = Objective(space, workload, settings, log=print, run=RunShape(for_count=400))
    assert long.trial_workload(vllm).size == 32
    # never below the trial size asked for, even for a shorter run
    tiny_run = Objective(space, workload, settings, log=print, run=RunShape(for_count=2))
    assert tiny_run.trial_workload(vllm).size == 10


def test_the_sample_is_large_enough_to_fill_the_largest_batch_twice():
    both = _space(24)
    assert pool_size("synthetic", None, 64, both, k=1) == FILL_FACTOR * 256
    assert pool_size("synthetic", None, 64, both, k=5) == 103  # 5 sequences per problem
    only_hf = _space(24, backends=("transformers",))
    assert pool_size("synthetic", None, 64, only_hf, k=1) == 64  # 2 x 24 < 64: --count
    # never more than the dataset holds, never fewer than --count
    assert pool_size("synthetic", None, 9_000, _space(8_000), k=1) == 10_000
    assert pool_size("synthetic", None, 0, both, k=1) == 0  # left for the workload to refuse


def test_each_trial_measures_a_prefix_that_keeps_its_batch_full():
    workload = build_workload(TINY, "synthetic", size=40, max_new_tokens=4, num_canary=3)
    settings = StudySettings(model=TINY, trial_size=6)
    objective = Objective(_space(16), workload, settings, log=lambda line: None)
    sizes = {}
    for config in objective.space.grid():
        sizes[config.batch_size] = objective.trial_workload(config).size
    assert sizes[1] == 6 and sizes[4] == 8 and sizes[16] == 32 and sizes[256] == 40
    prefix = workload_prefix(workload, 8)
    assert prefix.problem_ids == workload.problem_ids[:8] and prefix.num_canary == 3
    assert prefix.output_lengths == workload.output_lengths[:8]
    assert workload_prefix(workload, 100) is workload


def test_batch_1_warms_up_on_a_short_request_and_a_batch_on_a_full_one():
    # a whole request at batch 1 was a fifth of a 4-canary reference on the real model
    from engines import load_engine
    from tuner.measurement.trial_worker import WARMUP_TOKENS, _warm_up

    workload = build_workload(TINY, "synthetic", size=4, max_new_tokens=32, num_canary=2)
    with load_engine("transformers", TINY, batch_size=1) as engine:
        _warm_up(engine, workload, "transformers", {"batch_size": 1})
        assert engine.stats.num_requests == 1
        assert 0 < engine.stats.completion_tokens <= WARMUP_TOKENS
    with load_engine("transformers", TINY, batch_size=4) as engine:
        _warm_up(engine, workload, "transformers", {"batch_size": 4})
        full = sum(r.target_output_tokens or r.max_new_tokens for r in workload.requests())
        assert engine.stats.num_requests == 4 and engine.stats.completion_tokens == full


@requires_vllm
def test_vllm_warms_up_on_a_few_requests_whatever_its_max_num_seqs():
    # vLLM allocates its KV cache at start-up: a full batch of 256 was a third of its trial
    from engines import load_engine
    from tuner.measurement.trial_worker import WARMUP_REQUESTS, _warm_up

    workload = build_workload(TINY, "synthetic", size=8, max_new_tokens=8, num_canary=2)
    settings = {"max_num_seqs": 8, "enforce_eager": True, "kv_cache_memory_bytes": 64 << 20}
    with load_engine("vllm", TINY, **settings) as engine:
        _warm_up(engine, workload, "vllm", settings)
        assert engine.stats.num_requests == WARMUP_REQUESTS < 8
