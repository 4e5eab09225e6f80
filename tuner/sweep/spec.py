"""The sweep file, checked whole before any job starts.

Example (YAML; TOML with the same keys works too)::

    name: qwen-math                      # round label of every results folder
    results: results/sweep-qwen-math     # results root: jobs, manifest, summary
    models: [Qwen/Qwen2.5-Math-1.5B]     # or {id: ..., profile: auto | none | PATH}
    datasets: [{name: gsm8k, count: 200}, {name: math500, count: 100}]
    modes: [standard, {name: majority_vote, num_runs: 5}]
    tune: {n_trials: 12, timeout: 900}   # budget for models without a profile
    eval: {max_new_tokens: 1024}         # flags passed to every evaluation

The prompt keys ``chat_template`` (auto, true/on, false/off), ``system_prompt`` and
``stop`` (a string or a list) are accepted in ``eval:`` and ``tune:``; the tune step
takes ``eval:``'s (and its ``max_new_tokens``) unless ``tune:`` sets its own, so the
profile is measured on the prompts the evaluations send.

Every mistake (unknown key, dataset, agent, a model that cannot load, a value of
the wrong type) raises :class:`SweepFileError` naming the file, the line and the
fix, so a typo costs a second, not a half-finished grid.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engines.errors import InfertuneError
from engines.registry import backend_names
from evaluation.request import SAFE_NAME
from tuner.sweep.models import check_model
from tuner.sweep.source import Key, Source, SweepFileError, read_source

__all__ = [
    "DatasetSpec",
    "ModeSpec",
    "ModelSpec",
    "SweepFileError",
    "SweepSpec",
    "TuneSpec",
    "load_spec",
]

_INT, _NUM, _STR, _BOOL = (int,), (int, float), (str,), (bool,)
TOP_KEYS = {"name": _STR, "results": _STR, "models": (list,), "datasets": (list,),
            "modes": (list,), "tune": (dict,), "eval": (dict,), "profiles_dir": _STR}  # fmt: skip
MODEL_KEYS = {"id": _STR, "profile": _STR}
DATASET_KEYS = {"name": _STR, "count": _INT, "start": _INT}
SAMPLING_KEYS = {"temperature": _NUM, "top_p": _NUM, "seed": _INT, "max_new_tokens": _INT}
# agent setting -> the agent dataclass field that must exist for it to apply
AGENT_KEYS = {"num_runs": ("num_runs", _INT), "max_iterations": ("max_iterations", _INT),
              "checker_model": ("checker_model", _STR),
              "max_subproblems": ("max_subproblems", _INT),
              "sandbox_timeout": ("limits", _NUM)}  # fmt: skip
# the budget keys are `infertune tune` flags (n_trials -> --n-trials)
# flags of eval and tune alike; chat_template: true/false (YAML's on/off) or "auto"
PROMPT_KEYS = {"chat_template": (bool, str), "system_prompt": _STR, "stop": (list, str)}
# budget: a duration ("10m", "90s") or seconds, the wall clock of the whole tune
TUNE_OPTIONS = {"count": _INT, "n_trials": _INT, "budget": (str, int, float), "timeout": _NUM,
                "trial_timeout": _NUM, "canary_size": _INT,
                "max_new_tokens": _INT, "max_batch_size": _INT, "seed": _INT,
                **PROMPT_KEYS}  # fmt: skip
TUNE_KEYS = {"enabled": _BOOL, "dataset": _STR, "backends": (list,), **TUNE_OPTIONS}
EVAL_KEYS = {"backend": _STR, "batch_size": _INT, "dtype": _STR, "apply_chat_template": _BOOL,
             "engine_args": (dict,), "data_dir": _STR, **SAMPLING_KEYS,
             **PROMPT_KEYS}  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelSpec:
    """A model and where its profile comes from: ``auto`` (find or tune), ``none``, a path."""

    id: str
    profile: str = "auto"


@dataclass(frozen=True, slots=True, kw_only=True)
class DatasetSpec:
    name: str
    count: int = 0
    start: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class ModeSpec:
    """``standard`` or an agent, with its settings (flags of the eval CLI)."""

    name: str
    label: str
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def is_agent(self) -> bool:
        return self.name != "standard"


@dataclass(frozen=True, slots=True, kw_only=True)
class TuneSpec:
    """The tuning budget for models without a valid profile (``infertune tune`` flags)."""

    enabled: bool = True
    dataset: str | None = None
    backends: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)  # other flags: {"n_trials": 4}


@dataclass(frozen=True, slots=True, kw_only=True)
class SweepSpec:
    """A checked sweep: the grid is ``models x datasets x modes``."""

    name: str
    path: Path
    results_root: Path
    models: tuple[ModelSpec, ...]
    datasets: tuple[DatasetSpec, ...]
    modes: tuple[ModeSpec, ...]
    tune: TuneSpec
    eval: dict[str, Any]
    profiles_dir: Path | None = None


def load_spec(path: str | Path, results_root: str | Path | None = None) -> SweepSpec:
    """Read and check the sweep file at ``path``; ``results_root`` overrides its ``results``.

    Raises:
        SweepFileError: anything wrong in the file, with its line and the fix.
    """
    source = read_source(path)
    data = _checked(source, (), source.data, TOP_KEYS)
    for required in ("models", "datasets", "modes"):
        if not data.get(required):
            raise source.error((), f"missing or empty '{required}'; list at least one")
    name = data.get("name") or source.path.stem
    if not SAFE_NAME.fullmatch(name):
        raise source.error(
            ("name",) if "name" in data else (),
            f"sweep name {name[:80]!r} is not a safe folder name: use 1-64 letters, digits,"
            " '.', '_' or '-', not starting with '.'",
        )
    root = results_root or data.get("results") or f"results/sweep-{name}"
    eval_settings = _eval(source, data.get("eval") or {})
    datasets = tuple(_dataset(source, i, v, eval_settings) for i, v in enumerate(data["datasets"]))
    modes = tuple(_mode(source, i, v) for i, v in enumerate(data["modes"]))
    _unique(source, "modes", [m.label for m in modes], "give each a different 'label'")
    _unique(source, "datasets", [(d.name, d.count, d.start) for d in datasets], "remove one")
    models = tuple(_model(source, i, v) for i, v in enumerate(data["models"]))
    _unique(source, "models", [m.id for m in models], "remove one")
    return SweepSpec(
        name=name, path=source.path, results_root=Path(root), models=models,
        datasets=datasets, modes=modes, tune=_tune(source, data.get("tune") or {}),
        eval=eval_settings,
        profiles_dir=Path(data["profiles_dir"]) if data.get("profiles_dir") else None,
    )  # fmt: skip


def _checked(source: Source, key: Key, value: Any, allowed: dict[str, tuple]) -> dict[str, Any]:
    """``value`` as a mapping whose keys are all in ``allowed``, each of the right type."""
    if not isinstance(value, dict):
        raise source.error(key, f"'{_name(key)}' must be a mapping of {', '.join(allowed)}")
    for name, item in value.items():
        if name not in allowed:
            close = difflib.get_close_matches(str(name), allowed, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"use one of: {', '.join(allowed)}"
            raise source.error((*key, name), f"unknown key '{name}' in {_name(key)}; {hint}")
        types = allowed[name]
        is_bool = isinstance(item, bool)
        if item is not None and (not isinstance(item, types) or (is_bool and bool not in types)):
            wanted = " or ".join(t.__name__ for t in types)
            raise source.error((*key, name), f"'{name}' must be {wanted}, got {item!r}")
        if item is not None and not is_bool and isinstance(item, int | float):
            _check_range(source, (*key, name), item)
    return value


# Ranges the eval and tune commands enforce, checked here so that a job cannot fail on
# them hours into a sweep.  "not >=" also refuses NaN.
_AT_LEAST = {"max_new_tokens": 1, "batch_size": 1, "num_runs": 1, "max_iterations": 1,
             "max_subproblems": 1, "n_trials": 1, "max_batch_size": 1, "count": 0, "start": 0,
             "canary_size": 1,
             "seed": 0, "temperature": 0}  # fmt: skip
_POSITIVE = {"timeout", "trial_timeout", "sandbox_timeout", "top_p"}


def _check_range(source: Source, key: Key, value: float) -> None:
    name = str(key[-1])
    if name in _AT_LEAST and not value >= _AT_LEAST[name]:
        raise source.error(key, f"'{name}' must be >= {_AT_LEAST[name]}, got {value!r}")
    if name in _POSITIVE and not (0 < value < float("inf")):
        raise source.error(key, f"'{name}' must be a finite number > 0, got {value!r}")


def _name(key: Key) -> str:
    return ".".join(str(k) for k in key) or "the sweep file"


def _unique(source: Source, key: str, values: list, fix: str) -> None:
    for index, value in enumerate(values):
        if value in values[:index]:
            raise source.error((key, index), f"duplicate {key} entry {value!r}; {fix}")


def _model(source: Source, index: int, value: Any) -> ModelSpec:
    key: Key = ("models", index)
    item = {"id": value} if isinstance(value, str) else _checked(source, key, value, MODEL_KEYS)
    if not item.get("id"):
        raise source.error(key, "a model needs an 'id' (hub id, local path or synthetic:NAME)")
    try:
        check_model(item["id"])
    except InfertuneError as error:
        raise source.error(key, str(error)) from None
    profile = item.get("profile") or "auto"
    if profile not in ("auto", "none") and not Path(profile).is_file():
        raise source.error((*key, "profile"), f"profile {profile} does not exist;"
                           " give an existing profile file, 'auto' or 'none'")  # fmt: skip
    return ModelSpec(id=item["id"], profile=profile)


def _dataset(source: Source, index: int, value: Any, eval_settings: dict) -> DatasetSpec:
    from evaluation.datasets import load_problems

    key: Key = ("datasets", index)
    item = {"name": value} if isinstance(value, str) else _checked(source, key, value, DATASET_KEYS)
    spec = DatasetSpec(name=item.get("name") or "", count=item.get("count") or 0,
                       start=item.get("start") or 0)  # fmt: skip
    try:  # the real loader: unknown names, missing files and short datasets all fail here
        load_problems(spec.name, data_dir=eval_settings.get("data_dir"), start=spec.start,
                      count=spec.count)  # fmt: skip
    except InfertuneError as error:
        raise source.error(key, str(error).replace("--count", "count")) from None
    return spec


def _mode(source: Source, index: int, value: Any) -> ModeSpec:
    key: Key = ("modes", index)
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        raise source.error(key, "a mode is 'standard', an agent name, or {name: ..., settings}")
    name = value["name"]
    allowed: dict[str, tuple] = {"name": _STR, "label": _STR, **SAMPLING_KEYS}
    if name != "standard":
        from dataclasses import fields

        from evaluation.agents import agent_class

        try:
            names = {f.name for f in fields(agent_class(name))}
        except InfertuneError as error:
            message = str(error).replace("--agent", "agent")
            raise source.error((*key, "name"), f"{message} (or 'standard')") from None
        allowed |= {k: t for k, (f, t) in AGENT_KEYS.items() if f in names}
    item = _checked(source, key, value, allowed)
    if item.get("checker_model"):
        try:
            check_model(item["checker_model"])
        except InfertuneError as error:
            raise source.error((*key, "checker_model"), str(error)) from None
    settings = {k: v for k, v in item.items() if k not in ("name", "label") and v is not None}
    return ModeSpec(name=name, label=item.get("label") or name, settings=settings)


def _tune(source: Source, value: dict) -> TuneSpec:
    item = _checked(source, ("tune",), value, TUNE_KEYS)
    backends = tuple(item.get("backends") or ())
    for index, backend in enumerate(backends):
        if backend not in backend_names():
            raise source.error(("tune", "backends", index), f"unknown backend {backend!r};"
                               f" use one of {', '.join(backend_names())}")  # fmt: skip
    dataset = item.get("dataset")
    if dataset is not None:
        from evaluation.datasets import DATASETS

        if dataset not in DATASETS:
            raise source.error(("tune", "dataset"), f"unknown dataset {dataset!r};"
                               f" choose one of: {', '.join(DATASETS)}")  # fmt: skip
    if item.get("budget") is not None:  # refused now, not in a failed tune job
        from tuner.search.budget import parse_duration

        try:
            parse_duration(str(item["budget"]), flag="budget")
        except ValueError as error:
            raise source.error(("tune", "budget"), str(error)) from None
    options = {k: item[k] for k in TUNE_OPTIONS if item.get(k) is not None}
    options |= _prompt(source, ("tune",), item)
    return TuneSpec(enabled=item.get("enabled", True) is not False, dataset=dataset,
                    backends=backends, options=options)  # fmt: skip


def _eval(source: Source, value: dict) -> dict[str, Any]:
    item = _checked(source, ("eval",), value, EVAL_KEYS)
    # the eval command takes every backend of the engine table (transformers_cb was refused)
    if item.get("backend") not in (None, *backend_names()):
        raise source.error(("eval", "backend"), f"unknown backend {item['backend']!r};"
                           f" use one of {', '.join(backend_names())}")  # fmt: skip
    settings = {k: v for k, v in item.items() if v is not None and k != "apply_chat_template"}
    if item.get("apply_chat_template") is not None:  # the old key: false now means off, not auto
        settings["chat_template"] = item["apply_chat_template"]
    return settings | _prompt(source, ("eval",), settings)


def _prompt(source: Source, key: Key, item: dict[str, Any]) -> dict[str, Any]:
    """The prompt keys of ``item``, checked as the commands check their flags.

    ``chat_template`` comes back as true, false or "auto"; ``stop`` as a list.
    """
    from evaluation.prompts import chat_template_choice

    settings: dict[str, Any] = {}
    chat = item.get("chat_template")
    if chat is not None:
        try:
            choice = chat_template_choice(chat)
        except InfertuneError as error:
            raise source.error((*key, "chat_template"), f"{error}, or true/false") from None
        settings["chat_template"] = "auto" if choice is None else choice
    stop = item.get("stop")
    if stop is not None:
        stop = [stop] if isinstance(stop, str) else stop
        for index, text in enumerate(stop):
            if not isinstance(text, str) or not text:
                message = f"a stop string must be non-empty text, got {text!r}"
                raise source.error((*key, "stop", index), message)
        settings["stop"] = stop
    if item.get("system_prompt") is not None and settings.get("chat_template") is False:
        raise source.error((*key, "system_prompt"),
                           "system_prompt needs the chat template; drop chat_template: false"
                           " or the system prompt")  # fmt: skip
    return settings
