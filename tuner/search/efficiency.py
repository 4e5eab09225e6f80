"""Tuning-efficiency benchmark: the tuner against an exhaustive grid over one space.

``infertune efficiency --model synthetic:small --dataset synthetic``

Measures every configuration of a reduced but real space (backend x batch size
x stopping x length sorting, and vLLM's prefix caching), then runs the tuner
on the same space with at most a third of the grid's trials, and reports the
tuner's best throughput as a fraction of the grid's best (target: >= 95%) and
both speedups over batch size 1.  Only configurations with answer parity count
on either side.  It is a benchmark, not a test: it asserts nothing about time.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tuner.answer_parity import DEFAULT_THRESHOLD
from tuner.measurement.benchmark import parity_report, run_trial
from tuner.measurement.workload import build_workload
from tuner.search.space import SearchSpace, reference_config


def grid_space(
    backends: Sequence[str],
    batch_sizes: Sequence[int],
    *,
    sort_by_length: tuple[bool, ...] = (True, False),
    prefix_caching: tuple[bool, ...] = (False, True),
) -> SearchSpace:
    """The benchmark's space: float32, sdpa, vLLM in eager mode with its default token budget."""
    return SearchSpace(
        backends=tuple(backends),
        batch_sizes=tuple(batch_sizes),
        dtypes=("float32",),
        sort_by_length=sort_by_length,
        attn_implementations=("sdpa",),
        max_num_batched_tokens=(None,),
        enable_prefix_caching=prefix_caching,
        enforce_eager=(True,),
        cb_max_batch_tokens=(512,),
    )


def run_grid(space: SearchSpace, model: str, workload: Any, log: Any) -> list[dict[str, Any]]:
    """Measure every configuration of ``space``; parity against the batch-1 reference."""
    reference = run_trial("transformers", model, reference_config("float32").settings, workload)
    rows, grid = [], space.grid()
    for config in grid:
        result = run_trial(config.backend, model, config.settings, workload)
        report = parity_report(result, reference, workload.answers)
        rows.append(
            {
                "backend": config.backend,
                "settings": config.settings,
                "problems_per_s": result.problems_per_s,
                "status": result.status,
                "agreement": report.agreement,
                # the tuner's own rule (StudySettings' default threshold), so both sides agree
                "acceptable": report.is_acceptable(DEFAULT_THRESHOLD),
            }
        )
        log(
            f"grid {len(rows)}/{len(grid)}: {config.backend} "
            f"{json.dumps(config.settings)} -> {result.problems_per_s:.3g} problems/s "
            f"({result.status}, parity {rows[-1]['agreement']:.0%})"
        )
    return [{"reference_problems_per_s": reference.problems_per_s}, *rows]


def run_tuner(
    space: SearchSpace,
    model: str,
    workload: Any,
    n_trials: int,
    seed: int,
    log: Callable[[str], None] = print,
) -> Any:
    """The study exactly as ``infertune tune`` runs it, on ``space``, in a temporary journal."""
    from tuner.search.storage import open_study
    from tuner.search.study import Objective, StudySettings, optimize, seed_study

    settings = StudySettings(model=model, n_trials=n_trials, seed=seed)
    with tempfile.TemporaryDirectory() as folder:
        study = open_study(f"journal:{Path(folder) / 'study.log'}", "efficiency", settings)
        seed_study(study, space, None)
        optimize(study, Objective(space, workload, settings, log=log), settings)
        return study.trials, dict(study.user_attrs)


def remeasure(
    configs: dict[str, tuple[str, dict[str, Any]]], model: str, workload: Any, repeats: int
) -> dict[str, float]:
    """Median problems/s of each named configuration, measured interleaved.

    The grid and the study run minutes apart on a shared machine; their own
    numbers compare noise as much as configurations.  Re-running the finalists
    round-robin puts them under the same load, so their ratio means something.
    """
    import statistics

    samples: dict[str, list[float]] = {name: [] for name in configs}
    for _ in range(repeats):
        for name, (backend, settings) in configs.items():
            samples[name].append(run_trial(backend, model, settings, workload).problems_per_s)
    return {name: statistics.median(values) for name, values in samples.items()}


def measure_efficiency(
    model: str,
    dataset: str,
    *,
    backends: Sequence[str] = ("transformers", "vllm"),
    batch_sizes: Sequence[int] = (1, 4, 16, 32),
    count: int = 32,
    max_new_tokens: int = 32,
    seed: int = 0,
    repeats: int = 3,
    data_dir: str | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Grid against tuner on one space; the report ``infertune efficiency`` prints.

    The tuner gets a third of the grid's trials; ``repeats`` interleaved
    re-measurements of the finalists give the side-by-side ratio.
    """
    workload = build_workload(
        model,
        dataset,
        size=count,
        max_new_tokens=max_new_tokens,
        num_canary=min(8, count),
        data_dir=data_dir,
    )
    space = grid_space(backends, batch_sizes)
    start = time.perf_counter()
    reference, *grid = run_grid(space, model, workload, log)
    grid_s = time.perf_counter() - start
    trials, _ = run_tuner(space, model, workload, max(1, len(grid) // 3), seed, log)
    tuner_s = time.perf_counter() - start - grid_s
    report = summarise(reference["reference_problems_per_s"], grid, trials, space)
    finalists = {
        "batch1": ("transformers", reference_config("float32").settings),
        "grid_best": (report["best_grid"]["backend"], report["best_grid"]["settings"]),
        "tuned_best": (report["best_tuned"]["backend"], report["best_tuned"]["settings"]),
    }
    medians = remeasure(finalists, model, workload, repeats)
    report["side_by_side"] = {
        "repeats": repeats,
        "median_problems_per_s": medians,
        "tuned_over_grid": medians["tuned_best"] / medians["grid_best"],
        "tuned_speedup_over_batch1": medians["tuned_best"] / medians["batch1"],
        "grid_speedup_over_batch1": medians["grid_best"] / medians["batch1"],
    }
    return report | {
        "grid_seconds": grid_s,
        "tuner_seconds": tuner_s,
        "model": model,
        "workload_size": count,
        "max_new_tokens": max_new_tokens,
    }


def summarise(baseline: float, grid: list[dict], trials: list, space: SearchSpace) -> dict:
    """Best feasible throughput of each side, their ratio, and speedups over batch 1."""
    from tuner.search.study import TrialRow

    feasible_grid = [r for r in grid if r["status"] == "ok" and r["acceptable"]]
    best_grid = max(feasible_grid, key=lambda r: r["problems_per_s"])
    rows = [TrialRow.from_trial(t) for t in trials]
    best = max((r for r in rows if r.is_feasible), key=lambda r: r.problems_per_s)
    # The grid's own measurement of the tuner's choice: same conditions, no selection noise.
    same = [r for r in grid if r["settings"] == best.settings]
    in_grid = same[0]["problems_per_s"] / best_grid["problems_per_s"] if same else None
    return {
        "grid_trials": len(grid),
        "tuner_trials": len(rows),
        "tuner_configurations_measured": sum(r.duplicate_of is None for r in rows),
        "baseline_problems_per_s": baseline,
        "best_grid": best_grid,
        "best_tuned": {
            "backend": best.backend,
            "settings": best.settings,
            "problems_per_s": best.problems_per_s,
        },
        "tuned_over_grid": best.problems_per_s / best_grid["problems_per_s"],
        "tuned_config_in_grid_over_grid": in_grid,
        "grid_speedup_over_batch1": best_grid["problems_per_s"] / baseline,
        "tuned_speedup_over_batch1": best.problems_per_s / baseline,
    }
