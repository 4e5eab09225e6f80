"""How the study picks and stops trials: the TPE sampler and the slower-than-best pruner.

:func:`tuner.search.storage.open_study` gives every study these two;
:mod:`tuner.search.study` re-exports them.
"""

from __future__ import annotations

import warnings

import optuna
from optuna.trial import FrozenTrial, TrialState

from tuner.search.trials import TrialRow


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
        # problems/s, not the objective: the study minimises wall time (objective_wall)
        completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        speeds = [TrialRow.from_trial(t).problems_per_s for t in completed]
        best = max((v for v in speeds if v), default=None)
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
