"""The Optuna study: which engine configuration serves the workload fastest.

Objective: problems per second on the workload (maximised).  Constraint:
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
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from tuner.answer_parity import DEFAULT_ALPHA, DEFAULT_THRESHOLD, ParityReport
from tuner.measurement.benchmark import TrialResult, parity_report, run_trial
from tuner.measurement.workload import Workload
from tuner.profiles import ProfileConfig
from tuner.search.space import SearchSpace, reference_config

# TrialRow, is_feasible and trial_rows live in tuner.search.trials; callers import them here too.
from tuner.search.trials import FINISHED, PARITY_ATTRS, TrialRow, is_feasible, trial_rows  # noqa: F401

# study user attribute holding the reference result of one dtype: the prefix, then the dtype
_REFERENCE_PREFIX = "reference/"


@dataclass(frozen=True, slots=True, kw_only=True)
class StudySettings:
    """How one worker runs the study.  ``n_trials`` is the study's total budget."""

    model: str
    n_trials: int = 20
    timeout_s: float | None = None
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


class SlowerThanBestPruner(optuna.pruners.BasePruner):
    """Prune a trial whose running throughput is below ``ratio`` x the best final one.

    Intermediate values are problems/s over the batches finished so far.  The
    comparison is against completed trials only, so the first trials are never
    pruned; ``ratio=0`` disables pruning.
    """

    def __init__(self, ratio: float = 0.5) -> None:
        self.ratio = ratio

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        if step is None or self.ratio <= 0:
            return False
        values = [t.value for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
        best = max((v for v in values if v), default=None)
        return best is not None and trial.intermediate_values[step] < self.ratio * best


def create_sampler(seed: int | None, n_trials: int) -> optuna.samplers.BaseSampler:
    """TPE over the conditional space; few random start-up trials for small budgets."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(
            seed=seed,
            n_startup_trials=max(2, min(10, n_trials // 3)),
            multivariate=True,
            group=True,  # the knobs of one backend form a group
            constant_liar=True,  # parallel workers avoid sampling what is running
        )


class Objective:
    """Measures the configuration a trial suggests; its return value is problems/s."""

    def __init__(
        self,
        space: SearchSpace,
        workload: Workload,
        settings: StudySettings,
        env: dict[str, str] | None = None,
        log: Callable[[str], None] = print,
    ) -> None:
        self.space, self.workload, self.settings = space, workload, settings
        self.env, self.log = env, log

    def __call__(self, trial: optuna.Trial) -> float:
        config = self.space.suggest(trial)
        previous = _same_params(trial)
        if previous is not None:  # TPE resampled a measured configuration: reuse it
            for key, value in previous.user_attrs.items():
                trial.set_user_attr(key, value)
            trial.set_user_attr("duplicate_of", previous.number)
            _set_constraints(trial, previous.user_attrs["constraints"])
            return previous.value
        dtype = config.settings["dtype"]
        reference = self.reference(trial.study, dtype, skip=config == reference_config(dtype))
        result = self._run(config, trial)
        if reference is None:  # this trial is the reference run
            reference = result
            store_reference(trial.study, dtype, result)
        report = parity_report(result, reference, self.workload.answers)
        self._record(trial, config, result, report)
        if result.status == "pruned":
            raise optuna.TrialPruned(result.message)
        return result.problems_per_s

    def reference(
        self, study: optuna.Study, dtype: str, *, skip: bool = False
    ) -> TrialResult | None:
        """The reference result for ``dtype``: stored in the study, or measured now."""
        stored = references(study).get(dtype)
        if stored is not None:
            return stored
        if skip:
            return None
        reference = reference_config(dtype)
        self.log(f"measuring the parity reference ({dtype}, batch size 1)")
        result = run_trial(
            reference.backend,
            self.settings.model,
            reference.settings,
            self.workload,
            time_limit_s=self.settings.trial_timeout_s,
            env=self.env,
        )
        store_reference(study, dtype, result)
        return result

    def _run(self, config: ProfileConfig, trial: optuna.Trial) -> TrialResult:
        size = self.workload.size

        def on_progress(done: int, elapsed: float) -> bool:
            if done >= size or done < self.settings.prune_min_fraction * size or elapsed <= 0:
                return False
            trial.report(done / elapsed, step=done)
            return trial.should_prune()

        return run_trial(
            config.backend,
            self.settings.model,
            config.settings,
            self.workload,
            time_limit_s=self.settings.trial_timeout_s,
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


def store_reference(study: optuna.Study, dtype: str, result: TrialResult) -> None:
    """Keep ``result`` as the study's batch-1 reference for ``dtype`` (when it finished)."""
    if result.is_ok:  # a failed reference is measured again by the next trial
        study.set_user_attr(_REFERENCE_PREFIX + dtype, result.as_dict())


def seed_study(study: optuna.Study, space: SearchSpace, previous: ProfileConfig | None) -> None:
    """Enqueue the reference (so it runs first), a previous profile, then each backend's
    largest batch.

    Throughput grows with batch size up to the memory bound (which the probe
    sets as the space's largest batch), so each backend's largest batch is the
    strongest prior; with a budget of a few trials, TPE's random start-up
    phase alone would often never reach it.
    """
    configs = [reference_config(space.dtypes[0])]
    configs += [previous] if previous is not None else []
    configs += space.largest_batch_configs()
    for config in configs:
        params = space.params_of(config)
        if params is not None:  # skip_if_exists: a second worker does not enqueue it again
            study.enqueue_trial(params, skip_if_exists=True)


def optimize(study: optuna.Study, objective: Objective, settings: StudySettings) -> None:
    """Run trials until the study holds ``n_trials`` of any state, or the timeout."""
    # Waiting (enqueued) trials are run by this call, so they do not lower its count.
    started = study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING))
    remaining = settings.n_trials - len(started)
    if remaining <= 0:
        return
    study.optimize(
        objective,
        n_trials=remaining,
        timeout=settings.timeout_s,
        callbacks=[optuna.study.MaxTrialsCallback(settings.n_trials, states=_COUNTED)],
        catch=(OSError, RuntimeError),  # an unexpected failure is a FAIL trial, not a dead study
    )


# Running and waiting trials count too, so two workers do not overshoot the budget.
_COUNTED = (*FINISHED, TrialState.RUNNING, TrialState.WAITING)


def references(study: optuna.Study) -> dict[str, TrialResult]:
    """The stored batch-1 reference result of each dtype."""
    return {
        key.removeprefix(_REFERENCE_PREFIX): TrialResult.from_dict(value)
        for key, value in study.user_attrs.items()
        if key.startswith(_REFERENCE_PREFIX)
    }
