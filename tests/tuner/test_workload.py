"""The tuning workload: seeded, stable, real prompts, replayed lengths for synthetic models."""

from __future__ import annotations

import pytest

from engines.synthetic import resolve_model
from evaluation.datasets import load_problems
from evaluation.prompts import PromptSettings, prompt_text
from tuner.measurement.workload import Workload, WorkloadError, build_workload, load_tokenizer

MODEL = "synthetic:tiny"


@pytest.fixture(scope="module")
def workload() -> Workload:
    return build_workload(MODEL, "synthetic", size=12, max_new_tokens=48, num_canary=4)


def test_same_arguments_give_the_same_problems(workload):
    again = build_workload(MODEL, "synthetic", size=12, max_new_tokens=48, num_canary=4)
    other_seed = build_workload(MODEL, "synthetic", size=12, max_new_tokens=48, seed=1)
    assert again == workload
    assert other_seed.problem_ids != workload.problem_ids
    assert len(set(workload.problem_ids)) == 12


def test_prompts_are_the_evaluation_prompts(workload):
    by_id = {p.id: p for p in load_problems("synthetic", count=10_000)}
    settings = PromptSettings(max_new_tokens=48)
    for problem_id, prompt in zip(workload.problem_ids, workload.prompts, strict=True):
        assert prompt == prompt_text(by_id[problem_id], settings)


def test_replayed_lengths_are_reference_solution_tokens_clipped(workload):
    tokenizer = load_tokenizer(MODEL)
    by_id = {p.id: p for p in load_problems("synthetic", count=10_000)}
    for problem_id, length in zip(workload.problem_ids, workload.output_lengths, strict=True):
        tokens = len(tokenizer(by_id[problem_id].solution, add_special_tokens=False)["input_ids"])
        assert length == min(tokens, 48)
    requests = workload.requests()
    assert [r.target_output_tokens for r in requests] == list(workload.output_lengths)
    assert all(r.decoding.is_greedy for r in requests)


def test_real_models_generate_real_lengths():
    local = build_workload(resolve_model(MODEL), "synthetic", size=3, max_new_tokens=16)
    assert local.output_lengths is None
    assert all(r.target_output_tokens is None for r in local.requests())


def test_json_round_trip_and_description(workload):
    assert Workload.from_json(workload.to_json()) == workload
    described = workload.describe()
    assert described["num_problems"] == 12 and described["num_canary"] == 4
    assert described["replayed_output_lengths"] is True
    assert "prompts" not in described


def test_a_dataset_smaller_than_the_workload_is_refused(tmp_path):
    folder = tmp_path / "gsm8k"
    folder.mkdir()
    (folder / "test.jsonl").write_text(
        '{"question": "1+1?", "answer": "1+1=2\\n#### 2"}\n'
        '{"question": "2+2?", "answer": "2+2=4\\n#### 4"}\n'
    )
    with pytest.raises(WorkloadError, match="has 2 problems, fewer than the workload size 5"):
        build_workload(MODEL, "gsm8k", size=5, data_dir=str(tmp_path))


def test_invalid_records_name_the_field():
    with pytest.raises(WorkloadError, match="num_canary"):
        Workload(model=MODEL, dataset="d", seed=0, max_new_tokens=8, problem_ids=("a",),
                 prompts=("p",), answers=("1",), num_canary=2)  # fmt: skip
