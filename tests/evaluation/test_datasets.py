"""Dataset loading: the real files, the generated set, slices and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evaluation.datasets import DATA_DIR_ENV, DATASETS, load_problems, resolve_data_dir
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


def _write(path: Path, lines: list[str]) -> Path:
    target = path / "gsm8k" / "test.jsonl"
    target.parent.mkdir(parents=True)
    target.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return target


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
        (['["not", "an", "object"]'], "missing field(s) question, answer"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path: Path, lines: list[str], message: str) -> None:
    _write(tmp_path, lines)
    with pytest.raises(DatasetError, match=message.replace("(", r"\(").replace(")", r"\)")):
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
