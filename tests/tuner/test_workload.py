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


@pytest.fixture(scope="module")
def chat_model(tmp_path_factory) -> str:
    """synthetic:tiny's folder as a path: "auto" then reads its tokenizer's chat template."""
    import shutil

    folder = tmp_path_factory.mktemp("chat") / "tiny"
    shutil.copytree(resolve_model(MODEL), folder)
    return str(folder)


def test_requests_carry_the_chat_messages_and_stop_strings(chat_model):
    workload = build_workload(chat_model, "synthetic", size=3, max_new_tokens=16,
                              system_prompt="Be brief.", stop=["\n\n"])  # fmt: skip
    assert workload.apply_chat_template is True  # auto: the tokenizer has a template
    for request, text in zip(workload.requests(), workload.prompts, strict=True):
        assert request.prompt is None and request.stop == ("\n\n",)
        assert request.messages == (
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": text},
        )
    # what a trial subprocess receives (benchmark.run_trial sends to_json) builds the same
    assert Workload.from_json(workload.to_json()).requests() == workload.requests()
    assert workload.describe()["prompt"] == {
        "template": workload.prompt_settings.template,
        "apply_chat_template": True,
        "system_prompt": "Be brief.",
        "stop": ["\n\n"],
        "max_new_tokens": 16,
    }


def test_the_workload_key_includes_the_prompt_settings(chat_model):
    on = build_workload(chat_model, "synthetic", size=3, max_new_tokens=16)
    off = build_workload(chat_model, "synthetic", size=3, max_new_tokens=16, chat_template=False)
    stopped = build_workload(chat_model, "synthetic", size=3, max_new_tokens=16, stop=["x"])
    assert off.requests()[0].prompt == on.prompts[0]
    assert len({on.key, off.key, stopped.key}) == 3
    assert on.key == build_workload(chat_model, "synthetic", size=3, max_new_tokens=16).key


def test_synthetic_models_keep_raw_prompts_by_default(workload):
    # random weights read no template: their figures stay comparable with earlier runs
    assert workload.apply_chat_template is False
    assert all(r.prompt is not None for r in workload.requests())
    with pytest.raises(WorkloadError, match="system_prompt needs apply_chat_template"):
        Workload(model=MODEL, dataset="d", seed=0, max_new_tokens=8, problem_ids=("a",),
                 prompts=("p",), answers=("1",), num_canary=1, system_prompt="S")  # fmt: skip
