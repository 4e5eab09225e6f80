"""A budgeted tune against the exhaustive grid, judged by the wall time of the user's run.

``infertune efficiency --budget 5m --for-count 50 1000``

The question a user asks of ``tune --budget 5m`` is not "did it find the highest
throughput" but "does the run I make with its profile end as soon as the best
configuration's would".  So, on one workload and one space:

1. **the grid** measures every configuration with the tuner's own objective
   (the same canary reference, parity rule and trial workloads; no budget);
   each feasible configuration gets its line ``wall(N) = load + warm-up + N / rate``;
2. **one tune per N** runs exactly as ``infertune tune --budget B --for-count N``
   does on that space, from a fresh storage (so it pays its own reference);
3. for each N, the tuned configuration's wall time is read off the grid's
   measurement of that same configuration (same conditions, no selection
   noise) and reported as a fraction of the grid's best: ``grid_best_wall /
   tuned_wall``, 1.0 when the tune found the best, the goal being >= 0.95.

The whole-run times are predicted from measured parts (each configuration's
load, warm-up and steady rate), not timed runs of N problems: a 1,000-problem run
per configuration is what the tuner exists to avoid.  A benchmark: minutes to
hours on a CPU, asserting nothing about time.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tuner.measurement.workload import build_workload
from tuner.search.efficiency import grid_space
from tuner.search.objective_wall import RunShape, WallLine, best_for, wall_lines


def measure_budget_efficiency(
    model: str,
    dataset: str,
    *,
    budget_s: float,
    for_counts: Sequence[int] = (50, 1000),
    backends: Sequence[str] = ("transformers", "vllm"),
    batch_sizes: Sequence[int] = (4, 16),
    count: int = 16,
    canary_size: int = 4,
    max_new_tokens: int = 64,
    seed: int = 0,
    data_dir: str | None = None,
    storage_dir: str | Path | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """The report ``infertune efficiency --budget`` prints (see the module docstring).

    ``storage_dir`` keeps the grid's and each tune's journal (default: a
    temporary folder), so a reader can open the studies afterwards.
    """
    if not for_counts or min(for_counts) < 1:
        raise ValueError(f"for_counts must be counts >= 1, got {list(for_counts)}")
    # One sort order and no prefix caching: on a real model every grid point costs
    # minutes, and neither knob changes a greedy run's throughput much on these prompts.
    space = grid_space(backends, batch_sizes, sort_by_length=(True,), prefix_caching=(False,))
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(storage_dir or scratch)
        folder.mkdir(parents=True, exist_ok=True)
        workload = _workload(model, dataset, space, count, canary_size, max_new_tokens, data_dir)
        start = time.monotonic()
        grid = _run_grid(space, workload, model, count, seed, folder / "grid.log", for_counts, log)
        grid_s = time.monotonic() - start
        tunes = [
            _run_tune(
                space, workload, model, count, seed, budget_s, n, folder / f"tune-{n}.log", log
            )
            for n in for_counts
        ]
    return {
        "model": model,
        "dataset": dataset,
        "workload": {
            "count": count,
            "canaries": canary_size,
            "max_new_tokens": max_new_tokens,
            "pool": workload.size,
        },
        "budget_s": budget_s,
        "grid_configurations": len(space.grid()),
        "grid_seconds": grid_s,
        "grid": grid["rows"],
        "by_count": [
            _judge(n, grid["lines"], tune) for n, tune in zip(for_counts, tunes, strict=True)
        ],
    }


def _workload(
    model: str,
    dataset: str,
    space: Any,
    count: int,
    canary_size: int,
    max_new_tokens: int,
    data_dir: str | None,
) -> Any:
    """The tune's workload: ``count`` problems, or enough to fill the largest batch twice."""
    from tuner.search.tuning import pool_size

    return build_workload(
        model,
        dataset,
        size=pool_size(dataset, data_dir, count, space, 1),
        max_new_tokens=max_new_tokens,
        num_canary=canary_size,
        data_dir=data_dir,
    )


def _study(model: str, count: int, seed: int, journal: Path, **settings: Any) -> Any:
    from tuner.search.storage import open_study
    from tuner.search.study import StudySettings

    study_settings = StudySettings(model=model, trial_size=count, seed=seed, **settings)
    return open_study(f"journal:{journal}", "efficiency", study_settings), study_settings


def _run_grid(
    space: Any,
    workload: Any,
    model: str,
    count: int,
    seed: int,
    journal: Path,
    for_counts: Sequence[int],
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Every configuration through the tuner's objective; each row with its walls."""
    from tuner.search.study import Objective, optimize
    from tuner.search.trials import trial_rows

    configs = space.grid()
    study, settings = _study(model, count, seed, journal, n_trials=len(configs))
    for config in configs:
        study.enqueue_trial(space.params_of(config))
    run = RunShape(for_count=for_counts[0])
    objective = Objective(space, workload, settings, log=log, run=run)
    optimize(study, objective, settings)
    lines = {line.trial_number: line for line in wall_lines(study)}
    rows, by_config = [], {}
    for row in sorted(trial_rows(study), key=lambda r: r.number):
        line, key = lines.get(row.number), _key(row.backend, row.settings)
        by_config[key] = line
        rows.append(
            {
                "config": key,
                "status": row.status,
                "feasible": row.is_feasible,
                "agreement": row.agreement,
                "problems_per_s": row.problems_per_s,
                "load_s": line.load_s if line else None,
                "warmup_s": line.warmup_s if line else None,
                "wall_s": {str(n): line.wall(n) for n in for_counts} if line else None,
            }
        )
    return {"rows": rows, "lines": by_config}


def _run_tune(
    space: Any,
    workload: Any,
    model: str,
    count: int,
    seed: int,
    budget_s: float,
    for_count: int,
    journal: Path,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """``infertune tune --budget`` on ``space`` for ``for_count``: its pick and its time."""
    from tuner.search.budget import Budget
    from tuner.search.study import Objective, optimize, seed_study
    from tuner.search.trials import trial_rows

    budget = Budget(total_s=budget_s)  # from here, as the command's clock starts at its call
    # n_trials far above the grid: the budget, not a count, ends the tune
    trials = len(space.grid()) * 4
    study, settings = _study(model, count, seed, journal, n_trials=trials, timeout_s=budget_s)
    seed_study(study, space, None)
    run = RunShape(for_count=for_count)
    objective = Objective(space, workload, settings, log=log, run=run, budget=budget)
    reason = optimize(study, objective, settings)
    used_s = budget.used_s()
    lines = wall_lines(study)
    pick = best_for(lines, for_count) if lines else None
    row = next((r for r in trial_rows(study) if pick and r.number == pick.trial_number), None)
    return {
        "for_count": for_count,
        "stop_reason": reason,
        "used_s": used_s,
        "trials": len(study.trials),
        "configurations_measured": len(lines),
        "pick": None
        if row is None
        else {
            "backend": row.backend,
            "settings": row.settings,
            "own_wall_s": pick.wall(for_count),
        },
    }


def _judge(
    for_count: int, grid_lines: dict[str, WallLine | None], tune: dict[str, Any]
) -> dict[str, Any]:
    """The tune's pick against the grid's best at ``for_count``, both on the grid's clock."""
    feasible = {key: line for key, line in grid_lines.items() if line is not None}
    if not feasible:  # nothing to judge against: say so rather than fail the whole report
        return {"for_count": for_count, "grid_best": None, "tuned": tune,
                "tuned_wall_s_in_grid": None, "fraction_of_grid_best": None, "meets_goal": False,
                "note": "no grid configuration kept the reference's answers"}  # fmt: skip
    best_key, best = min(feasible.items(), key=lambda item: item[1].wall(for_count))
    pick = tune["pick"]
    picked = feasible.get(_key(pick["backend"], pick["settings"])) if pick else None
    fraction = best.wall(for_count) / picked.wall(for_count) if picked else 0.0
    return {
        "for_count": for_count,
        "grid_best": {"config": best_key, "wall_s": best.wall(for_count)},
        "tuned": tune,
        "tuned_wall_s_in_grid": picked.wall(for_count) if picked else math.inf,
        "fraction_of_grid_best": fraction,
        "meets_goal": fraction >= 0.95,
    }


def _key(backend: str | None, settings: dict[str, Any]) -> str:
    """A configuration's name in the report: its backend and sorted settings."""
    knobs = ",".join(f"{k}={v}" for k, v in sorted(settings.items()) if k != "dtype")
    return f"{backend}[{knobs}]"
