"""What one evaluation run is asked to do: a typed record, for the command line and notebooks.

``infertune eval`` builds an :class:`EvalRequest` from its flags; a notebook builds one
with keywords (or calls :func:`evaluation.evaluate`).  ``None`` means "not given": a
``--resume`` folder's value is used then, else the default.  A tuned profile arrives as
:class:`ProfileSettings`, plain values the command layer resolved, so evaluation never
reads a profile file or an argparse namespace.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from engines.errors import ConfigError
from engines.registry import backend_names


@dataclass(frozen=True, slots=True, kw_only=True)
class ProfileChoice:
    """One tuned entry of a profile: its configuration for runs of ``mode``
    (:func:`mode_key`) with ``min_count`` to ``max_count`` problems (``None``: no bound)."""

    mode: str
    backend: str
    engine: Mapping[str, object] = field(default_factory=dict)
    batch_size: int | None = None
    min_count: int = 1
    max_count: int | None = None

    def covers(self, mode: str, count: int) -> bool:
        upper = self.max_count is None or count <= self.max_count
        return self.mode == mode and self.min_count <= count and upper


@dataclass(frozen=True, slots=True, kw_only=True)
class ProfileSettings:
    """A tuned profile as a run applies it: a backend and engine settings, and where from.

    ``choices`` are the profile's entries per mode and range of counts; the plan
    applies the one for the run (:meth:`for_run`), once its count is known.
    ``is_batch_only`` (``--batch-size auto``): only the batch setting applies.
    """

    path: str
    backend: str
    engine: Mapping[str, object] = field(default_factory=dict)
    hardware_id: str | None = None
    created: str | None = None
    # the prompt settings the profile was tuned under (PromptSettings.tuned_record());
    # None for a profile older than that record
    prompt: Mapping[str, object] | None = None
    choices: tuple[ProfileChoice, ...] = ()
    max_batch_size: int | None = None  # the probe's maximum the tune was given, if any
    is_batch_only: bool = False
    entry: Mapping[str, object] | None = None  # which choice applies, set by for_run

    def as_record(self, *, is_applied: bool = True) -> dict[str, object]:
        """The ``profile`` entry of ``run.json``; an explicit other backend ignores the knobs."""
        if not is_applied:
            return {"backend": self.backend, "engine": {}, "path": self.path, "ignored": True}
        record = {
            "backend": self.backend,
            "engine": dict(self.engine),
            "path": self.path,
            "hardware_id": self.hardware_id,
            "created": self.created,
        }
        extra = {"entry": self.entry, "batch_only": self.is_batch_only or None}
        return record | {k: v for k, v in extra.items() if v is not None}

    def for_run(self, mode: str, count: int, samples_per_problem: int) -> ProfileSettings:
        """The settings of the entry for a run of ``count`` problems in ``mode``.

        The mode's own entry when it was tuned; else the standard entry with its
        batch scaled so that ``samples_per_problem`` sequences per problem are in flight
        for as many problems: times k for a setting that counts sequences (vLLM's
        ``max_num_seqs``), unchanged for one that counts requests (transformers'
        ``batch_size``), capped at :attr:`max_batch_size` when the tune recorded one
        (for vLLM at no less than its default 256 sequences, which its KV cache bounds).
        """
        from engines.registry import batch_field
        from engines.vllm import DEFAULT_MAX_NUM_SEQS

        found = [c for c in self.choices if c.covers(mode, count)]
        base = found or [c for c in self.choices if c.covers("standard", count)]
        if not base:
            return self
        choice, engine = base[0], dict(base[0].engine)
        entry: dict[str, object] = {"mode": choice.mode, "min_count": choice.min_count,
                                    "max_count": choice.max_count, "count": count}  # fmt: skip
        knob = batch_field(choice.backend)
        batch = engine.get(knob) or choice.batch_size
        if not found and samples_per_problem > 1 and isinstance(batch, int):
            unit = sequences_per_batch_unit(choice.backend, samples_per_problem)
            scaled = batch * (samples_per_problem // unit)
            cap = self.max_batch_size
            if cap and choice.backend == "vllm":  # bounded by its KV cache, not by the probe
                cap = max(cap, DEFAULT_MAX_NUM_SEQS)
            engine[knob] = scaled = max(batch, min(scaled, cap)) if cap else scaled
            entry["scaled_for_mode"] = {"mode": mode, "samples_per_problem": samples_per_problem,
                                        "from": batch, "to": scaled, "cap": cap}  # fmt: skip
        return dataclasses.replace(self, backend=choice.backend, engine=engine, entry=entry)


# transformers' batch_size counts requests (a batch of n-sample requests holds
# batch_size * n rows); vLLM's max_num_seqs and transformers_cb's max_requests_per_batch
# count sequences, so k samples per problem need k times the setting for as many problems
_BATCH_COUNTS_REQUESTS = ("transformers",)


def sequences_per_batch_unit(backend: str, samples: int) -> int:
    """Sequences one unit of ``backend``'s batch setting holds when each request asks for
    ``samples`` samples: ``samples`` for a setting that counts requests, else 1."""
    return samples if backend in _BATCH_COUNTS_REQUESTS else 1


def samples_per_problem(mode: str | None, num_runs: int | None = None) -> int:
    """Sequences a run of ``mode`` puts in flight per problem: majority_vote's k, else 1."""
    if mode != "majority_vote":
        return 1
    if num_runs is not None:
        return num_runs
    from evaluation.agents.majority_vote import MajorityVote  # the agent owns its default

    return MajorityVote.__dataclass_fields__["num_runs"].default


def mode_key(mode: str | None, num_runs: int | None = None) -> str:
    """The profile entry a run of ``mode`` uses: ``"standard"``, ``"majority_vote/k5"``, ..."""
    k = samples_per_problem(mode, num_runs)
    return f"{mode or 'standard'}/k{k}" if k > 1 else mode or "standard"


# A run's label becomes part of a folder name under --results-dir: no separators,
# no "..", no newline, and short enough for any file system's name limit.
SAFE_NAME = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9._\-]{0,63}")


@dataclass(frozen=True, slots=True, kw_only=True)
class EvalRequest:
    """One evaluation run (or the continuation of one, with ``resume``).

    Engine settings are layered: a resumed run's last ones, then ``profile``'s,
    then ``batch_size``, ``dtype`` and ``engine_args``, which always win.
    ``mode`` is ``"standard"`` or an agent's name (see ``evaluation.plan.MODES``);
    the agent fields apply to agents that have them.
    """

    model: str | None = None
    dataset: str | None = None
    round: str | None = None
    count: int | None = None
    start: int | None = None
    mode: str | None = None
    backend: str | None = None
    batch_size: int | None = None
    # who chose batch_size for --batch-size auto: "profile" (``profile`` is batch-only
    # then, batch_size None) or "probe"; None when the user gave a number or nothing
    batch_size_source: str | None = None
    dtype: str | None = None
    engine_args: Mapping[str, object] = field(default_factory=dict)
    profile: ProfileSettings | None = None
    resume: str | Path | None = None
    data_dir: str | Path | None = None
    results_dir: str | Path = "results"
    max_new_tokens: int | None = None
    apply_chat_template: bool | None = None  # None: a resumed run's, else auto (the tokenizer's)
    system_prompt: str | None = None
    stop: tuple[str, ...] | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    num_runs: int | None = None
    max_iterations: int | None = None
    checker_model: str | None = None
    max_subproblems: int | None = None
    sandbox_timeout: float | None = None
    detailed: bool = False

    def __post_init__(self) -> None:
        if self.backend is not None and self.backend not in backend_names():
            raise ConfigError(
                f"unknown backend {self.backend!r}; choose one of: {', '.join(backend_names())}"
            )
        if self.batch_size_source not in (None, "profile", "probe"):
            raise ConfigError(
                f"batch_size_source must be profile or probe, not {self.batch_size_source!r}"
            )
        if self.round is not None and not SAFE_NAME.fullmatch(self.round):
            raise ConfigError(
                f"--round {self.round[:80]!r} is not a safe folder name: use 1-64 letters,"
                " digits, '.', '_' or '-', not starting with '.'"
            )
        for name in ("count", "start", "batch_size", "max_new_tokens", "num_runs"):
            value = getattr(self, name)
            if value is not None and value < (0 if name in ("count", "start") else 1):
                flag = "--" + name.replace("_", "-")
                raise ConfigError(
                    f"{flag} must be >= {0 if name in ('count', 'start') else 1}, got {value}"
                )
        self._check_numbers()

    def _check_numbers(self) -> None:
        # Caught here, before a model loads for minutes, not by the sampler later.
        checks = (
            ("temperature", self.temperature, lambda v: math.isfinite(v) and v >= 0, ">= 0"),
            ("top-p", self.top_p, lambda v: 0 < v <= 1, "in (0, 1]"),
            ("sandbox-timeout", self.sandbox_timeout, lambda v: math.isfinite(v) and v > 0,
             "a finite number of seconds > 0"),
            ("seed", self.seed, lambda v: 0 <= v < 2**63, "in [0, 2**63)"),
        )  # fmt: skip
        for flag, value, ok, wanted in checks:
            if value is not None and not ok(value):
                raise ConfigError(f"--{flag} must be {wanted}, got {value}")
