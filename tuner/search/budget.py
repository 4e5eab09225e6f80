"""The tune's wall-clock budget: how long it may run, and whether a trial still fits.

``infertune tune --budget 10m`` bounds the whole tune.  The time is shared out
so the tune always ends with what it measured:

- the parity reference may take at most :data:`REFERENCE_SHARE` of what remains
  (without it no trial can be judged, so it must not starve, nor eat everything);
- each trial's subprocess limit is what remains, less :data:`FINISH_RESERVE_S`
  for saving the profile and plots (:meth:`Budget.trial_limit_s`);
- a trial whose estimated cost (:func:`estimate_s`) exceeds what remains is not
  started: it could only be killed at the deadline, its time lost.

A stop reason (:data:`STOP_REASONS`) says why the search ended; the profile
keeps it with the budget used.
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from engines.errors import ConfigError
from tuner.search.trials import TrialRow, is_feasible

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

    from tuner.measurement.benchmark import TrialResult
    from tuner.profiles import Profile

DEFAULT_BUDGET_S = 600.0
REFERENCE_SHARE = 0.5
FINISH_RESERVE_S = 10.0  # the profile, its plots and the table after the last trial

STOP_BUDGET = "budget"
STOP_N_TRIALS = "n_trials"
STOP_NO_FEASIBLE = "no feasible trial"
STOP_REFERENCE = "reference failed"
STOP_REASONS = (STOP_BUDGET, STOP_N_TRIALS, STOP_NO_FEASIBLE, STOP_REFERENCE)

_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)([hms])")


def parse_duration(text: str, flag: str = "--budget") -> float:
    """Seconds in ``text``: ``10m``, ``90s``, ``1h30m``, ``2.5m`` or plain seconds (``600``).

    Raises:
        ConfigError: not a duration, or not positive; the message names ``flag``.
    """
    spoken = text.strip().lower()
    fix = f"{flag} {text!r}: want a duration such as 10m, 90s, 1h30m or plain seconds"
    try:
        seconds = float(spoken)
    except ValueError:
        parts = _PART.findall(spoken)
        if not parts or "".join(n + u for n, u in parts) != spoken or _repeats(parts):
            raise ConfigError(fix) from None
        seconds = sum(float(n) * _UNIT_S[u] for n, u in parts)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"{fix}, greater than 0")
    return seconds


def _repeats(parts: list[tuple[str, str]]) -> bool:
    units = [u for _, u in parts]
    return len(set(units)) != len(units) or units != sorted(units, key="hms".index)


def format_duration(seconds: float) -> str:
    """``754.2`` -> ``12m34s``: how the progress line and the summary show time."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


@dataclass(frozen=True, slots=True, kw_only=True)
class Budget:
    """``total_s`` of wall clock from ``started`` (``time.monotonic``); inf: no budget."""

    total_s: float
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        if not self.total_s > 0:
            raise ValueError(f"Budget.total_s must be > 0, got {self.total_s}")

    def used_s(self) -> float:
        return time.monotonic() - self.started

    def remaining_s(self) -> float:
        """Seconds left for measuring (the finishing reserve already set aside)."""
        reserve = min(FINISH_RESERVE_S, 0.05 * self.total_s)
        return max(0.0, self.total_s - reserve - self.used_s())

    def reference_limit_s(self, cap_s: float) -> float:
        return min(cap_s, REFERENCE_SHARE * self.remaining_s())

    def trial_limit_s(self, cap_s: float) -> float:
        return min(cap_s, self.remaining_s())


@dataclass(frozen=True, slots=True, kw_only=True)
class Cost:
    """What one finished run of ``backend`` at ``batch_size`` cost: start-up and rate."""

    backend: str
    batch_size: int
    startup_s: float
    problems_per_s: float


def estimate_s(costs: Iterable[Cost], backend: str, batch_size: int, num_problems: int) -> float:
    """The time a trial is expected to need at best, from the runs measured so far.

    Start-up: the fastest measured for ``backend`` (else for any backend: vLLM's
    is longer than transformers', so this errs towards starting the trial).
    Rate: the best any measured run allows if throughput grew at most linearly
    with the batch size (a sequence in a batch is never faster than alone), so a
    large batch is not judged by batch 1's speed.  0 when nothing was measured.
    """
    costs = list(costs)
    if not costs:
        return 0.0
    own = [c.startup_s for c in costs if c.backend == backend]
    startup = min(own or [c.startup_s for c in costs])
    rate = max(c.problems_per_s * max(1.0, batch_size / c.batch_size) for c in costs)
    return startup + num_problems / rate


def costs_of(study: optuna.Study, reference: TrialResult) -> list[Cost]:
    """The cost of every trial of ``study`` that finished its run, and of the reference."""
    costs = [_cost("transformers", 1, reference)] if reference.is_ok else []
    for row in map(TrialRow.from_trial, study.get_trials(deepcopy=False)):
        if row.status == "ok" and row.problems_per_s and row.startup_s is not None:
            cost = Cost(backend=row.backend, batch_size=row.batch_size or 1,
                        startup_s=row.startup_s, problems_per_s=row.problems_per_s)  # fmt: skip
            costs.append(cost)
    return costs


def _cost(backend: str, batch_size: int, result: TrialResult) -> Cost:
    startup = result.load_s + result.warmup_s
    return Cost(backend=backend, batch_size=batch_size, startup_s=startup,
                problems_per_s=result.problems_per_s)  # fmt: skip


def best_feasible(study: optuna.Study) -> FrozenTrial | None:
    """The best feasible trial by the study's own direction (``None`` before one finishes)."""
    import optuna

    trials = study.get_trials(deepcopy=False)
    feasible = [t for t in trials if is_feasible(t) and t.value is not None]
    if not feasible:
        return None
    sign = -1.0 if study.direction == optuna.study.StudyDirection.MAXIMIZE else 1.0
    return min(feasible, key=lambda t: (sign * t.value, t.number))


@dataclass(frozen=True, slots=True, kw_only=True)
class TuneProgress:
    """What the live progress line shows: trials done, the best so far, time left."""

    num_done: int
    n_trials: int
    remaining_s: float
    running: int | None = None  # the trial being measured now
    best_number: int | None = None
    best_problems_per_s: float | None = None

    def describe(self) -> str:
        best = (
            f"best trial {self.best_number}: {self.best_problems_per_s:.3g} problems/s"
            if self.best_number is not None and self.best_problems_per_s is not None
            else "no feasible trial yet"
        )
        now = f", measuring trial {self.running}" if self.running is not None else ""
        left = "no limit" if math.isinf(self.remaining_s) else format_duration(self.remaining_s)
        return f"{self.num_done}/{self.n_trials} trials{now}; {best}; {left} left"


def progress_of(
    study: optuna.Study, n_trials: int, budget: Budget, running: int | None
) -> TuneProgress:
    """The progress line's figures now: ``running`` is the trial being measured, if any."""
    from tuner.search.trials import FINISHED

    best = best_feasible(study)
    return TuneProgress(
        num_done=len(study.get_trials(deepcopy=False, states=FINISHED)),
        n_trials=n_trials,
        remaining_s=budget.remaining_s(),
        running=running,
        best_number=None if best is None else best.number,
        best_problems_per_s=None if best is None else TrialRow.from_trial(best).problems_per_s,
    )


@dataclass(frozen=True, slots=True)
class SearchEnd:
    """How the search ended: its budget and why it stopped (a :data:`STOP_REASONS` value)."""

    budget: Budget
    reason: str

    def record(self, profile: Profile, *, feasible: bool) -> Profile:
        """``profile`` with the budget, what was used and the stop reason in its study record."""
        if profile.study is None:
            return profile
        total = self.budget.total_s
        study = dataclasses.replace(
            profile.study,
            budget_s=None if math.isinf(total) else total,
            budget_used_s=round(self.budget.used_s(), 1),
            stop_reason=self.stop_reason(feasible=feasible),
        )
        return dataclasses.replace(profile, study=study)

    def stop_reason(self, *, feasible: bool) -> str:
        return self.reason if feasible or self.reason == STOP_REFERENCE else STOP_NO_FEASIBLE

    def fields(self, *, feasible: bool) -> dict[str, object]:
        """The :class:`tuner.search.tuning.TuneOutcome` fields."""
        return {
            "stop_reason": self.stop_reason(feasible=feasible),
            "budget_s": self.budget.total_s,
            "budget_used_s": self.budget.used_s(),
        }
