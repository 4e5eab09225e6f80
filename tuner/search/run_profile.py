"""The profile of a study tuned for one run: the winner at its count, per range of counts,
and kept beside the entries of the other modes tuned before.

:func:`run_shape` turns ``tune``'s flags into the :class:`RunShape` the objective
minimises for; :func:`fit_profile` turns the finished study into the profile
entry of that run's mode (:mod:`tuner.search.objective_wall` explains the lines).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from typing import Any

import optuna

from engines.errors import ConfigError
from tuner.profiles import (
    CountRange,
    ModeEntry,
    Profile,
    ProfileConfig,
    ProfileError,
    ProfileMetrics,
    check_compatible,
)
from tuner.search.objective_wall import RunShape, WallLine, best_for, count_ranges, wall_lines
from tuner.search.trials import TrialRow

# builds the profile of one trial row (tuner.reports.tune.build_profile with its context bound)
BuildProfile = Callable[[TrialRow], Profile]


def run_shape(
    dataset: str,
    *,
    for_count: int | None = None,
    mode: str = "standard",
    num_runs: int | None = None,
    data_dir: str | os.PathLike[str] | None = None,
) -> RunShape:
    """The run to tune for: ``for_count`` problems (default: the whole dataset) of ``mode``."""
    from evaluation.datasets import load_problems
    from evaluation.plan import MODES
    from evaluation.request import mode_key, samples_per_problem

    if mode not in MODES:
        raise ConfigError(f"unknown --mode {mode!r}; choose one of: {', '.join(MODES)}")
    if num_runs is not None and (mode != "majority_vote" or num_runs < 1):
        raise ConfigError(
            f"--num-runs {num_runs}: only --mode majority_vote takes it, and it must be >= 1"
        )
    if for_count is not None and for_count < 1:
        raise ConfigError(f"--for-count must be >= 1, got {for_count}")
    count = for_count or len(load_problems(dataset, data_dir=data_dir))
    return RunShape(
        for_count=count,
        mode_key=mode_key(mode, num_runs),
        samples_per_problem=samples_per_problem(mode, num_runs),
    )


def best_row(study: optuna.Study, rows: Sequence[TrialRow], run: RunShape) -> TrialRow | None:
    """The feasible row whose run of ``run.for_count`` problems ends first."""
    lines = wall_lines(study)
    if not lines:  # trials of an older infertune: no startup recorded, fastest first
        return next((r for r in rows if r.is_feasible), None)
    number = best_for(lines, run.for_count).trial_number
    return next(r for r in rows if r.number == number)


def fit_profile(
    study: optuna.Study,
    rows: Sequence[TrialRow],
    run: RunShape,
    build: BuildProfile,
    *,
    existing: Profile | None = None,
    extra_workload: dict[str, Any] | None = None,
) -> Profile | None:
    """The profile holding ``run``'s mode entry, beside ``existing``'s other modes.

    ``existing`` (this machine's earlier profile of the model) keeps its other
    entries when it still fits this machine; the entry for ``run``'s mode is
    replaced.  ``None`` when no trial was feasible.
    """
    best = best_row(study, rows, run)
    if best is None:
        return None
    lines = {line.trial_number: line for line in wall_lines(study)}
    profile = build(best)
    entry = _entry(profile, lines.get(best.number), run)
    ranges = count_ranges(list(lines.values())) if lines else []
    if len(ranges) > 1:
        by_number = {r.number: r for r in rows}
        entry = dataclasses.replace(entry, by_count=tuple(
            _range(build(by_number[line.trial_number]), line, run, low, high)
            for low, high, line in ranges
        ))  # fmt: skip
    entry = dataclasses.replace(entry, workload=entry.workload | (extra_workload or {}))
    return _merged(profile, run.mode_key, entry, existing)


def _metrics(profile: Profile, line: WallLine | None, run: RunShape) -> ProfileMetrics:
    """``profile``'s metrics per problem of the mode, with the run's wall prediction."""
    k = run.samples_per_problem
    metrics = profile.metrics
    per_problem = dataclasses.replace(
        metrics,
        problems_per_s=metrics.problems_per_s / k,
        output_tokens_per_s=metrics.output_tokens_per_s,
        baseline_problems_per_s=metrics.baseline_problems_per_s / k,
        for_count=run.for_count,
    )
    if line is None:
        return per_problem
    return dataclasses.replace(per_problem, load_s=line.load_s, warmup_s=line.warmup_s,
                               predicted_wall_s=line.wall(run.for_count))  # fmt: skip


def _entry(profile: Profile, line: WallLine | None, run: RunShape) -> ModeEntry:
    workload = profile.workload | {"mode": run.mode_key,
                                   "samples_per_problem": run.samples_per_problem}  # fmt: skip
    return ModeEntry(config=_for_mode(profile.config, run), metrics=_metrics(profile, line, run),
                     workload=workload, study=profile.study)  # fmt: skip


def _for_mode(config: ProfileConfig, run: RunShape) -> ProfileConfig:
    """The configuration as the mode's run sets it: the trial's batch counted sequences of
    the repeated workload; a backend whose batch counts requests (each asking for k
    samples) gets 1/k of it, so as many sequences are in flight."""
    from engines.registry import batch_field
    from evaluation.request import sequences_per_batch_unit

    unit = sequences_per_batch_unit(config.backend, run.samples_per_problem)
    knob = batch_field(config.backend)
    batch = config.settings.get(knob)
    if unit == 1 or not isinstance(batch, int):
        return config
    return dataclasses.replace(config, settings=config.settings | {knob: max(1, batch // unit)})


def _range(
    profile: Profile, line: WallLine, run: RunShape, low: int, high: int | None
) -> CountRange:
    # each range's prediction is for a run of its own largest (or smallest, unbounded) count
    shape = dataclasses.replace(run, for_count=high or low)
    return CountRange(config=_for_mode(profile.config, run), metrics=_metrics(profile, line, shape),
                      min_count=low, max_count=high)  # fmt: skip


def _merged(new: Profile, mode: str, entry: ModeEntry, existing: Profile | None) -> Profile:
    """``new`` (this machine, now) holding every entry: ``existing``'s, then ``entry``."""
    entries = {**_kept_entries(new, existing), mode: entry}
    own = "standard" if "standard" in entries else mode
    top = entries.pop(own)
    return dataclasses.replace(new, config=top.config, metrics=top.metrics,
                               by_count=top.by_count, workload=top.workload, study=top.study,
                               mode=own, modes=entries)  # fmt: skip


def _kept_entries(new: Profile, existing: Profile | None) -> dict[str, ModeEntry]:
    if existing is None or existing.model != new.model:
        return {}
    try:  # tuned with other library versions: its entries no longer hold
        check_compatible(existing, new.hardware)
    except ProfileError:
        return {}
    return existing.entries()
