"""Tuning: run (or join) the Optuna study for a model on this machine, save the best profile.

:func:`run_tuning` is what ``infertune tune`` runs; :func:`tuner.api.tune` is the
notebook call on top of it.  Every input check (model, dataset size, storage, a
corrupted earlier profile) happens before the first trial, so a mistake costs
seconds and overwrites nothing.  The profile goes to
``<profiles root>/<model-slug>/<hardware-id>.json``, the plots next to it, and the
study by default to ``<profiles root>/<model-slug>/studies.db``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from common.hardware import Hardware, fingerprint, hardware_id
from common.io import check_can_create
from common.naming import model_slug
from engines.errors import BackendUnavailableError, ConfigError, InfertuneError
from tuner.answer_parity import DEFAULT_THRESHOLD
from tuner.measurement.workload import DEFAULT_CANARY, DEFAULT_MAX_NEW_TOKENS, DEFAULT_SIZE
from tuner.profiles import Profile, ProfileConfig, find_profile, load_profile, profiles_root
from tuner.search.budget import DEFAULT_BUDGET_S, Budget, SearchEnd
from tuner.search.space import SearchSpace
from tuner.search.study import FILL_FACTOR, TrialRow

if TYPE_CHECKING:
    import optuna

    from tuner.measurement.workload import Workload
    from tuner.search.budget import TuneProgress
    from tuner.search.objective_wall import RunShape


class NoFeasibleTrialError(InfertuneError):
    """Every configuration failed or changed answers: there is no profile to save."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TuneOutcome:
    """A finished study: every trial, the reference throughput, the saved profile if any,
    why the search stopped and how much of its wall-clock budget it used."""

    rows: tuple[TrialRow, ...]
    baseline: float | None
    stop_reason: str
    budget_s: float
    budget_used_s: float
    mode: str = "standard"  # the mode entry this study tuned (the profile may hold others)
    best: TrialRow | None = None
    profile: Profile | None = None
    path: Path | None = None
    plots: tuple[Path, ...] = ()
    notes: tuple[str, ...] = ()


def run_tuning(
    model: str,
    dataset: str,
    *,
    n_trials: int = 20,
    backends: Sequence[str] | None = None,
    count: int = DEFAULT_SIZE,
    canary_size: int = DEFAULT_CANARY,
    parity_threshold: float = DEFAULT_THRESHOLD,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    max_batch_size: int | None = None,
    trial_timeout: float = 600.0,
    budget_s: float | None = DEFAULT_BUDGET_S,
    timeout: float | None = None,
    seed: int | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    profiles_dir: str | os.PathLike[str] | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    chat_template: bool | None = None,
    system_prompt: str | None = None,
    stop: Sequence[str] | None = None,
    for_count: int | None = None,
    mode: str = "standard",
    num_runs: int | None = None,
    progress: Callable[[TuneProgress], None] | None = None,
    log: Callable[[str], None] = print,
) -> TuneOutcome:
    """Run (or join) the study and save the best feasible trial as the profile.

    ``chat_template`` (``None``: auto), ``system_prompt`` and ``stop`` shape the
    workload's requests as ``infertune eval`` sends them; the profile records them.
    The study minimises the wall time of a run of ``for_count`` problems (default:
    the dataset's size) in ``mode`` (``num_runs``: majority_vote's k); the profile
    keeps that mode's entry beside the other modes' (:mod:`tuner.search.run_profile`).

    ``budget_s`` bounds the whole call's wall clock (``None``: no bound; ``timeout``
    is its older name); ``progress`` sees the figures of the live progress line.
    Each trial measures ``count`` problems, or more of the dataset when its batch
    needs them to be full (:data:`tuner.search.study.FILL_FACTOR`).
    """
    import optuna

    from tuner.measurement.workload import build_workload
    from tuner.search.objective_wall import mode_workload
    from tuner.search.run_profile import run_shape
    from tuner.search.storage import open_study
    from tuner.search.study import Objective, StudySettings, optimize, seed_study

    # Heartbeats, grouped TPE and skip_if_exists are "experimental" but stable in practice.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    budget = _budget(budget_s if timeout is None else timeout)
    try:
        settings = StudySettings(
            model=model,
            n_trials=n_trials,
            timeout_s=None if math.isinf(budget.total_s) else budget.total_s,
            parity_threshold=parity_threshold,
            trial_timeout_s=trial_timeout,
            seed=seed,
        )
    except ValueError as error:
        raise ConfigError(str(error)) from None
    run = run_shape(dataset, for_count=for_count, mode=mode, num_runs=num_runs, data_dir=data_dir)
    root = profiles_root(profiles_dir)
    # before the workload loads a tokenizer and the trials run: the profile must fit somewhere
    check_can_create(root, what="profiles", fix="pass a writable folder as --profiles-dir")
    hardware = fingerprint()
    space = _space(backends, hardware, max_batch_size, max_new_tokens)
    workload = build_workload(
        model,
        dataset,
        size=pool_size(dataset, data_dir, count, space, run.samples_per_problem),
        max_new_tokens=max_new_tokens,
        num_canary=canary_size,
        data_dir=data_dir,
        chat_template=chat_template,
        system_prompt=system_prompt,
        stop=stop,
    )
    workload = mode_workload(workload, run.samples_per_problem)
    settings = dataclasses.replace(settings, trial_size=count * run.samples_per_problem)
    slug_dir = root / model_slug(model)
    if storage is None:
        slug_dir.mkdir(parents=True, exist_ok=True)
    storage = storage or f"sqlite:///{slug_dir / 'studies.db'}"
    # The workload's key in the default name: trials measured on other prompts (or
    # another count or budget) are never reused as if they were this workload's.
    # "-wall": studies before it maximised problems/s, and Optuna keeps a study's direction
    default_name = f"{model_slug(model)}-{hardware_id(hardware)}-wall-{workload.key[:8]}"
    study = open_study(storage, study_name or default_name, settings)
    _check_same_workload(study, workload)
    previous = _previous_config(model, hardware, root, run.mode_key)
    seed_study(study, space, previous, samples_per_problem=run.samples_per_problem)
    objective = Objective(
        space, workload, settings, log=log, run=run, budget=budget, progress=progress
    )
    search = SearchEnd(budget=budget, reason=optimize(study, objective, settings))
    return _finish(study, workload, hardware, storage, root, run, max_batch_size, search)


def _budget(seconds: float | None) -> Budget:
    if seconds is not None and not seconds > 0:
        raise ConfigError(f"--budget must be more than 0 seconds, got {seconds:g}")
    return Budget(total_s=math.inf if seconds is None else seconds)


def pool_size(
    dataset: str, data_dir: str | os.PathLike[str] | None, count: int, space: SearchSpace, k: int
) -> int:
    """Problems to sample: ``count``, or enough for the largest batch to be full.

    The largest candidate needs :data:`FILL_FACTOR` sequences per batch slot
    (``k`` sequences per problem in a sampling mode); trials of smaller batches
    measure a prefix of the same sample.  Never more than the dataset holds, and
    never fewer than ``count`` (a too-small dataset is refused by the workload).
    """
    from evaluation.datasets import load_problems

    largest = max(config.batch_size or 1 for config in space.largest_batch_configs())
    wanted = math.ceil(FILL_FACTOR * largest / k)
    if count < 1 or wanted <= count:
        return count
    return max(count, min(wanted, len(load_problems(dataset, data_dir=data_dir))))


_WORKLOAD_KEY = "workload_key"


def _check_same_workload(study: optuna.Study, workload: Workload) -> None:
    """Mark the study with the workload's key; refuse one measured on another workload."""
    stored = study.user_attrs.get(_WORKLOAD_KEY)
    if stored is None:
        study.set_user_attr(_WORKLOAD_KEY, workload.key)
    elif stored != workload.key:
        raise ConfigError(
            f"study {study.study_name!r} was measured on another workload (other prompt"
            " settings, count, budget or dataset); pass another --study-name, or the same"
            " workload flags as before"
        )


def _finish(
    study: optuna.Study,
    workload: Workload,
    hardware: Hardware,
    storage: str,
    root: Path,
    run: RunShape,
    max_batch_size: int | None,
    search: SearchEnd,
) -> TuneOutcome:
    from tuner.profiles import update_profile
    from tuner.reports.plots import save_plots
    from tuner.reports.tune import baseline_of, build_profile
    from tuner.search.run_profile import best_row, fit_profile
    from tuner.search.study import trial_rows

    rows = tuple(trial_rows(study))
    best = best_row(study, rows, run)
    baseline = baseline_of(study, best)
    if best is None or baseline is None:
        return TuneOutcome(rows=rows, baseline=baseline, mode=run.mode_key,
                           **search.fields(feasible=False))  # fmt: skip

    def beside(existing: Profile | None) -> Profile:  # this mode's entry, the others kept
        profile = fit_profile(
            study,
            rows,
            run,
            lambda row: build_profile(row, baseline, workload, hardware, storage, study.study_name),
            existing=existing,
            extra_workload={"max_batch_size": max_batch_size} if max_batch_size else None,
        )
        return search.record(profile, feasible=True)

    profile, path = update_profile(workload.model, hardware_id(hardware), beside, root)
    plots, notes = save_plots(study, list(rows), path.with_suffix(""))
    return TuneOutcome(
        rows=rows,
        baseline=baseline,
        mode=run.mode_key,
        best=best,
        profile=profile,
        path=path,
        plots=tuple(plots),
        notes=tuple(notes),
        **search.fields(feasible=True),
    )


def _space(
    backends: Sequence[str] | None,
    hardware: Hardware,
    max_batch_size: int | None,
    max_new_tokens: int,
) -> SearchSpace:
    from engines import backend_names
    from engines.vllm import is_available

    installed = [b for b in backend_names() if b != "vllm" or is_available()]
    chosen = tuple(backends or installed)
    unknown = [b for b in chosen if b not in backend_names()]
    if unknown:
        raise ConfigError(
            f"unknown backend(s) {', '.join(unknown)}; choose from {', '.join(backend_names())}"
        )
    if "vllm" in chosen and not is_available():
        raise BackendUnavailableError("--backend vllm: vLLM is not installed")
    if max_batch_size is not None and max_batch_size < 1:
        raise ConfigError(f"--max-batch-size must be >= 1, got {max_batch_size}")
    return SearchSpace.for_machine(
        chosen,
        has_gpu=bool(hardware.gpus),
        num_gpus=len(hardware.gpus),
        max_batch_size=max_batch_size,
        max_new_tokens=max_new_tokens,
    )


def _previous_config(model: str, hardware: Hardware, root: Path, mode: str) -> ProfileConfig | None:
    """The configuration a previous profile of this model and machine chose for ``mode``, to
    seed the study (none when that mode was not tuned: another mode's batch counts other
    things, and the seeds cover it).

    A corrupted file there fails now, before any trial, rather than at saving time.
    """
    path = find_profile(model, hardware_id(hardware), root)
    entry = load_profile(path).entry(mode) if path is not None else None
    return entry.config if entry is not None else None
