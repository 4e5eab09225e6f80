"""What evaluation adds on top of the engine: prompting, grading, writing records.

Two benchmarks in one group, on the same loaded ``synthetic:small`` engine and
the same 64 synthetic problems: the raw ``engine.generate`` call, and the full
evaluation (requests built from problems, every batch graded, appended and
fsynced, then the answers/log/metrics files written).  Target: the difference
is at most 3% of the engine time.  Run with::

    python -m pytest tests/benchmarks/test_eval_overhead.py --benchmark-enable

On a shared machine the difference between two tests run minutes apart is
mostly noise, so the full-evaluation test also reports two steadier figures in
``extra_info``: a paired one (an untimed raw call right before each timed
round) and the overhead the run measures from the inside (each batch's wall
time minus the time spent in the engine).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import pytest

from engines import load_engine
from evaluation.datasets import load_problems
from evaluation.modes import StandardMode
from evaluation.prompts import PromptSettings, build_request
from evaluation.records import RecordStore
from evaluation.reports import write_reports
from evaluation.runner import run_problems

NUM_PROBLEMS = 64
PROMPT = PromptSettings(max_new_tokens=32)
ROUNDS = 3
_fastest: dict[str, float] = {}
pytestmark = pytest.mark.slow  # about a minute on two idle cores, even with --benchmark-disable


@pytest.fixture(scope="module")
def engine():
    with load_engine("transformers", "synthetic:small", batch_size=16, dtype="float32") as loaded:
        yield loaded


@pytest.fixture(scope="module")
def problems():
    return load_problems("synthetic", count=NUM_PROBLEMS)


def _full_eval(engine, problems, run_dir: Path) -> float:
    settings = {"model": "synthetic:small", "dataset": "synthetic", "mode": "standard",
                "backend": "transformers", "start": 0, "engine": {"batch_size": 16},
                "problem_ids": [p.id for p in problems]}  # fmt: skip
    with RecordStore(run_dir) as store:
        run_problems(engine, StandardMode(prompt=PROMPT), problems, store)
        started = time.perf_counter()
        summary = write_reports(run_dir, settings, store.records)
        reports_s = time.perf_counter() - started
    assert summary.num_done == NUM_PROBLEMS
    return 100 * (summary.overhead_s + reports_s) / summary.generation_s


def _record_fastest(benchmark, name: str) -> None:
    if benchmark.stats is not None:  # None under --benchmark-disable (the default)
        _fastest[name] = benchmark.stats.stats.min  # min: least disturbed by other load


@pytest.mark.benchmark(group="eval-overhead")
def test_raw_engine(benchmark, engine, problems) -> None:
    requests = [build_request(p, PROMPT) for p in problems]
    if not benchmark.disabled:
        engine.generate(requests[:16])  # warm-up
    outputs = benchmark.pedantic(engine.generate, args=(requests,), rounds=ROUNDS, iterations=1)
    assert len(outputs) == NUM_PROBLEMS
    _record_fastest(benchmark, "raw")


@pytest.mark.benchmark(group="eval-overhead")
def test_full_evaluation(benchmark, engine, problems) -> None:
    requests = [build_request(p, PROMPT) for p in problems]
    inside: list[float] = []
    paired: list[float] = []
    raw_s: list[float] = []

    def setup():  # untimed: a raw engine call right before each timed round, for a paired figure
        started = time.perf_counter()
        engine.generate(requests)
        raw_s.append(time.perf_counter() - started)
        return (engine, problems, Path(tempfile.mkdtemp(prefix="eval-overhead-"))), {}

    def run(*args):
        started = time.perf_counter()
        inside.append(_full_eval(*args))
        paired.append(100 * ((time.perf_counter() - started) / raw_s[-1] - 1))

    benchmark.pedantic(run, setup=setup, rounds=ROUNDS, iterations=1)
    benchmark.extra_info["overhead_pct_measured_inside"] = round(statistics.median(inside), 3)
    benchmark.extra_info["overhead_pct_paired_median"] = round(statistics.median(paired), 3)
    _record_fastest(benchmark, "full")
    if "raw" in _fastest and "full" in _fastest:
        pct = 100 * (_fastest["full"] - _fastest["raw"]) / _fastest["raw"]
        benchmark.extra_info["overhead_pct_vs_raw_min"] = round(pct, 3)
        print(f"\nevaluation overhead, % of engine time: {pct:.2f} (fastest rounds),"
              f" {statistics.median(paired):.2f} (paired rounds, median),"
              f" {statistics.median(inside):.3f} (measured inside the run, median)")  # fmt: skip
