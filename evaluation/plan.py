"""Turn an :class:`~evaluation.request.EvalRequest` into a checked run plan, before any model loads.

Every check that can fail on bad input (dataset, slice, results folder, a
``--resume`` folder from another run) happens here, so a mistake costs seconds,
not a model load, and no existing file is touched.  With ``--resume``, settings
not given in the request are taken from the folder.

Engine settings are layered: a resumed run's last settings, then a profile's
(:class:`~evaluation.request.ProfileSettings`), then explicit values (batch
size, dtype, engine args), which always win.
"""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from common.environment import environment
from engines import Decoding
from engines.errors import ConfigError
from engines.registry import batch_field
from evaluation.agents import AGENTS
from evaluation.datasets import Problem, load_problems
from evaluation.modes import Mode, StandardMode
from evaluation.plan_profile import batch_source, for_run, prompt_mismatch
from evaluation.prompts import (
    PromptSettings,
    build_request,
    resolve_chat_template,
)
from evaluation.request import EvalRequest, ProfileSettings
from evaluation.results import (
    SCHEMA_VERSION,
    check_resumable,
    check_writable,
    load_settings,
    new_run_dir,
)

# request field = PromptSettings field
_PROMPT_FIELDS = ("max_new_tokens", "apply_chat_template", "system_prompt", "stop")
_DECODING_FIELDS = ("temperature", "top_p", "seed")


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
    warnings: tuple[str, ...] = ()  # for the caller to show before the run starts


def engine_settings(
    request: EvalRequest,
    profile: ProfileSettings | None = None,
    previous: dict | None = None,
    backend: str = "transformers",
) -> dict[str, object]:
    """The engine's settings: a resumed run's last ones, then the profile's, then the request's."""
    settings = dict(previous or {}) | dict(profile.engine if profile else {})
    if request.batch_size is not None:
        settings[batch_field(backend)] = request.batch_size
    if request.dtype is not None:
        settings["dtype"] = request.dtype
    return settings | dict(request.engine_args)


def prompt_settings(
    request: EvalRequest, stored: dict | None, model: str | None = None
) -> PromptSettings:
    """Prompt and decoding settings: the request's, then ``stored`` (a resumed run's), defaults.

    A new run's chat template "auto" (``None``) is resolved from ``model``'s tokenizer
    here, so ``run.json`` records what was done; a resumed run keeps its stored value.
    """
    base = PromptSettings.from_record(stored) if stored else PromptSettings()
    names = (*_DECODING_FIELDS, *_PROMPT_FIELDS)
    given = {n: getattr(request, n) for n in names if getattr(request, n) is not None}
    decoding = {n: given.get(n, getattr(base.decoding, n)) for n in _DECODING_FIELDS}
    values = {f: given[f] for f in _PROMPT_FIELDS if f in given}
    if not stored:
        if model is None:
            raise ConfigError(_MODEL_REQUIRED)
        values["apply_chat_template"] = resolve_chat_template(
            request.apply_chat_template, model, system_prompt=request.system_prompt
        )
    fields = {name: getattr(base, name) for name in base.__slots__}
    return PromptSettings(**(fields | values | {"decoding": Decoding(**decoding)}))


_MODEL_REQUIRED = "--model and --dataset are required (unless --resume gives them)"


def _given(request: EvalRequest, name: str, stored: dict | None, default: object) -> object:
    value = getattr(request, name)
    if value is not None:
        return value
    return stored[name] if stored else default


def _stored_prompt(stored: dict | None) -> dict | None:
    return stored["prompt"] if stored else None


def _prompt(request: EvalRequest, stored: dict | None) -> PromptSettings:
    model = _given(request, "model", stored, None)
    return prompt_settings(request, _stored_prompt(stored), model)


def _standard_mode(request: EvalRequest, stored: dict | None) -> Mode:
    return StandardMode(prompt=_prompt(request, stored))


def _agent_mode(name: str, request: EvalRequest, stored: dict | None) -> Mode:
    from evaluation.agents.build import agent_mode, with_sampling_defaults

    sampled = with_sampling_defaults(name, request, stored)
    return agent_mode(name, request, stored, _prompt(sampled, stored))


# mode name -> factory(request, stored settings or None); every agent is a mode
MODES: dict[str, Callable[[EvalRequest, dict | None], Mode]] = {
    "standard": _standard_mode,
    **{name: partial(_agent_mode, name) for name in AGENTS},
}


def build_plan(request: EvalRequest) -> RunPlan:
    """Check the request and plan the run; nothing is written."""
    stored = load_settings(Path(request.resume)) if request.resume else None
    mode_name = _given(request, "mode", stored, "standard")
    if mode_name not in MODES:
        close = difflib.get_close_matches(mode_name, MODES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            f"unknown mode {mode_name!r}{hint}; choose one of: {', '.join(MODES)}"
            " (--mode, or --agent for an agent)"
        )
    return plan_for_mode(request, stored, mode_name, MODES[mode_name](request, stored))


def plan_for_mode(request: EvalRequest, stored: dict | None, mode_name: str, mode: Mode) -> RunPlan:
    """Plan a run of an already built ``mode``: problems, engine settings, folder.

    ``mode.settings()`` goes into the run's settings, so a resume with other
    mode settings is refused like one with another model or dataset.
    """
    model = _given(request, "model", stored, None)
    dataset = _given(request, "dataset", stored, None)
    if model is None or dataset is None:
        raise ConfigError(_MODEL_REQUIRED)
    _check_models(model, mode.settings())
    start = int(_given(request, "start", stored, 0))
    count = request.count
    count = count if count is not None else (len(stored["problem_ids"]) if stored else 0)
    problems = load_problems(dataset, data_dir=request.data_dir, start=start, count=count)
    mode_settings = mode.settings()
    request = for_run(request, mode_name, mode_settings, len(problems))
    backend, engine, profile = _engine_plan(request, stored)
    engine = _sized_for_prompts(backend, engine, model, mode, problems)
    warnings = prompt_mismatch(request.profile, profile, mode_settings["prompt"])
    settings = {
        "schema_version": SCHEMA_VERSION,
        "round": _given(request, "round", stored, "run"),
        "model": model,
        "dataset": dataset,
        "mode": mode_name,
        "start": start,
        "problem_ids": [p.id for p in problems],
        **mode_settings,
        "backend": backend,
        "engine": engine,
        "profile": profile,
        **batch_source(request, backend, engine),
        "environment": environment(),
        "sessions": [*(stored or {}).get("sessions", []), _session(backend, engine)],
    }
    if stored:
        check_resumable(stored, settings, tuple(mode_settings))
    return RunPlan(
        run_dir=_run_dir(request, stored, settings, len(problems)),
        is_resume=stored is not None,
        problems=problems,
        mode=mode,
        backend=backend,
        engine_settings=engine,
        settings=settings,
        chunk_size=_chunk_size(mode, backend, engine),
        warnings=warnings,
    )


def _engine_plan(
    request: EvalRequest, stored: dict | None
) -> tuple[str, dict[str, object], dict[str, object] | None]:
    """The backend, its engine settings, and the ``profile`` record of ``run.json``."""
    profile = request.profile
    backend = (
        request.backend
        or (stored or {}).get("backend")
        or (profile.backend if profile and not profile.is_batch_only else None)
        or "transformers"
    )
    # a profile's knobs are for its own backend; another backend asked for explicitly ignores
    # them; a batch-only profile gave its batch as the request's already
    applied = profile if profile and request.backend in (None, profile.backend) else None
    applied = None if profile and profile.is_batch_only else applied
    last = stored["sessions"][-1] if stored and stored.get("sessions") else {}
    previous = last.get("requested") if last.get("backend") == backend else None
    engine = engine_settings(request, applied, previous, backend)
    if profile is None:  # a resume without --profile runs on the profile it started with
        return backend, engine, (stored or {}).get("profile")
    record = profile.as_record(is_applied=applied is not None or profile.is_batch_only)
    return backend, engine, record


def _check_models(model: str, mode_settings: dict) -> None:
    """A missing model folder (the checker's too), or more new tokens than the model's
    context, is refused now rather than after a model has loaded."""
    from engines.models import check_model_exists, context_length

    checker = (mode_settings.get("agent") or {}).get("checker_model")
    for name in filter(None, (model, checker)):
        check_model_exists(name)
    limit, wanted = context_length(model), mode_settings["prompt"]["max_new_tokens"]
    if limit is not None and wanted >= limit:
        raise ConfigError(
            f"--max-new-tokens {wanted} does not fit {model}'s context of {limit} tokens"
            f" (prompt included); pass at most {limit - 1}"
        )


def _sized_for_prompts(
    backend: str, engine: dict[str, object], model: str, mode: Mode, problems: list[Problem]
) -> dict[str, object]:
    """vLLM sizes its KV cache at load, for ``max_model_len``: the longest prompt of this
    run plus ``max_new_tokens``.  A one-step agent (majority_vote) sends the problems'
    own prompts, so it is sized the same way; a stepwise agent's prompts grow step by
    step, so it keeps the engine's default.  An explicit ``max_model_len`` always wins."""
    if backend != "vllm":
        return engine
    agent = getattr(mode, "agent", None)
    if isinstance(mode, StandardMode):
        prompt = mode.prompt
    elif agent is not None and agent.max_steps() == 1:
        prompt = agent.prompt
    else:
        return engine
    from engines.vllm_sizing import with_model_len

    return with_model_len(engine, model, [build_request(p, prompt) for p in problems])


def _chunk_size(mode: Mode, backend: str, engine: dict[str, object]) -> int | None:
    """Problems per ``iter_batches`` call: vLLM schedules a chunk at a time, a stepwise mode
    (an agent: one engine call per step for the whole run) takes the run in one."""
    if backend != "vllm" or mode.is_stepwise:
        return None
    return max(512, 4 * int(engine.get(batch_field(backend)) or 256))


def _session(backend: str, engine: dict[str, object]) -> dict[str, object]:
    started = dt.datetime.now().isoformat(timespec="seconds")
    # "engine" is replaced by the engine's resolved settings once it has loaded
    return {"started": started, "backend": backend, "requested": engine, "engine": engine}


def _run_dir(request: EvalRequest, stored: dict | None, settings: dict, count: int) -> Path:
    """The folder to write: the resumed one (if it matches) or a fresh name."""
    if stored:
        check_writable(Path(request.resume))
        return Path(request.resume)
    results_dir = Path(request.results_dir)
    check_writable(results_dir)
    return new_run_dir(
        results_dir, settings["round"], settings["model"], settings["dataset"], count
    )
