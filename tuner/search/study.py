"""The Optuna study: which engine configuration finishes the intended run first.

Objective: the run's predicted wall seconds, load + warm-up + N / problems per
second, each measured by the trial (minimised; :mod:`tuner.search.objective_wall`;
problems/s stays in the trial's user attributes).  Constraint:
answer parity against the reference configuration (transformers, batch size 1,
same dtype) on the canary problems, by the one rule of
:mod:`tuner.answer_parity`: the share of canaries that agree (same extracted
answers for a model that answers, same tokens for a random-weight one) must
reach a threshold, and a model that answers must not be significantly less
accurate (McNemar's exact test on the right-to-wrong and wrong-to-right flips).
A trial that runs out of memory, crashes or times out completes with
throughput 0 and a violated constraint: it is recorded as infeasible through
Optuna's constraints (``Trial.set_constraint``), never lost, and the study goes
on.  Each trial runs in its own subprocess (:func:`tuner.benchmark.run_trial`).

Efficiency: the study is seeded with the reference and any previous profile
(``enqueue_trial``), a configuration sampled twice is not measured twice, and a
trial whose running throughput falls below a fraction of the best so far is
pruned (:class:`SlowerThanBestPruner`).  Several workers may share one study
through one storage: the trial budget is global (every trial of any state
counts), so N trials are run in total.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

import optuna
from optuna.trial import FrozenTrial, TrialState

from tuner.answer_parity import DEFAULT_ALPHA, DEFAULT_THRESHOLD, ParityReport
from tuner.measurement.benchmark import TrialResult, parity_report, run_trial, workload_prefix
from tuner.measurement.workload import Workload
from tuner.profiles import ProfileConfig
from tuner.search.budget import (
    STOP_BUDGET,
    STOP_N_TRIALS,
    STOP_REFERENCE,
    Budget,
    TuneProgress,
    costs_of,
    estimate_s,
    progress_of,
)
from tuner.search.objective_wall import RunShape, record_wall
from tuner.search.reference import get_reference, references, store_reference  # noqa: F401 (re-exported)
from tuner.search.sampling import SlowerThanBestPruner, create_sampler  # noqa: F401 (re-exported)
from tuner.search.space import SearchSpace

# TrialRow, is_feasible and trial_rows live in tuner.search.trials; callers import them here too.
from tuner.search.trials import FINISHED, PARITY_ATTRS, TrialRow, is_feasible, trial_rows  # noqa: F401

# A trial measures at least this many problems per sequence its batch holds: with
# 2x, the batch is full for about the first half of the run and fills up again
# only as rows finish, rather than the whole run being one partly-filled batch.
FILL_FACTOR = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class StudySettings:
    """How one worker runs the study.  ``n_trials`` is the study's total budget of trials,
    ``timeout_s`` its wall clock (:class:`tuner.search.budget.Budget`; ``None``: none);
    each trial measures at least ``trial_size`` problems (``None``: the whole workload),
    more when its batch needs them (:data:`FILL_FACTOR`)."""

    model: str
    n_trials: int = 20
    timeout_s: float | None = None
    trial_size: int | None = None
    parity_threshold: float = DEFAULT_THRESHOLD
    parity_alpha: float = DEFAULT_ALPHA
    trial_timeout_s: float = 600.0
    prune_ratio: float = 0.5
    prune_min_fraction: float = 0.25
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.n_trials < 1:
            raise ValueError(f"n_trials must be >= 1, got {self.n_trials}")
        if not 0 <= self.parity_threshold <= 1:
            raise ValueError(f"parity_threshold must be in [0, 1], got {self.parity_threshold}")
        if not 0 < self.parity_alpha < 1:
            raise ValueError(f"parity_alpha must be in (0, 1), got {self.parity_alpha}")
        if self.trial_timeout_s <= 0 or (self.timeout_s is not None and self.timeout_s <= 0):
            raise ValueError("trial_timeout_s and timeout_s must be > 0")
        if not 0 <= self.prune_ratio < 1:
            raise ValueError(f"prune_ratio must be in [0, 1), got {self.prune_ratio}")


class Objective:
    """Measures the configuration a trial suggests; its return value is the predicted wall
    seconds of ``run`` (:mod:`tuner.search.objective_wall`; default: the workload's size)."""

    def __init__(
        self,
        space: SearchSpace,
        workload: Workload,
        settings: StudySettings,
        env: dict[str, str] | None = None,
        log: Callable[[str], None] = print,
        run: RunShape | None = None,
        budget: Budget | None = None,
        progress: Callable[[TuneProgress], None] | None = None,
    ) -> None:
        self.space, self.workload, self.settings = space, workload, settings
        self.env, self.log = env, log
        self.run = run or RunShape(for_count=workload.size)
        self.budget = budget or Budget(total_s=settings.timeout_s or math.inf)
        self.progress = progress
        self.stop_reason: str | None = None  # set when this worker stops the study itself

    def __call__(self, trial: optuna.Trial) -> float:
        config = self.space.suggest(trial)
        previous = _same_params(trial)
        if previous is not None:  # TPE resampled a measured configuration: reuse it
            for key, value in previous.user_attrs.items():
                trial.set_user_attr(key, value)
            trial.set_user_attr("duplicate_of", previous.number)
            _set_constraints(trial, previous.user_attrs["constraints"])
            return previous.value
        reference = self.reference(trial.study, config.settings["dtype"])
        if not reference.is_ok:  # no trial could be judged: stop rather than measure blind
            self._not_started(trial, config, STOP_REFERENCE, f"the parity reference did not"
                              f" finish ({reference.status}: {reference.message})")  # fmt: skip
        workload = self.trial_workload(config)
        self._check_fits(trial, config, workload, reference)
        self._report_progress(trial.study, running=trial.number)
        result = self._run(config, trial, workload)
        report = parity_report(result, reference, workload.answers)
        self._record(trial, config, result, report)
        if result.status == "pruned":
            raise optuna.TrialPruned(result.message)
        return record_wall(trial, result, self.run)

    def trial_workload(self, config: ProfileConfig) -> Workload:
        """The workload's first problems, enough to keep ``config``'s batch full."""
        least = self.settings.trial_size or self.workload.size
        wanted = max(least, FILL_FACTOR * (config.batch_size or 1))
        # Never past the run tuned for: it predicts that run no better, and filling a large
        # batch twice (vLLM's 128 sequences for a 32-problem k=5 vote) outlasts the run.
        run = self.run.for_count * self.run.samples_per_problem
        return workload_prefix(self.workload, min(wanted, max(least, run)))

    def reference(self, study: optuna.Study, dtype: str) -> TrialResult:
        """The batch-1 reference on the canaries (:func:`tuner.search.reference.get_reference`)."""
        limit = self.budget.reference_limit_s(self.settings.trial_timeout_s)
        return get_reference(
            study, self.workload, dtype, time_limit_s=limit, env=self.env, log=self.log
        )

    def _check_fits(
        self, trial: optuna.Trial, config: ProfileConfig, workload: Workload, ref: TrialResult
    ) -> None:
        """Do not start a trial that cannot finish in what is left of the budget."""
        costs = costs_of(trial.study, ref)
        needed = estimate_s(costs, config.backend, config.batch_size or 1, workload.size)
        left = self.budget.remaining_s()
        if needed <= left:
            return
        # Stop once not even the cheapest candidate fits; otherwise TPE may pick one that does.
        cheapest = min(
            estimate_s(costs, c.backend, c.batch_size or 1, self.trial_workload(c).size)
            for c in self.space.smallest_batch_configs()
        )
        reason = STOP_BUDGET if cheapest > left else None
        self._not_started(trial, config, reason, f"needs about {needed:.0f} s, {left:.0f} s left")

    def _not_started(
        self, trial: optuna.Trial, config: ProfileConfig, stop: str | None, why: str
    ) -> NoReturn:
        """Record ``trial`` as not started (pruned, status ``skipped``); ``stop``: end the study."""
        attrs = {"status": "skipped", "message": f"not started: {why}", "backend": config.backend,
                 "settings": config.settings, "batch_size": config.batch_size}  # fmt: skip
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        self.log(f"trial {trial.number}: {config.backend} {json.dumps(config.settings)} {why}")
        if stop is not None:
            self.stop_reason = stop
            trial.study.stop()
        raise optuna.TrialPruned(attrs["message"])

    def after_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """Optuna callback: the progress line after each trial."""
        self._report_progress(study, running=None)

    def _report_progress(self, study: optuna.Study, running: int | None) -> None:
        if self.progress is not None:
            self.progress(progress_of(study, self.settings.n_trials, self.budget, running))

    def _run(self, config: ProfileConfig, trial: optuna.Trial, workload: Workload) -> TrialResult:
        size = workload.size

        def on_progress(done: int, elapsed: float) -> bool:
            if done >= size or done < self.settings.prune_min_fraction * size or elapsed <= 0:
                return False
            trial.report(done / elapsed, step=done)
            return trial.should_prune()

        return run_trial(
            config.backend,
            self.settings.model,
            config.settings,
            workload,
            time_limit_s=self.budget.trial_limit_s(self.settings.trial_timeout_s),
            on_progress=on_progress,
            env=self.env,
        )

    def _record(
        self, trial: optuna.Trial, config: ProfileConfig, result: TrialResult, report: ParityReport
    ) -> None:
        attrs = {
            "status": result.status,
            "message": result.message,
            "backend": config.backend,
            "settings": config.settings,
            "batch_size": config.batch_size,
            "problems_per_s": result.problems_per_s,
            "output_tokens_per_s": result.output_tokens_per_s,
            "batch_latency_p50_s": (result.batch_latency or {}).get("p50"),
            "peak_memory_bytes": result.peak_memory_bytes,
            "num_problems": result.num_problems,
            "seconds": result.seconds,
        }
        attrs |= {name: getattr(report, name) for name in PARITY_ATTRS}
        # <= 0 is feasible: the same answers as the reference, and a run that finished.
        attrs["constraints"] = [
            report.shortfall(self.settings.parity_threshold, self.settings.parity_alpha),
            0.0 if result.is_ok else 1.0,
        ]
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        _set_constraints(trial, attrs["constraints"])
        status = result.status if result.is_ok else f"{result.status}: {result.message}"
        self.log(
            f"trial {trial.number}: {config.backend} {json.dumps(config.settings)}"
            f" -> {result.problems_per_s:.3g} problems/s, {report.describe()}, {status}"
        )


def _set_constraints(trial: optuna.Trial, values: list[float]) -> None:
    for name, value in zip(("parity", "finished"), values, strict=True):
        trial.set_constraint(name, value)


def _same_params(trial: optuna.Trial) -> FrozenTrial | None:
    for other in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if other.params == trial.params and "constraints" in other.user_attrs:
            return other
    return None


def seed_study(
    study: optuna.Study,
    space: SearchSpace,
    previous: ProfileConfig | None,
    *,
    samples_per_problem: int = 1,
) -> None:
    """Enqueue a previous profile, then each backend's largest batch up to the probe's maximum.

    Throughput grows with batch size up to the memory bound (which the probe
    sets as the space's largest batch), so each backend's largest batch is the
    strongest prior (vLLM's at the same size: :meth:`SearchSpace.seed_configs`); with
    a budget of a few trials, TPE's random start-up phase alone would often never
    reach it.  The batch-1 reference is no trial:
    it runs on the canaries alone (:meth:`Objective.reference`).
    """
    configs = [previous] if previous is not None else []
    # vLLM first: the fastest engine wherever it was measured (SmolLM2 on the 2-core CPU: 16x
    # batch 1 with 32 sequences, transformers 10.6x at batch 32), and under a short budget the
    # first seeds may be all that run.
    seeds = space.seed_configs(samples_per_problem=samples_per_problem)
    configs += sorted(seeds, key=lambda config: config.backend != "vllm")
    for config in configs:
        params = space.params_of(config)
        if params is not None:  # skip_if_exists: a second worker does not enqueue it again
            study.enqueue_trial(params, skip_if_exists=True)


def optimize(study: optuna.Study, objective: Objective, settings: StudySettings) -> str:
    """Run trials until the study holds ``n_trials`` of any state, or the budget is spent.

    Returns:
        Why it stopped: a :data:`tuner.search.budget.STOP_REASONS` value.
    """
    # Waiting (enqueued) trials are run by this call, so they do not lower its count.
    started = study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING))
    remaining, left = settings.n_trials - len(started), objective.budget.remaining_s()
    if remaining <= 0 or left <= 0:
        return STOP_N_TRIALS if remaining <= 0 else STOP_BUDGET
    study.optimize(
        objective,
        n_trials=remaining,
        timeout=None if math.isinf(left) else left,  # no new trial past the deadline
        callbacks=[
            optuna.study.MaxTrialsCallback(settings.n_trials, states=_COUNTED),
            objective.after_trial,
        ],
        catch=(OSError, RuntimeError),  # an unexpected failure is a FAIL trial, not a dead study
    )
    if objective.stop_reason is not None:
        return objective.stop_reason
    counted = study.get_trials(deepcopy=False, states=_COUNTED)
    return STOP_N_TRIALS if len(counted) >= settings.n_trials else STOP_BUDGET


# Running trials count too, so two workers do not overshoot the cap; waiting ones do not:
# they are run by this very call (a seeded study would otherwise stop after one trial).
_COUNTED = (*FINISHED, TrialState.RUNNING)
