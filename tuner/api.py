"""The tuner as a notebook calls it: ``tune``, ``probe`` and ``speedup``.

The ``infertune tune|probe|speedup`` commands are thin wrappers around these::

    from tuner import probe, speedup, tune

    profile = tune(model="synthetic:small", dataset="gsm8k", budget=20)
    profile.config.backend, profile.config.settings, profile.metrics.speedup
    probe(model="synthetic:small", dataset="gsm8k").confirmed_batch
    speedup(model="synthetic:small", dataset="gsm8k", count=64).rows

Every input check (model, dataset size, storage, a corrupted earlier profile)
happens before the first measurement, so a mistake costs seconds and overwrites
nothing.  ``tune`` saves the profile to ``<profiles root>/<model-slug>/<hardware-id>.json``,
the plots next to it, and the study by default to ``<profiles root>/<model-slug>/studies.db``.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.hardware import Hardware, fingerprint, hardware_id
from common.naming import model_slug
from engines.errors import BackendUnavailableError, ConfigError, InfertuneError
from tuner.measurement.workload import DEFAULT_CANARY, DEFAULT_MAX_NEW_TOKENS, DEFAULT_SIZE
from tuner.profiles import Profile, ProfileConfig, find_profile, load_profile, profiles_root
from tuner.search.space import SearchSpace
from tuner.search.study import TrialRow

if TYPE_CHECKING:
    import optuna

    from tuner.measurement.probe import ProbeResult
    from tuner.measurement.speedup import SpeedupConfig
    from tuner.measurement.workload import Workload
    from tuner.reports.speedup import SpeedupReport


class NoFeasibleTrialError(InfertuneError):
    """Every configuration failed or changed answers: there is no profile to save."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TuneOutcome:
    """A finished study: every trial, the reference throughput, the saved profile if any."""

    rows: tuple[TrialRow, ...]
    baseline: float | None
    best: TrialRow | None = None
    profile: Profile | None = None
    path: Path | None = None
    plots: tuple[Path, ...] = ()
    notes: tuple[str, ...] = ()


def tune(model: str, dataset: str, *, budget: int = 20, **options: object) -> Profile:
    """Tune ``model`` on ``dataset`` with ``budget`` trials; returns the saved profile.

    ``options`` are :func:`run_tuning`'s keywords.

    Raises:
        NoFeasibleTrialError: no trial finished with the reference's answers.
        InfertuneError: bad input, found before the first trial.
    """
    outcome = run_tuning(model, dataset, n_trials=budget, **options)
    if outcome.profile is None:
        raise NoFeasibleTrialError(
            "no feasible trial: every configuration failed or changed answers;"
            " raise the budget, lower parity_threshold, or check the trial messages"
        )
    return outcome.profile


def run_tuning(
    model: str,
    dataset: str,
    *,
    n_trials: int = 20,
    backends: Sequence[str] | None = None,
    count: int = DEFAULT_SIZE,
    canary_size: int = DEFAULT_CANARY,
    parity_threshold: float = 1.0,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    max_batch_size: int | None = None,
    trial_timeout: float = 600.0,
    timeout: float | None = None,
    seed: int | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    profiles_dir: str | os.PathLike[str] | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    log: Callable[[str], None] = print,
) -> TuneOutcome:
    """Run (or join) the study and save the best feasible trial as the profile."""
    import optuna

    from tuner.measurement.workload import build_workload
    from tuner.search.storage import open_study
    from tuner.search.study import Objective, StudySettings, optimize, seed_study

    # Heartbeats, grouped TPE and skip_if_exists are "experimental" but stable in practice.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    try:
        settings = StudySettings(
            model=model,
            n_trials=n_trials,
            timeout_s=timeout,
            parity_threshold=parity_threshold,
            trial_timeout_s=trial_timeout,
            seed=seed,
        )
    except ValueError as error:
        raise ConfigError(str(error)) from None
    workload = build_workload(
        model,
        dataset,
        size=count,
        max_new_tokens=max_new_tokens,
        num_canary=canary_size,
        data_dir=data_dir,
    )
    hardware = fingerprint()
    space = _space(backends, hardware, count, max_batch_size, max_new_tokens)
    root = profiles_root(profiles_dir)
    slug_dir = root / model_slug(model)
    if storage is None:
        slug_dir.mkdir(parents=True, exist_ok=True)
    storage = storage or f"sqlite:///{slug_dir / 'studies.db'}"
    study = open_study(
        storage, study_name or f"{model_slug(model)}-{hardware_id(hardware)}", settings
    )
    seed_study(study, space, _previous_config(model, hardware, root))
    optimize(study, Objective(space, workload, settings, log=log), settings)
    return _finish(study, workload, hardware, storage, root)


def _finish(
    study: optuna.Study, workload: Workload, hardware: Hardware, storage: str, root: Path
) -> TuneOutcome:
    from tuner.profiles import save_profile
    from tuner.reports.plots import save_plots
    from tuner.reports.tune import baseline_of, build_profile
    from tuner.search.study import trial_rows

    rows = tuple(trial_rows(study))
    best = next((r for r in rows if r.is_feasible), None)
    baseline = baseline_of(study, best)
    if best is None or baseline is None:
        return TuneOutcome(rows=rows, baseline=baseline)
    profile = build_profile(best, baseline, workload, hardware, storage, study.study_name)
    path = save_profile(profile, root)
    plots, notes = save_plots(study, list(rows), path.with_suffix(""))
    return TuneOutcome(
        rows=rows,
        baseline=baseline,
        best=best,
        profile=profile,
        path=path,
        plots=tuple(plots),
        notes=tuple(notes),
    )


def _space(
    backends: Sequence[str] | None,
    hardware: Hardware,
    count: int,
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
    limit = min(max_batch_size or count, count)
    if limit < 1:
        raise ConfigError(f"--max-batch-size must be >= 1, got {max_batch_size}")
    return SearchSpace.for_machine(
        chosen,
        has_gpu=bool(hardware.gpus),
        num_gpus=len(hardware.gpus),
        max_batch_size=limit,
        max_new_tokens=max_new_tokens,
    )


def _previous_config(model: str, hardware: Hardware, root: Path) -> ProfileConfig | None:
    """A previous profile's configuration for this model and machine, to seed the study.

    A corrupted file there fails now, before any trial, rather than at saving time.
    """
    path = find_profile(model, hardware_id(hardware), root)
    return load_profile(path).config if path is not None else None


def probe(
    model: str, dataset: str | None = None, *, count: int = 64, **options: Any
) -> ProbeResult:
    """How many sequences of a ``count``-problem workload fit on this machine.

    ``options`` are :func:`tuner.measurement.probe.run_probe`'s other keywords
    (``backend``, ``memory_limit``, ``batch_sizes``, ...).
    """
    from tuner.measurement.probe import run_probe

    if count < 1:
        raise ConfigError(f"--count must be >= 1, got {count}")
    return run_probe(model, dataset, num_problems=count, **options)


def speedup(
    model: str,
    dataset: str,
    *,
    count: int = DEFAULT_SIZE,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    seed: int = 0,
    configs: Sequence[str] | None = None,
    time_limit: float | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    profiles_dir: str | os.PathLike[str] | None = None,
    results_dir: str | os.PathLike[str] | None = None,
    log: Callable[[str], None] = print,
) -> SpeedupReport:
    """Measure the speedup table and write its files (``infertune speedup``).

    Every configuration runs the same workload in its own subprocess; the files
    (``speedup.md``, ``.csv``, ``.json``, ``.png``) go to ``results_dir``
    (default ``results/speedup/<model-slug>-<hardware-id>``), named in the report.
    """
    from tuner.measurement.speedup import DEFAULT_NAMES, DEFAULT_TIME_LIMIT_S, run_speedup
    from tuner.measurement.workload import build_workload
    from tuner.reports.speedup import SpeedupReport, write_report

    time_limit = DEFAULT_TIME_LIMIT_S if time_limit is None else time_limit
    _check_speedup(count, max_new_tokens, time_limit)
    hardware = fingerprint()
    chosen, notes = _speedup_configs(list(configs or DEFAULT_NAMES), model, hardware, profiles_dir)
    here = hardware_id(hardware)
    out = Path(results_dir or f"results/speedup/{model_slug(model)}-{here}")
    _check_out(out)
    # Every problem is a canary: accuracy and agreement cover the whole workload.
    workload = build_workload(
        model,
        dataset,
        size=count,
        seed=seed,
        max_new_tokens=max_new_tokens,
        num_canary=count,
        data_dir=data_dir,
    )
    load_before = os.getloadavg()
    rows = run_speedup(workload, chosen, time_limit_s=time_limit, log=log)
    report = SpeedupReport(
        model=model,
        dataset=dataset,
        workload=workload.describe(),
        hardware=hardware,
        hardware_id=here,
        rows=tuple(rows),
        notes=tuple(notes),
        load_before=load_before,
        load_after=os.getloadavg(),
        threads=os.environ.get("OMP_NUM_THREADS"),
    )
    return dataclasses.replace(report, files=tuple(write_report(report, out)))


def _check_speedup(count: int, max_new_tokens: int, time_limit: float) -> None:
    for name, value in (("--count", count), ("--max-new-tokens", max_new_tokens)):
        if value < 1:
            raise ConfigError(f"{name} must be >= 1, got {value}")
    if not time_limit > 0:
        raise ConfigError(f"--time-limit must be > 0 seconds, got {time_limit:g}")


def _check_out(out: Path) -> None:
    existing = next((p for p in (out, *out.parents) if p.exists()), None)
    flag = f"--results-dir {out}"
    if existing is not None and not existing.is_dir():
        raise ConfigError(f"{flag}: {existing} is a file, not a folder; choose another folder")
    if existing is not None and not os.access(existing, os.W_OK):
        raise ConfigError(f"{flag}: {existing} is not writable; choose another folder")


def _speedup_configs(
    names: list[str], model: str, hardware: Hardware, profiles_dir: str | os.PathLike[str] | None
) -> tuple[list[SpeedupConfig], list[str]]:
    from engines.vllm import is_available
    from tuner.measurement.speedup import TUNED, select_configs

    tuned, tuned_notes = (
        tuned_config(model, hardware, profiles_dir) if TUNED in names else (None, [])
    )
    configs, notes = select_configs(
        names,
        on_gpu=hardware.has_gpu,
        vllm_available=is_available(),
        tuned=tuned,
        tuned_missing=tuned_notes[0] if tuned is None and tuned_notes else "not requested",
    )
    return configs, notes + (tuned_notes if tuned is not None else [])


def tuned_config(
    model: str, hardware: Hardware, profiles_dir: str | os.PathLike[str] | None = None
) -> tuple[ProfileConfig | None, list[str]]:
    """This machine's profile config and its version-drift warnings, or ``None`` and why."""
    from tuner.profiles import resolve_profile

    resolved = resolve_profile("auto", model, root=profiles_dir, hardware=hardware, optional=True)
    if resolved.profile is None:
        if resolved.path is None:
            return None, [f"{resolved.reason} (run `infertune tune`)"]
        return None, [f"profile not usable: {resolved.reason}"]
    notes = [f"tuned: {resolved.path}"] + [f"tuned: {w}" for w in resolved.warnings]
    return resolved.profile.config, notes
