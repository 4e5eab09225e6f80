"""The eval CLI on the vLLM backend (CPU build here), with synthetic:tiny."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.evaluation.conftest import BASE_ARGS, only_run_dir, problem_records

REPO = Path(__file__).resolve().parents[2]
pytestmark = [
    pytest.mark.vllm,
    pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM not installed"),
]


def test_vllm_run_writes_the_same_files(tmp_path: Path) -> None:
    # a subprocess: vLLM needs these variables before torch starts its threads
    env = os.environ | {"OMP_NUM_THREADS": "1", "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
                        "PYTHONPATH": str(REPO)}  # fmt: skip
    flags = ["--inference_backend", "vllm", "--count", "6", "--batch_size", "4",
             "--engine_arg", "enforce_eager=true", "--engine_arg", "kv_cache_memory_bytes=67108864",
             "--results_dir", str(tmp_path)]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "evaluation.eval", *BASE_ARGS, *flags],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    run_dir = only_run_dir(tmp_path)
    assert sorted(r["index"] for r in problem_records(run_dir)) == list(range(6))
    settings = json.loads((run_dir / "run.json").read_text())
    assert (
        settings["backend"] == "vllm" and settings["sessions"][0]["requested"]["max_num_seqs"] == 4
    )
    answers = run_dir / "answers" / "synthetic-tiny_synthetic_standard_answers.json"
    assert json.loads(answers.read_text())["summary"]["num_done"] == 6
