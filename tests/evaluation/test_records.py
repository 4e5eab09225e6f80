"""The record file and the files derived from it."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from evaluation.records import CorruptRecordsError, RecordStore, read_records
from evaluation.reports import summarize, write_reports
from evaluation.results import model_slug, new_run_dir, write_atomic


def _problem(i: int, correct: bool = True) -> dict:
    return {"kind": "problem", "id": f"p{i}", "index": i, "question": f"q{i}", "gold": "1",
            "predicted": "1" if correct else "2", "correct": correct, "response": "r",
            "prompt_tokens": 3, "completion_tokens": 5, "finish_reason": "eos"}  # fmt: skip


def _batch(ids: list[str]) -> dict:
    return {"kind": "batch", "session": "s", "ids": ids, "engine_s": 1.0, "overhead_s": 0.01}


def test_torn_last_line_is_cut_and_redone(tmp_path: Path) -> None:
    with RecordStore(tmp_path) as store:
        store.append([_problem(0), _problem(1), _batch(["p0", "p1"])])
    path = tmp_path / "records.jsonl"
    intact = path.read_bytes()
    path.write_bytes(intact + b'{"kind": "problem", "id": "p2", "ind')  # crash mid-write
    assert len(read_records(path)[0]) == 3
    with RecordStore(tmp_path) as store:
        assert set(store.done) == {"p0", "p1"}
        store.append([_problem(2), _batch(["p2"])])
    records, size = read_records(path)
    assert size == path.stat().st_size
    assert [r["id"] for r in records if r["kind"] == "problem"] == ["p0", "p1", "p2"]


def _three_problems(folder: Path) -> Path:
    with RecordStore(folder) as store:
        store.append([_problem(0), _problem(1), _problem(2), _batch(["p0", "p1", "p2"])])
    return folder / "records.jsonl"


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda line: line.replace(b'"id"', b'"id\x01', 1), "malformed JSON"),
        (lambda line: line[:10] + b"\x00" * 8 + line[18:], "malformed JSON"),
        (lambda line: line[:10] + b"\xff\xfe" + line[12:], "invalid UTF-8"),
        (lambda line: b"[1, 2]\n", "not an object"),
        (lambda line: b'{"kind": "problem", "id": 7}\n', "a problem record without"),
    ],
)
def test_a_bad_middle_line_is_refused_and_nothing_is_rewritten(
    tmp_path: Path, damage, reason: str
) -> None:
    path = _three_problems(tmp_path)
    lines = path.read_bytes().splitlines(keepends=True)
    lines[1] = damage(lines[1])
    path.write_bytes(b"".join(lines))
    before = path.read_bytes()
    with pytest.raises(CorruptRecordsError, match=f"records.jsonl:2: corrupt record \\({reason}"):
        RecordStore(tmp_path)
    assert path.read_bytes() == before  # the good records after line 2 are all still there


def test_a_bad_last_line_with_its_newline_is_not_a_torn_write(tmp_path: Path) -> None:
    path = _three_problems(tmp_path)
    path.write_bytes(path.read_bytes() + b'{"kind": "problem", "id": "p3", "ind\n')
    with pytest.raises(CorruptRecordsError, match="records.jsonl:5"):
        read_records(path)


def test_done_problems_are_never_duplicated(tmp_path: Path) -> None:
    with RecordStore(tmp_path) as store:
        store.append([_problem(0)])
        store.append([_problem(0, correct=False), _problem(1)])
    records, _ = read_records(tmp_path / "records.jsonl")
    assert [r["id"] for r in records] == ["p0", "p1"]
    assert records[0]["correct"] is True


def test_summary_is_recomputed_from_records() -> None:
    records = [_problem(0), _problem(1, correct=False), _batch(["p0", "p1"]),
               {"kind": "error", "session": "s", "ids": ["p2", "p3"], "error": "boom"},
               _problem(3), _batch(["p3"])]  # fmt: skip
    summary = summarize(records, num_problems=4)
    assert (summary.num_done, summary.num_correct, summary.num_failed) == (3, 2, 1)
    assert summary.generation_s == 2.0 and summary.completion_tokens == 15


def test_metrics_csv_appends_and_widens(tmp_path: Path) -> None:
    settings = {"model": "org/M", "dataset": "d", "mode": "standard", "backend": "transformers",
                "start": 0, "problem_ids": ["p0", "p1"], "engine": {"batch_size": 2}}  # fmt: skip
    records = [_problem(0), _problem(1, correct=False), _batch(["p0", "p1"])]
    write_reports(tmp_path, settings, records)
    write_reports(tmp_path, settings, records, {"num_revised": 1})
    with (tmp_path / "metrics.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 and rows[0]["num_revised"] == "" and rows[1]["num_revised"] == "1"
    assert rows[0]["accuracy"] == "0.5" and rows[0]["batch_size"] == "2"
    answers = json.loads((tmp_path / "answers" / "M_d_standard_answers.json").read_text())
    assert [p["id"] for p in answers["problems"]] == ["p0", "p1"]
    assert "Running accuracy: 1/2 = 50.00%" in (tmp_path / "log" / "M_d_standard.log").read_text()
    assert "Accuracy: 50.00% (1/2)" in (tmp_path / "metrics_standard.txt").read_text()


def test_run_dir_names(tmp_path: Path) -> None:
    import datetime as dt

    assert model_slug("synthetic:tiny") == "synthetic-tiny"
    assert model_slug("Qwen/Qwen2.5-Math-1.5B") == "Qwen2.5-Math-1.5B"
    now = dt.datetime(2025, 11, 23, 14, 5)
    first = new_run_dir(tmp_path, "r1", "synthetic:tiny", "gsm8k", 2, now)
    assert first.name == "r1_synthetic-tiny_gsm8k_2_1123"
    first.mkdir()
    assert new_run_dir(tmp_path, "r1", "synthetic:tiny", "gsm8k", 2, now).name.endswith("_1405")


def test_write_atomic_leaves_no_temp_files(tmp_path: Path) -> None:
    write_atomic(tmp_path / "a" / "f.txt", "one")
    write_atomic(tmp_path / "a" / "f.txt", "two")
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["f.txt"]
    assert (tmp_path / "a" / "f.txt").read_text() == "two"
