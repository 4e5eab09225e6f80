"""The parity reference: batch 1 on the canary problems, measured once per key, shared.

Every trial's canary answers are compared with the reference's
(:mod:`tuner.answer_parity`).  Only the canaries are needed for that, so only
they run at batch 1: the whole workload at batch 1 is what ran an H100 tune out
of time (about 43 ms per token there).  The result depends on nothing but
:func:`reference_key`'s fields (model and revision, dtype, prompt settings,
canary problems, ``max_new_tokens``, and the kind of machine, whose kernels
decide near-tied tokens), so it is stored under that key in a dedicated study of
the same storage (:data:`REFERENCE_STUDY`): other workers, and later studies of
any name, read it instead of measuring it again.  Two workers that start at the
same moment may both measure it; the second write is the same result.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import warnings
from collections.abc import Callable, Mapping

import optuna

from common.hardware import fingerprint, hardware_id
from engines.models import model_revision
from tuner.measurement.benchmark import TrialResult, run_trial, workload_prefix
from tuner.measurement.workload import Workload
from tuner.search.space import reference_config

REFERENCE_STUDY = "infertune-references"
_PREFIX = "reference/"


def get_reference(
    study: optuna.Study,
    workload: Workload,
    dtype: str,
    *,
    time_limit_s: float,
    env: Mapping[str, str] | None = None,
    log: Callable[[str], None] = print,
) -> TrialResult:
    """The batch-1 reference of ``dtype`` on the canaries: ``study``'s own, the storage's,
    or measured now (within ``time_limit_s``) and stored for both.

    A failed measurement is returned but not stored: the next trial measures it again.
    """
    stored = references(study).get(dtype)
    if stored is not None:
        return stored
    key = reference_key(workload, dtype)
    result = load_shared(study, key)
    if result is not None:
        log(f"parity reference ({dtype}) read from the storage (key {key})")
    else:
        config, canaries = reference_config(dtype), canary_workload(workload)
        log(
            f"measuring the parity reference ({dtype}, batch size 1,"
            f" {canaries.size} canary problems, key {key})"
        )
        result = run_trial(
            config.backend,
            workload.model,
            config.settings,
            canaries,
            time_limit_s=time_limit_s,
            env=env,
        )
        partial = partial_reference(result)
        if partial is not None:  # this study judges on what it has; others measure it whole
            log(f"parity reference {partial.message}")
            store_reference(study, dtype, partial)
            return partial
        store_shared(study, key, result)
    store_reference(study, dtype, result)
    return result


def partial_reference(result: TrialResult) -> TrialResult | None:
    """A reference stopped at its time limit, as a usable reference of the canaries it
    finished (``None`` when it finished none): trials are then judged on those alone,
    rather than the whole tune ending with nothing because batch 1 is slow."""
    if result.status != "timeout" or not result.canary_token_ids or not result.seconds > 0:
        return None
    count = len(result.canary_token_ids)
    return dataclasses.replace(
        result,
        status="ok",
        problems_per_s=result.num_problems / result.seconds,
        message=f"partial: {count} canaries finished in the time limit ({result.message})",
    )


def canary_workload(workload: Workload) -> Workload:
    """The workload's canary problems alone: what the reference measures."""
    return workload_prefix(workload, workload.num_canary)


def reference_key(workload: Workload, dtype: str, machine: str | None = None) -> str:
    """A hash of everything the reference's canary outputs depend on.

    ``machine`` defaults to this machine's hardware id.
    """
    canaries = canary_workload(workload)
    parts = {
        "model": workload.model,
        "model_revision": model_revision(workload.model),
        "dtype": dtype,
        "prompt": workload.prompt_settings.tuned_record(),
        "dataset": workload.dataset,
        "canary_ids": list(canaries.problem_ids),
        "output_lengths": canaries.output_lengths and list(canaries.output_lengths),
        "max_new_tokens": workload.max_new_tokens,
        "hardware_id": machine or hardware_id(fingerprint()),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def _reference_study(study: optuna.Study) -> optuna.Study:
    # Same storage object as the tuning study (Optuna has no public accessor for
    # it): one connection, and a journal or SQLite file needs no second URL.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.create_study(
            storage=study._storage, study_name=REFERENCE_STUDY, load_if_exists=True
        )


def load_shared(study: optuna.Study, key: str) -> TrialResult | None:
    """The reference stored under ``key`` in ``study``'s storage, or ``None``."""
    stored = _reference_study(study).user_attrs.get(_PREFIX + key)
    return None if stored is None else TrialResult.from_dict(stored)


def store_shared(study: optuna.Study, key: str, result: TrialResult) -> None:
    """Share a finished reference under ``key`` (a failed one is measured again next time)."""
    if result.is_ok:
        _reference_study(study).set_user_attr(_PREFIX + key, result.as_dict())


def store_reference(study: optuna.Study, dtype: str, result: TrialResult) -> None:
    """Keep ``result`` as ``study``'s batch-1 reference for ``dtype`` (when it finished).

    The study's own copy is what its profile's baseline reads (:func:`references`).
    """
    if result.is_ok:  # a failed reference is measured again by the next trial
        study.set_user_attr(_PREFIX + dtype, result.as_dict())


def references(study: optuna.Study) -> dict[str, TrialResult]:
    """The batch-1 reference result of each dtype ``study`` used."""
    return {
        key.removeprefix(_PREFIX): TrialResult.from_dict(value)
        for key, value in study.user_attrs.items()
        if key.startswith(_PREFIX)
    }
