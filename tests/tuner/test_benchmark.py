"""One configuration per subprocess: measurements, and failures recorded as results.

Every trial here is a real subprocess running a real engine on synthetic:tiny;
faults are injected only at the lowest layer (the model's generate) through the
worker's documented INFERTUNE_FAULT hook.
"""

from __future__ import annotations

import pytest

from tuner.measurement.benchmark import TrialResult, parity, run_trial
from tuner.measurement.workload import build_workload

MODEL = "synthetic:tiny"


@pytest.fixture(scope="module")
def workload():
    return build_workload(MODEL, "synthetic", size=6, max_new_tokens=8, num_canary=4)


@pytest.fixture(scope="module")
def reference(workload) -> TrialResult:
    return run_trial("transformers", MODEL, {"batch_size": 1, "dtype": "float32"}, workload)


def test_a_trial_measures_the_whole_workload(reference, workload):
    assert reference.status == "ok", reference.message
    assert reference.num_problems == 6
    assert reference.output_tokens == sum(workload.output_lengths)
    assert reference.problems_per_s > 0 and reference.output_tokens_per_s > 0
    assert reference.batch_latency["count"] == 6  # one batch per problem at batch size 1
    assert reference.peak_memory_bytes > 0
    assert [len(t) for t in reference.canary_token_ids] == list(workload.output_lengths[:4])
    assert reference.engine_settings["batch_size"] == 1
    assert parity(reference, reference) == 1.0
    # load_s counts the subprocess's imports (torch alone takes longer than a tiny model's
    # generation); the warm-up is one real batch, outside the timed run
    assert reference.load_s > 0.5 and reference.warmup_s > 0
    assert reference.load_s + reference.warmup_s + reference.seconds < 60


def test_batching_keeps_float32_greedy_outputs_and_reports_progress(reference, workload):
    seen = []
    result = run_trial(
        "transformers",
        MODEL,
        {"batch_size": 4, "stopping": "post", "dtype": "float32"},
        workload,
        on_progress=lambda done, s: seen.append(done) and False,
    )
    assert result.status == "ok", result.message
    assert result.batch_latency["count"] == 2
    assert seen == [4, 6]
    assert parity(result, reference) == 1.0


def test_injected_oom_is_a_result_not_an_exception(workload):
    result = run_trial(
        "transformers",
        MODEL,
        {"batch_size": 4},
        workload,
        env={"INFERTUNE_FAULT": "oom_above_batch:1"},
    )
    assert result.status == "oom"
    assert "out of memory" in result.message
    assert result.problems_per_s == 0.0


def test_a_crash_a_timeout_a_bad_setting_and_a_prune_are_results(workload):
    crashed = run_trial(
        "transformers",
        MODEL,
        {"batch_size": 4},
        workload,
        env={"INFERTUNE_FAULT": "crash_above_batch:1"},
    )
    assert crashed.status == "crashed" and "signal 9" in crashed.message
    timed_out = run_trial("transformers", MODEL, {"batch_size": 4}, workload, time_limit_s=0.2)
    assert timed_out.status == "timeout"
    bad = run_trial("transformers", MODEL, {"batch_sise": 4}, workload)
    assert bad.status == "error" and "batch_sise" in bad.message
    pruned = run_trial(
        "transformers", MODEL, {"batch_size": 2}, workload, on_progress=lambda done, s: True
    )
    assert pruned.status == "pruned"


def test_parity_counts_answers_or_identical_tokens():
    reference = TrialResult(
        status="ok",
        problems_per_s=1.0,
        canary_answers=("4", None, None),
        canary_token_ids=((1, 2), (3,), (5,)),
    )
    same_answer = TrialResult(
        status="ok",
        problems_per_s=2.0,
        canary_answers=("4", None, None),
        canary_token_ids=((9, 9), (3,), (6,)),
    )
    assert parity(same_answer, reference) == pytest.approx(2 / 3)
    assert parity(TrialResult(status="oom"), reference) == 0.0
    with pytest.raises(ValueError, match="status"):
        TrialResult(status="exploded")
    assert TrialResult.from_dict(reference.as_dict()) == reference
    # a reference stored by an older worker (load_seconds), or a newer one (unknown fields)
    legacy = {k: v for k, v in reference.as_dict().items() if k != "load_s"}
    older = TrialResult.from_dict(legacy | {"load_seconds": 3.0, "new_field": 1})
    assert older.load_s == 3.0 and older.canary_answers == reference.canary_answers
