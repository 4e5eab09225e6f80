"""``infertune tune``: search engine configurations with Optuna and save a profile.

Example::

    infertune tune --model synthetic:small --dataset gsm8k --n-trials 20
    infertune tune ... --storage journal:/shared/tune.log --study-name s1   # one more worker

Every input check (model, dataset size, storage) happens before the first
trial, so a mistake costs seconds and overwrites nothing.  The profile goes to
``<profiles root>/<model-slug>/<hardware-id>.json``, the plots next to it, and
the study by default to ``<profiles root>/<model-slug>/studies.db``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tuner.workload import DEFAULT_CANARY, DEFAULT_MAX_NEW_TOKENS, DEFAULT_SIZE


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--model", required=True, help="model id or path (e.g. synthetic:small)")
    add("--dataset", required=True, help="dataset the workload is sampled from (gsm8k, ...)")
    add("--backends", nargs="+", help="backends to search (default: every installed one)")
    add("--n-trials", type=int, default=20, help="total trials of the study (default: 20)")
    add("--timeout", type=float, help="stop starting trials after this many seconds")
    add("--storage", help="Optuna storage URL or journal:PATH (default: SQLite next to profiles)")
    add("--study-name", help="study to create or join (default: <model-slug>-<hardware-id>)")
    add(
        "--workload-size",
        "--count",
        type=int,
        default=DEFAULT_SIZE,
        dest="workload_size",
        help=f"problems in the workload (default: {DEFAULT_SIZE})",
    )
    add("--canary-size", type=int, default=DEFAULT_CANARY, help="problems checked for parity")
    add(
        "--parity-threshold",
        type=float,
        default=1.0,
        help="least canary agreement with the batch-1 reference (default: 1.0)",
    )
    add("--max-new-tokens", type=int, default=DEFAULT_MAX_NEW_TOKENS, help="generation budget")
    add("--max-batch-size", type=int, help="largest batch size to try (e.g. the probe's)")
    add("--trial-timeout", type=float, default=600.0, help="seconds per trial (default: 600)")
    add("--seed", type=int, help="sampler seed (reproducible suggestions)")
    add("--data_dir", "--data-dir", dest="data_dir", help="folder with <dataset>/test.jsonl")
    add("--profiles-dir", help="profiles root (default: $INFERTUNE_PROFILES_DIR or profiles/)")


def run(args: argparse.Namespace) -> int:
    """Tune; returns 0 with a profile written, 1 when no trial was feasible."""
    import warnings

    import optuna
    from rich.console import Console

    from tuner.hardware import fingerprint, hardware_id
    from tuner.search import Objective, open_study, optimize, seed_study, trial_rows

    # Heartbeats, grouped TPE and skip_if_exists are "experimental" but stable in practice.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    console = Console(stderr=True)
    settings = _study_settings(args)
    workload = _workload(args)  # loads the tokenizer: an unknown model fails here
    hardware = fingerprint()
    space = _space(args, hardware)
    slug_dir = _profiles_root(args) / _slug(args.model)
    storage = args.storage or f"sqlite:///{slug_dir / 'studies.db'}"
    if args.storage is None:
        slug_dir.mkdir(parents=True, exist_ok=True)
    name = args.study_name or f"{_slug(args.model)}-{hardware_id(hardware)}"
    study = open_study(storage, name, settings)
    seed_study(study, space, _previous_config(args, hardware))
    objective = Objective(space, workload, settings, log=console.print)
    optimize(study, objective, settings)
    rows = trial_rows(study)
    from tuner.tune_report import finish

    return finish(
        study,
        rows,
        workload,
        hardware,
        storage=storage,
        root=_profiles_root(args),
        console=Console(width=max(Console().width, 140)),
    )


def _study_settings(args: argparse.Namespace) -> Any:
    from engines.errors import ConfigError
    from tuner.search import StudySettings

    try:
        return StudySettings(
            model=args.model,
            n_trials=args.n_trials,
            timeout_s=args.timeout,
            parity_threshold=args.parity_threshold,
            trial_timeout_s=args.trial_timeout,
            seed=args.seed,
        )
    except ValueError as error:
        raise ConfigError(str(error)) from None


def _workload(args: argparse.Namespace) -> Any:
    from tuner.workload import build_workload

    return build_workload(
        args.model,
        args.dataset,
        size=args.workload_size,
        max_new_tokens=args.max_new_tokens,
        num_canary=args.canary_size,
        data_dir=args.data_dir,
    )


def _space(args: argparse.Namespace, hardware: Any) -> Any:
    from engines import backend_names
    from engines.errors import BackendUnavailableError, ConfigError
    from engines.vllm import is_available
    from tuner.space import SearchSpace

    installed = [b for b in backend_names() if b != "vllm" or is_available()]
    backends = tuple(args.backends or installed)
    unknown = [b for b in backends if b not in backend_names()]
    if unknown:
        raise ConfigError(
            f"unknown backend(s) {', '.join(unknown)}; choose from {', '.join(backend_names())}"
        )
    if "vllm" in backends and not is_available():
        raise BackendUnavailableError("--backends vllm: vLLM is not installed")
    limit = min(args.max_batch_size or args.workload_size, args.workload_size)
    if limit < 1:
        raise ConfigError(f"--max-batch-size must be >= 1, got {args.max_batch_size}")
    return SearchSpace.for_machine(
        backends,
        has_gpu=bool(hardware.gpus),
        num_gpus=len(hardware.gpus),
        max_batch_size=limit,
        max_new_tokens=args.max_new_tokens,
    )


def _previous_config(args: argparse.Namespace, hardware: Any) -> Any:
    """A previous profile's configuration for this model and machine.

    A corrupted file there fails now, before any trial, rather than at saving time.
    """
    from tuner.hardware import hardware_id
    from tuner.profiles import find_profile, load_profile

    path = find_profile(args.model, hardware_id(hardware), _profiles_root(args))
    return load_profile(path).config if path is not None else None


def _profiles_root(args: argparse.Namespace) -> Path:
    from tuner.profiles import profiles_root

    return profiles_root(args.profiles_dir)


def _slug(model: str) -> str:
    from tuner.profiles import model_slug

    return model_slug(model)
