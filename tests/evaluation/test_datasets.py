"""Dataset loading: the real files, the generated set, slices and bad input."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import pytest

from evaluation.datasets import (
    DATA_DIR_ENV,
    DATASETS,
    MAX_FILE_BYTES,
    MAX_LINE_BYTES,
    load_problems,
    resolve_data_dir,
)
from evaluation.errors import DatasetError

needs_data = pytest.mark.skipif(
    resolve_data_dir() is None, reason="shared/data folder absent: set INFERTUNE_DATA_DIR"
)


@needs_data
@pytest.mark.parametrize(
    ("name", "size", "first_answer"),
    [("gsm8k", 1319, "18"), ("math500", 500, None), ("svamp", 1000, "145"),
     ("gsm_hard", 1319, "-9867630")],
)  # fmt: skip
def test_real_files_load_whole(name: str, size: int, first_answer: str | None) -> None:
    problems = load_problems(name)
    assert len(problems) == size
    assert len({p.id for p in problems}) == size
    if first_answer is not None:
        assert problems[0].answer == first_answer


@needs_data
def test_gsm8k_answer_strips_thousands_marker_and_keeps_solution() -> None:
    problem = load_problems("gsm8k", start=0, count=1)[0]
    assert problem.solution is not None and problem.solution.endswith("#### 18")
    svamp = load_problems("svamp", count=1)[0]
    assert svamp.question.endswith("How big is each group of bananas?")
    assert svamp.question.startswith("There are 87 oranges")


def test_synthetic_is_deterministic_and_sliceable() -> None:
    whole = load_problems("synthetic", count=50)
    part = load_problems("synthetic", start=10, count=5)
    assert part == whole[10:15]
    assert [p.id for p in part] == [f"synthetic-{i}" for i in range(10, 15)]
    assert len(load_problems("synthetic", start=9990)) == 10
    assert all(p.solution and f"\\boxed{{{p.answer}}}" in p.solution for p in whole)


def _write(path: Path, lines: list[str], dataset: str = "gsm8k") -> Path:
    target = path / dataset / "test.jsonl"
    target.parent.mkdir(parents=True)
    target.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return target


def _svamp(identifier: object, answer: object = 2.0, body: object = "Tom has 1.") -> str:
    return json.dumps({"ID": identifier, "Body": body, "Question": "How many?", "Answer": answer})


def test_data_dir_flag_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    row = json.dumps({"question": "1+1?", "answer": "1+1=2\n#### 2"})
    _write(tmp_path, [row, row])
    assert [p.answer for p in load_problems("gsm8k", data_dir=tmp_path)] == ["2", "2"]
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    assert len(load_problems("gsm8k", count=1)) == 1


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"question": "q", "answer": "#### 1"}', '{"question": "q", "answer": '], "test.jsonl:2"),
        (['{"question": "q"}'], "missing field(s) answer"),
        (['["not", "an", "object"]'], "test.jsonl:1: a line must be a JSON object"),
        (['{"question": 5, "answer": "#### 1"}'], "1: field 'question' must be text, got 5"),
        (['{"question": "q", "answer": ["#### 1"]}'], "field 'answer' must be text"),
        (['{"question": "  ", "answer": "#### 1"}'], "test.jsonl:1: problem field 'question'"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path: Path, lines: list[str], message: str) -> None:
    _write(tmp_path, lines)
    with pytest.raises(DatasetError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_problems("gsm8k", data_dir=tmp_path)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (_svamp("a", body=7), "field 'Body' must be text, got 7"),
        (_svamp("a", answer=True), "field 'Answer' must be text or a finite number, got true"),
        (_svamp("a", answer=float("nan")), "field 'Answer' must be text or a finite number"),
        (_svamp({"x": 1}), "field 'ID' must be text or a finite number"),
    ],
)
def test_numbers_are_accepted_only_where_a_number_belongs(
    tmp_path: Path, line: str, message: str
) -> None:
    _write(tmp_path, [_svamp(1), line], dataset="svamp")
    with pytest.raises(DatasetError, match=f"test.jsonl:2: {message}"):
        load_problems("svamp", data_dir=tmp_path)


def test_invalid_utf8_names_the_line(tmp_path: Path) -> None:
    target = _write(tmp_path, ['{"question": "q", "answer": "#### 1"}'])
    target.write_bytes(target.read_bytes() + b'{"question": "\xff\xfe", "answer": "#### 1"}\n')
    with pytest.raises(DatasetError, match="test.jsonl:2: invalid UTF-8 at byte 14"):
        load_problems("gsm8k", data_dir=tmp_path)


def test_duplicate_ids_are_refused_naming_both_lines(tmp_path: Path) -> None:
    _write(tmp_path, [_svamp("a"), _svamp("b"), "", _svamp("a")], dataset="svamp")
    with pytest.raises(DatasetError) as caught:
        load_problems("svamp", data_dir=tmp_path)
    message = str(caught.value)
    assert "test.jsonl:4: problem id 'svamp-a' repeats the one at" in message
    assert message.endswith("test.jsonl:1; ids must be unique: remove or rename one")


def test_a_line_past_the_limit_is_refused_without_reading_it_whole(tmp_path: Path) -> None:
    huge = json.dumps({"question": "1+" * (4 * MAX_LINE_BYTES), "answer": "#### 1"})
    _write(tmp_path, ['{"question": "q", "answer": "#### 1"}', huge])
    tracemalloc.start()
    try:
        with pytest.raises(DatasetError, match="test.jsonl:2: line longer than 1024 KiB"):
            load_problems("gsm8k", data_dir=tmp_path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3 * MAX_LINE_BYTES  # the 8 MiB line was never held whole


def test_a_file_past_the_limit_is_refused_before_reading(tmp_path: Path) -> None:
    target = _write(tmp_path, ['{"question": "q", "answer": "#### 1"}'])
    with target.open("ab") as handle:
        handle.truncate(MAX_FILE_BYTES + 1)  # sparse: costs no disk
    with pytest.raises(DatasetError, match="over the 64 MiB limit"):
        load_problems("gsm8k", data_dir=tmp_path)


def test_unknown_dataset_suggests_a_name() -> None:
    with pytest.raises(DatasetError, match="did you mean 'gsm8k'"):
        load_problems("gsm8")
    assert "synthetic" in DATASETS


def test_count_beyond_the_end() -> None:
    with pytest.raises(DatasetError, match="has 10000"):
        load_problems("synthetic", start=9999, count=2)
    with pytest.raises(DatasetError, match=">= 0"):
        load_problems("synthetic", count=-1)


def test_missing_local_file_without_hub_client(tmp_path: Path) -> None:
    try:
        import datasets  # noqa: F401
    except ImportError:
        with pytest.raises(DatasetError, match="pip install datasets"):
            load_problems("math500", data_dir=tmp_path)
    else:
        pytest.skip("`datasets` installed: the hub would be tried")


def test_explicit_missing_data_dir(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="--data_dir"):
        load_problems("gsm8k", data_dir=tmp_path / "nope")


@pytest.mark.parametrize(
    "content",
    [
        (_svamp("a") + "\n" + _svamp("a") + "\n").encode(),
        (_svamp("a", body=7) + "\n").encode(),
        b'{"ID": "a", "Body": "x\xff", "Question": "y", "Answer": 1}\n',
    ],
)
def test_the_cli_refuses_a_bad_dataset_in_one_line_before_writing(
    run_eval, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    _write(tmp_path / "data", [], dataset="svamp").write_bytes(content)
    code = run_eval("--dataset", "svamp", "--data_dir", str(tmp_path / "data"))
    assert code == 2
    [line] = capsys.readouterr().err.splitlines()
    assert "svamp/test.jsonl:" in line
    assert not (tmp_path / "results").exists()
