"""The eval command end to end on synthetic:tiny: files, batch invariance, retries, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from commands.eval import main
from common.hardware import fingerprint, hardware_id
from engines.transformers import TransformersEngine
from evaluation.grading import grade
from tests.evaluation.conftest import BASE_ARGS, only_run_dir, problem_records, snapshot


def test_end_to_end_files_are_consistent(run_eval, tmp_path: Path) -> None:
    assert run_eval("--count", "10", "--batch_size", "4") == 0
    run_dir = only_run_dir(tmp_path / "results")
    assert run_dir.name.startswith("t_synthetic-tiny_synthetic_10_")
    records = problem_records(run_dir)
    assert sorted(r["index"] for r in records) == list(range(10))
    stem = "synthetic-tiny_synthetic_standard"
    answers = json.loads((run_dir / "answers" / f"{stem}_answers.json").read_text())
    assert answers["problems"] == sorted(
        ({k: v for k, v in r.items() if k != "kind"} for r in records), key=lambda r: r["index"]
    )
    for problem in answers["problems"]:  # the stored verdict is the grader's
        assert grade(problem["response"], problem["gold"]).correct == problem["correct"]
        assert problem["completion_tokens"] > 0
    summary = answers["summary"]
    assert summary["num_done"] == 10
    assert summary["num_correct"] == sum(r["correct"] for r in records)
    assert summary["completion_tokens"] == sum(r["completion_tokens"] for r in records)
    settings = json.loads((run_dir / "run.json").read_text())
    assert settings["engine"]["batch_size"] == 4 and settings["prompt"]["max_new_tokens"] == 12
    assert settings["environment"]["versions"]["transformers"]
    assert settings["environment"]["hardware_id"] == hardware_id(fingerprint())
    log = (run_dir / "log" / f"{stem}.log").read_text()
    assert log.count("=====\nQuestion:") == 10 and records[0]["response"] in log
    assert "Accuracy:" in (run_dir / "metrics_standard.txt").read_text()
    assert len((run_dir / "metrics.csv").read_text().splitlines()) == 2


def test_batch_size_does_not_change_predictions(run_eval, tmp_path: Path) -> None:
    outputs = []
    for batch_size in ("1", "8"):
        results = tmp_path / f"b{batch_size}"
        assert run_eval("--count", "8", "--batch_size", batch_size, results=results) == 0
        records = sorted(problem_records(only_run_dir(results)), key=lambda r: r["index"])
        outputs.append([(r["id"], r["response"], r["predicted"]) for r in records])
    assert outputs[0] == outputs[1]


def test_failed_generation_is_retried_on_resume(
    run_eval, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = TransformersEngine.iter_batches

    def fail_after_first_batch(self, requests):
        iterator = original(self, requests)
        yield next(iterator)
        raise RuntimeError("injected device failure")

    monkeypatch.setattr(TransformersEngine, "iter_batches", fail_after_first_batch)
    assert run_eval("--count", "8", "--batch_size", "4") == 1
    run_dir = only_run_dir(tmp_path / "results")
    assert len(problem_records(run_dir)) == 4
    assert "num_failed" in (run_dir / "metrics.csv").read_text()
    monkeypatch.setattr(TransformersEngine, "iter_batches", original)
    assert run_eval("--resume", str(run_dir)) == 0
    records = problem_records(run_dir)
    assert sorted(r["index"] for r in records) == list(range(8))
    rows = (run_dir / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[1].split(",")[12] == "4" and rows[2].split(",")[12] == "0"


@pytest.fixture
def finished_run(run_eval, tmp_path: Path) -> Path:
    assert run_eval("--count", "4", "--batch_size", "4") == 0
    return only_run_dir(tmp_path / "results")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--dataset", "gsm9k"), "unknown dataset 'gsm9k'"),
        (("--count", "20000"), "which has 10000"),
        (("--dataset", "gsm8k", "--data_dir", "BAD_DATA"), "malformed JSON"),
        (("--dataset", "gsm8k", "--data_dir", "MISSING_FIELD"), "missing field(s) answer"),
        (("--results_dir", "UNWRITABLE"), "cannot write results"),
        (("--resume", "RUN", "--model", "synthetic:small"), "model is"),
        (("--resume", "RUN", "--dataset", "gsm8k"), "dataset is"),
        (("--resume", "RUN", "--max_new_tokens", "99"), "prompt is"),
        # a run label is a folder name: it never leaves --results-dir (issue 14, item 10)
        (("--round", "../escape"), "not a safe folder name"),
        (("--round", "/abs/path"), "not a safe folder name"),
        (("--round", "a\nb"), "not a safe folder name"),
        (("--round", "x" * 300), "not a safe folder name"),
        (("--round", ".hidden"), "not a safe folder name"),
        # numbers checked before the model loads (issue 14, item 9)
        (("--temperature", "nan"), "--temperature must be >= 0"),
        (("--temperature", "-1"), "--temperature must be >= 0"),
        (("--top_p", "0"), "--top-p must be in (0, 1]"),
        (("--seed", str(2**64 + 1)), "--seed must be in [0, 2**63)"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_touches_nothing(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture, flags, message: str
) -> None:
    (tmp_path / "BAD_DATA" / "gsm8k").mkdir(parents=True)
    (tmp_path / "BAD_DATA" / "gsm8k" / "test.jsonl").write_text('{"question": "q",\n')
    (tmp_path / "MISSING_FIELD" / "gsm8k").mkdir(parents=True)
    (tmp_path / "MISSING_FIELD" / "gsm8k" / "test.jsonl").write_text('{"question": "q"}\n')
    (tmp_path / "a_file").write_text("")
    places = {"BAD_DATA": tmp_path / "BAD_DATA", "MISSING_FIELD": tmp_path / "MISSING_FIELD",
              "UNWRITABLE": tmp_path / "a_file" / "results", "RUN": finished_run}  # fmt: skip
    before = snapshot(tmp_path)
    capsys.readouterr()
    args = [*BASE_ARGS, "--results_dir", str(tmp_path / "results"), "--count", "4"]
    code = main([*args, *(str(places.get(f, f)) for f in flags)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and message in err, err
    assert snapshot(tmp_path) == before


def test_chat_template_and_detailed_output(run_eval, tmp_path: Path, capsys) -> None:
    assert run_eval("--count", "3", "--apply_chat_template", "--detailed") == 0
    run_dir = only_run_dir(tmp_path / "results")
    settings = json.loads((run_dir / "run.json").read_text())
    assert settings["prompt"]["apply_chat_template"] is True
    assert "synthetic-2: predicted" in capsys.readouterr().err


def test_reachable_as_infertune_eval(tmp_path: Path, capsys) -> None:
    from commands.main import main as infertune

    code = infertune(["eval", *BASE_ARGS, "--dataset", "nope", "--results_dir", str(tmp_path)])
    assert code == 2 and "infertune eval: error: unknown dataset 'nope'" in capsys.readouterr().err
