"""Turn command-line arguments into a checked run plan, before any model loads.

Every check that can fail on bad input (dataset, slice, results folder, a
``--resume`` folder from another run) happens here, so a mistake costs seconds,
not a model load, and no existing file is touched.  With ``--resume``, settings
not given on the command line are taken from the folder.

Engine settings are layered: a resumed run's last settings, then a profile's
(``{"backend": ..., "engine": {...}}``, passed as ``build_plan(args, profile)``
by ``--profile``), then explicit flags, which always win.
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from engines import Decoding
from engines.errors import ConfigError
from evaluation.datasets import Problem, load_problems
from evaluation.modes import Mode, StandardMode
from evaluation.prompts import PromptSettings
from evaluation.results import (
    SCHEMA_VERSION,
    check_resumable,
    check_writable,
    environment,
    load_settings,
    new_run_dir,
)

_PROMPT_FLAGS = {  # flag -> PromptSettings field (None on the command line = not given)
    "max_new_tokens": "max_new_tokens",
    "apply_chat_template": "apply_chat_template",
}
_DECODING_FLAGS = ("temperature", "top_p", "seed")


@dataclass(frozen=True, slots=True, kw_only=True)
class RunPlan:
    """Everything a run needs except the loaded engine."""

    run_dir: Path
    is_resume: bool
    problems: list[Problem]
    mode: Mode
    backend: str
    engine_settings: dict[str, object]
    settings: dict[str, object]
    chunk_size: int | None = None
    profile: dict[str, object] | None = field(default=None)


def parse_engine_args(pairs: list[str] | None) -> dict[str, object]:
    """``["enforce_eager=true", "max_num_seqs=64"]`` -> typed settings."""
    import yaml

    settings: dict[str, object] = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--engine_arg wants KEY=VALUE, got {pair!r}")
        settings[key.strip()] = yaml.safe_load(value) if value.strip() else None
    return settings


def engine_settings(
    args: argparse.Namespace,
    profile: dict | None = None,
    previous: dict | None = None,
    backend: str = "transformers",
) -> dict[str, object]:
    """The engine's settings: a resumed run's last ones, then the profile's, then flags."""
    settings = dict(previous or {}) | dict((profile or {}).get("engine", {}))
    if args.batch_size is not None:  # transformers batches itself; vLLM schedules max_num_seqs
        key = "max_num_seqs" if backend == "vllm" else "batch_size"
        settings[key] = args.batch_size
    if args.dtype is not None:
        settings["dtype"] = args.dtype
    return settings | parse_engine_args(args.engine_arg)


def prompt_settings(args: argparse.Namespace, stored: dict | None) -> PromptSettings:
    """Prompt and decoding settings: flags given, then ``stored`` (a resumed run's), defaults."""
    base = PromptSettings.from_record(stored) if stored else PromptSettings()
    decoding = {name: getattr(base.decoding, name) for name in ("temperature", "top_p", "seed")}
    decoding |= {n: getattr(args, n) for n in _DECODING_FLAGS if getattr(args, n) is not None}
    values = {f: getattr(args, flag) for flag, f in _PROMPT_FLAGS.items()}
    values = {f: v for f, v in values.items() if v is not None}
    fields = {name: getattr(base, name) for name in base.__slots__}
    return PromptSettings(**(fields | values | {"decoding": Decoding(**decoding)}))


def _given(args: argparse.Namespace, name: str, stored: dict | None, default: object) -> object:
    value = getattr(args, name)
    if value is not None:
        return value
    return stored[name] if stored else default


def _standard_mode(args: argparse.Namespace, stored: dict | None) -> Mode:
    return StandardMode(prompt=prompt_settings(args, stored["prompt"] if stored else None))


# mode name -> factory(args, stored settings or None); agents register theirs here
MODES: dict[str, Callable[[argparse.Namespace, dict | None], Mode]] = {"standard": _standard_mode}


def build_plan(args: argparse.Namespace, profile: dict | None = None) -> RunPlan:
    """Check the arguments and plan the run; nothing is written.

    Args:
        args: parsed flags of :func:`evaluation.eval.add_arguments`.
        profile: a tuned profile, ``{"backend": ..., "engine": {...}}``; explicit
            flags override it.
    """
    stored = load_settings(Path(args.resume)) if args.resume else None
    mode_name = _given(args, "mode", stored, "standard")
    if mode_name not in MODES:
        raise ConfigError(f"unknown --mode {mode_name!r}; choose one of: {', '.join(MODES)}")
    return plan_for_mode(args, stored, mode_name, MODES[mode_name](args, stored), profile)


def plan_for_mode(
    args: argparse.Namespace,
    stored: dict | None,
    mode_name: str,
    mode: Mode,
    profile: dict | None = None,
) -> RunPlan:
    """Plan a run of an already built ``mode``: problems, engine settings, folder.

    ``mode.settings()`` goes into the run's settings, so a resume with other
    mode settings is refused like one with another model or dataset.
    """
    model = _given(args, "model", stored, None)
    dataset = _given(args, "dataset", stored, None)
    if model is None or dataset is None:
        raise ConfigError("--model and --dataset are required (unless --resume gives them)")
    start = int(_given(args, "start", stored, 0))
    count = args.count if args.count is not None else (len(stored["problem_ids"]) if stored else 0)
    problems = load_problems(dataset, data_dir=args.data_dir, start=start, count=count)
    backend = (args.inference_backend or (stored or {}).get("backend")
               or (profile or {}).get("backend") or "transformers")  # fmt: skip
    last = stored["sessions"][-1] if stored and stored.get("sessions") else {}
    previous = last.get("requested") if last.get("backend") == backend else None
    engine = engine_settings(args, profile, previous, backend)
    mode_settings = mode.settings()
    settings = {
        "schema_version": SCHEMA_VERSION,
        "round": _given(args, "round", stored, "run"),
        "model": model,
        "dataset": dataset,
        "mode": mode_name,
        "start": start,
        "problem_ids": [p.id for p in problems],
        **mode_settings,
        "backend": backend,
        "engine": engine,
        "profile": profile,
        "environment": environment(),
        "sessions": [*(stored or {}).get("sessions", []), _session(backend, engine)],
    }
    if stored:
        check_resumable(stored, settings, tuple(mode_settings))
    chunk = max(512, 4 * int(engine.get("max_num_seqs") or 256)) if backend == "vllm" else None
    return RunPlan(run_dir=_run_dir(args, stored, settings, len(problems)),
                   is_resume=stored is not None, problems=problems, mode=mode, backend=backend,
                   engine_settings=engine, settings=settings, chunk_size=chunk,
                   profile=profile)  # fmt: skip


def _session(backend: str, engine: dict[str, object]) -> dict[str, object]:
    started = dt.datetime.now().isoformat(timespec="seconds")
    # "engine" is replaced by the engine's resolved settings once it has loaded
    return {"started": started, "backend": backend, "requested": engine, "engine": engine}


def _run_dir(args: argparse.Namespace, stored: dict | None, settings: dict, count: int) -> Path:
    """The folder to write: the resumed one (if it matches) or a fresh name."""
    if stored:
        check_writable(Path(args.resume))
        return Path(args.resume)
    results_dir = Path(args.results_dir)
    check_writable(results_dir)
    return new_run_dir(results_dir, settings["round"], settings["model"], settings["dataset"],
                       count)  # fmt: skip
