"""metrics.csv: the batch-size column for every backend, and the machine's hardware id."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from common.environment import environment
from evaluation.reports import write_reports

PROBLEM = {"kind": "problem", "id": "p0", "index": 0, "question": "q", "gold": "1",
           "predicted": "1", "correct": True, "response": "1", "prompt_tokens": 3,
           "completion_tokens": 2, "finish_reason": "eos"}  # fmt: skip
BATCH = {"kind": "batch", "ids": ["p0"], "engine_s": 1.0, "overhead_s": 0.1, "session": 0}


@pytest.mark.parametrize(
    ("backend", "engine"),
    [("transformers", {"batch_size": 8}), ("vllm", {"max_num_seqs": 8}),
     ("transformers_cb", {"max_requests_per_batch": 8, "num_blocks": 64})],
)  # fmt: skip
def test_csv_row_has_batch_size_and_hardware_id(tmp_path: Path, backend: str, engine: dict) -> None:
    # the batch-size column was empty for transformers_cb, and no column said which machine ran
    record = environment()
    settings = {"model": "synthetic:tiny", "dataset": "synthetic", "mode": "standard",
                "round": "t", "start": 0, "problem_ids": ["p0"], "backend": backend,
                "engine": engine, "environment": record}  # fmt: skip
    write_reports(tmp_path, settings, [PROBLEM, BATCH])
    [row] = list(csv.DictReader((tmp_path / "metrics.csv").open(encoding="utf-8")))
    assert row["batch_size"] == "8"
    assert row["hardware_id"] == record["hardware_id"] != ""
