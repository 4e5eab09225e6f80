"""Helpers to run the eval CLI in-process on synthetic:tiny."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from commands.eval import main

BASE_ARGS = ("--model", "synthetic:tiny", "--dataset", "synthetic", "--round", "t",
             "--max_new_tokens", "12", "--dtype", "float32")  # fmt: skip


def problem_records(run_dir: Path) -> list[dict]:
    lines = (run_dir / "records.jsonl").read_text(encoding="utf-8").splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == "problem"]


def only_run_dir(results: Path) -> Path:
    [run_dir] = [p for p in results.iterdir() if p.is_dir()]
    return run_dir


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def run_eval(tmp_path: Path):
    """``run_eval(*flags) -> exit code`` with results under ``tmp_path/results``."""

    def runner(*flags: str, results: Path | None = None) -> int:
        target = results or tmp_path / "results"
        return main([*BASE_ARGS, "--results_dir", str(target), *flags])

    return runner
