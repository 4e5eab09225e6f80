"""The tuner as a notebook calls it: ``tune``, ``probe`` and ``speedup``.

The ``infertune tune|probe|speedup`` commands are thin wrappers around these::

    from tuner import probe, speedup, tune

    profile = tune(model="synthetic:small", dataset="gsm8k", budget="10m")
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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.hardware import Hardware, fingerprint, hardware_id
from common.naming import model_slug
from engines.errors import ConfigError
from tuner.measurement.workload import DEFAULT_MAX_NEW_TOKENS, DEFAULT_SIZE
from tuner.profiles import Profile, ProfileConfig
from tuner.search.tuning import NoFeasibleTrialError, run_tuning

if TYPE_CHECKING:
    from evaluation.prompts import PromptSettings
    from tuner.measurement.probe import ProbeResult
    from tuner.measurement.speedup import SpeedupConfig
    from tuner.measurement.workload import Workload
    from tuner.reports.speedup import SpeedupReport


def tune(
    model: str,
    dataset: str,
    *,
    n_trials: int = 20,
    budget: str | float | None = None,
    **options: Any,
) -> Profile:
    """Tune ``model`` on ``dataset`` (at most ``n_trials`` trials); returns the saved profile.

    ``budget`` is what ``infertune tune --budget`` takes: the wall clock of the whole tune,
    a duration (``"10m"``, ``"90s"``) or seconds; ``None`` is the command's default.
    ``options`` are :func:`tuner.search.tuning.run_tuning`'s keywords (``count``,
    ``backends``, ``profiles_dir``, ``storage``, ``seed``, ...); ``for_count``, ``mode`` and
    ``num_runs`` name the run to tune for (its predicted wall time is minimised), and the
    returned profile holds that mode's entry (``profile.entry("majority_vote/k5")``).

    Raises:
        NoFeasibleTrialError: no trial finished with the reference's answers.
        InfertuneError: bad input (a budget that is no duration included), found before
            the first trial.
    """
    if budget is not None:
        from tuner.search.budget import parse_duration

        options["budget_s"] = parse_duration(str(budget), flag="budget")
    outcome = run_tuning(model, dataset, n_trials=n_trials, **options)
    if outcome.profile is None:
        raise NoFeasibleTrialError(
            "no feasible trial: every configuration failed or changed answers;"
            " raise the budget, lower parity_threshold, or check the trial messages"
        )
    return outcome.profile


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
    chat_template: bool | None = None,
    system_prompt: str | None = None,
    stop: Sequence[str] | None = None,
    log: Callable[[str], None] = print,
) -> SpeedupReport:
    """Measure the speedup table and write its files (``infertune speedup``).

    Every configuration runs the same workload in its own subprocess; the files
    (``speedup.md``, ``.csv``, ``.json``, ``.png``) go to ``results_dir``
    (default ``results/speedup/<model-slug>-<hardware-id>``), named in the report.
    ``chat_template`` (``None``: auto, on when the tokenizer has one),
    ``system_prompt`` and ``stop`` shape the prompts as ``infertune eval`` does.
    """
    from tuner.measurement.speedup import DEFAULT_NAMES, DEFAULT_TIME_LIMIT_S, run_speedup
    from tuner.measurement.workload import build_workload
    from tuner.reports.speedup import SpeedupReport, write_report

    time_limit = DEFAULT_TIME_LIMIT_S if time_limit is None else time_limit
    _check_speedup(count, max_new_tokens, time_limit)
    hardware = fingerprint()
    # Every problem is a canary: accuracy and agreement cover the whole workload.
    workload = build_workload(
        model,
        dataset,
        size=count,
        seed=seed,
        max_new_tokens=max_new_tokens,
        num_canary=count,
        data_dir=data_dir,
        chat_template=chat_template,
        system_prompt=system_prompt,
        stop=stop,
    )
    names = list(configs or DEFAULT_NAMES)
    chosen, notes = _speedup_configs(names, workload, hardware, profiles_dir)
    here = hardware_id(hardware)
    out = Path(results_dir or f"results/speedup/{model_slug(model)}-{here}")
    _check_out(out)
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
    names: list[str],
    workload: Workload,
    hardware: Hardware,
    profiles_dir: str | os.PathLike[str] | None,
) -> tuple[list[SpeedupConfig], list[str]]:
    from engines.vllm import is_available
    from tuner.measurement.speedup import TUNED, select_configs

    tuned, tuned_notes = (
        tuned_config(workload.model, hardware, profiles_dir, prompt=workload.prompt_settings)
        if TUNED in names
        else (None, [])
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
    model: str,
    hardware: Hardware,
    profiles_dir: str | os.PathLike[str] | None = None,
    *,
    prompt: PromptSettings | None = None,
) -> tuple[ProfileConfig | None, list[str]]:
    """This machine's profile config and its warnings, or ``None`` and why.

    The warnings are version drifts and, given ``prompt`` (the settings it will
    run under), the prompt settings the profile was tuned under that differ.
    """
    from evaluation.prompts import prompt_differences
    from tuner.profiles import resolve_profile

    resolved = resolve_profile("auto", model, root=profiles_dir, hardware=hardware, optional=True)
    if resolved.profile is None:
        if resolved.path is None:
            return None, [f"{resolved.reason} (run `infertune tune`)"]
        return None, [f"profile not usable: {resolved.reason}"]
    notes = [f"tuned: {resolved.path}"] + [f"tuned: {w}" for w in resolved.warnings]
    recorded = resolved.profile.workload.get("prompt")
    differences = prompt_differences(recorded, prompt) if recorded and prompt else {}
    if differences:
        named = ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in differences.items())
        notes.append(f"tuned: the profile was tuned under other prompt settings ({named})")
    return resolved.profile.config, notes
