"""The tuner's objective: the wall time of the run the user will make.

A run pays the engine's load and warm-up once and its throughput once per
problem, so the configuration that finishes 50 problems first is not always
the one that finishes 5,000 first.  Each trial's line is::

    wall(N) = load_s + warmup_s + N * samples_per_problem / sequences_per_s

(the workload is timed in sequences: a mode with k samples per problem puts k
sequences in flight per problem, :func:`mode_workload`).  The study minimises
``wall(for_count)``; the profile then keeps, for every range of counts, the
configuration whose line is lowest there (:func:`count_ranges`).

A mode's parity is not token parity of sampled outputs (which differ by
design): the mode's workload repeats every problem's greedy prompt k times after
the originals, so the canaries (the first problems) and their parity rule are
those of the standard mode, and the mode only changes how many sequences are in
flight and so the throughput.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tuner.search.trials import TrialRow

if TYPE_CHECKING:
    import optuna

    from tuner.measurement.benchmark import TrialResult
    from tuner.measurement.workload import Workload


@dataclass(frozen=True, slots=True, kw_only=True)
class RunShape:
    """The run being tuned for: ``for_count`` problems of mode ``mode_key``."""

    for_count: int
    mode_key: str = "standard"
    samples_per_problem: int = 1

    def __post_init__(self) -> None:
        if self.for_count < 1:
            raise ValueError(f"for_count must be >= 1, got {self.for_count}")
        if self.samples_per_problem < 1:
            raise ValueError(f"samples_per_problem must be >= 1, got {self.samples_per_problem}")


@dataclass(frozen=True, slots=True, kw_only=True)
class WallLine:
    """One trial's predicted wall time as a function of the number of problems."""

    trial_number: int
    load_s: float
    warmup_s: float
    problems_per_s: float  # problems of the mode, not sequences

    def wall(self, count: int) -> float:
        return self.load_s + self.warmup_s + count / self.problems_per_s


def startup_seconds(result: TrialResult) -> tuple[float, float]:
    """``(load_s, warmup_s)`` of a trial; results measured before warm-up was timed
    carry only ``load_seconds``, so their warm-up counts as 0."""
    load = getattr(result, "load_s", None)
    load = getattr(result, "load_seconds", 0.0) if load is None else load
    return float(load or 0.0), float(getattr(result, "warmup_s", None) or 0.0)


def record_wall(trial: optuna.Trial, result: TrialResult, run: RunShape) -> float:
    """Record the trial's load, warm-up and predicted wall for ``run``; return the wall.

    A trial that did not finish has no throughput: its wall is infinite, which
    a minimising study ranks last.
    """
    load_s, warmup_s = startup_seconds(result)
    per_problem = result.problems_per_s / run.samples_per_problem
    wall = load_s + warmup_s + run.for_count / per_problem if per_problem > 0 else math.inf
    attrs = {"load_s": load_s, "warmup_s": warmup_s, "for_count": run.for_count,
             "samples_per_problem": run.samples_per_problem,
             "predicted_wall_s": wall if math.isfinite(wall) else None}  # fmt: skip
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    return wall


def wall_lines(study: optuna.Study) -> list[WallLine]:
    """The line of every feasible trial that recorded its startup (duplicates once)."""
    lines = []
    for row in map(TrialRow.from_trial, study.get_trials(deepcopy=False)):
        if not row.is_feasible or row.load_s is None or row.duplicate_of is not None:
            continue
        if row.run_problems_per_s > 0:
            line = WallLine(trial_number=row.number, load_s=row.load_s,
                            warmup_s=row.warmup_s or 0.0,
                            problems_per_s=row.run_problems_per_s)  # fmt: skip
            lines.append(line)
    return lines


def best_for(lines: Sequence[WallLine], count: int) -> WallLine:
    """The line with the least wall time at ``count`` (ties: the higher throughput)."""
    return min(lines, key=lambda line: (line.wall(count), -line.problems_per_s))


def count_ranges(lines: Sequence[WallLine]) -> list[tuple[int, int | None, WallLine]]:
    """``(min_count, max_count, winner)`` for each range of counts with one winner.

    The winner can only change where two lines cross (``a_i + N/b_i = a_j + N/b_j``),
    so the winner at the first whole count past each crossing holds up to the next
    one; consecutive ranges of the same winner are merged.  ``max_count`` of the
    last range is ``None`` (no bound).
    """
    if not lines:
        return []
    starts = {1}
    for i, first in enumerate(lines):
        for second in lines[i + 1 :]:
            slope = 1 / first.problems_per_s - 1 / second.problems_per_s
            if slope != 0:
                crossing = (second.load_s + second.warmup_s - first.load_s - first.warmup_s) / slope
                if crossing > 1:
                    starts.add(math.ceil(crossing))
    ranges: list[tuple[int, int | None, WallLine]] = []
    for start in sorted(starts):
        winner = best_for(lines, start)
        if ranges and ranges[-1][2] == winner:
            continue
        if ranges:
            ranges[-1] = (ranges[-1][0], start - 1, ranges[-1][2])
        ranges.append((start, None, winner))
    return ranges


def mode_workload(workload: Workload, samples_per_problem: int) -> Workload:
    """``workload`` with every problem's request repeated ``samples_per_problem`` times.

    The copies follow the originals, so the canaries stay first and greedy.
    """
    k = samples_per_problem
    if k == 1:
        return workload
    lengths = workload.output_lengths
    return dataclasses.replace(
        workload,
        problem_ids=workload.problem_ids * k,
        prompts=workload.prompts * k,
        answers=workload.answers * k,
        output_lengths=None if lengths is None else lengths * k,
    )
