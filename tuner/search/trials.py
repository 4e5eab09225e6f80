"""Finished trials as typed rows: what tables, plots and the profile read.

A trial's outcome lives in its Optuna user attributes (set by
:class:`tuner.search.study.Objective`); :meth:`TrialRow.from_trial` reads them
in one place, so nothing downstream parses attribute names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
# ParityReport fields each trial records as a user attribute of the same name
PARITY_ATTRS = ("is_answering", "agreement", "right_to_wrong", "wrong_to_right", "accuracy_delta",
                "p_value")  # fmt: skip


def is_feasible(trial: FrozenTrial) -> bool:
    """Completed, finished its run, and met the parity threshold."""
    constraints = trial.user_attrs.get("constraints")
    return trial.state == TrialState.COMPLETE and constraints is not None and max(constraints) <= 0


@dataclass(frozen=True, slots=True, kw_only=True)
class TrialRow:
    """One finished trial as tables, plots and the profile read it.

    Built from the trial's user attributes in one place (:meth:`from_trial`), so
    nothing downstream parses attribute names or guesses at missing keys.
    """

    number: int
    state: str
    is_feasible: bool
    value: float
    backend: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    batch_size: int | None = None
    status: str | None = None
    message: str = ""
    problems_per_s: float = 0.0
    output_tokens_per_s: float = 0.0
    peak_memory_bytes: int | None = None
    agreement: float | None = None
    is_answering: bool | None = None
    right_to_wrong: int | None = None
    wrong_to_right: int | None = None
    accuracy_delta: float | None = None
    p_value: float | None = None
    duplicate_of: int | None = None
    # what the run's wall time is predicted from (tuner.search.objective_wall); None for a
    # trial that did not finish its run, or was recorded before the objective existed
    load_s: float | None = None
    warmup_s: float | None = None
    samples_per_problem: int = 1

    @property
    def startup_s(self) -> float | None:
        """Load plus warm-up: what the run pays before its first problem."""
        return None if self.load_s is None else self.load_s + (self.warmup_s or 0.0)

    @property
    def run_problems_per_s(self) -> float:
        """Problems of the intended run per second: a mode drawing k samples of each
        measured k requests per problem."""
        return self.problems_per_s / self.samples_per_problem

    @classmethod
    def from_trial(cls, trial: FrozenTrial) -> TrialRow:
        attrs = trial.user_attrs
        return cls(
            number=trial.number,
            state=trial.state.name,
            is_feasible=is_feasible(trial),
            value=trial.value or 0.0,
            backend=attrs.get("backend"),
            settings=dict(attrs.get("settings") or {}),
            batch_size=attrs.get("batch_size"),
            status=attrs.get("status"),
            message=attrs.get("message") or "",
            problems_per_s=attrs.get("problems_per_s") or 0.0,
            output_tokens_per_s=attrs.get("output_tokens_per_s") or 0.0,
            peak_memory_bytes=attrs.get("peak_memory_bytes"),
            **{name: attrs.get(name) for name in PARITY_ATTRS},
            duplicate_of=attrs.get("duplicate_of"),
            load_s=attrs.get("load_s"),
            warmup_s=attrs.get("warmup_s"),
            samples_per_problem=attrs.get("samples_per_problem") or 1,
        )


def trial_rows(study: optuna.Study) -> list[TrialRow]:
    """Every finished trial, fastest first (for tables and plots)."""
    rows = [TrialRow.from_trial(t) for t in study.get_trials(deepcopy=False, states=FINISHED)]
    return sorted(rows, key=lambda r: -r.problems_per_s)
