"""What one evaluation run is asked to do: a typed record, for the command line and notebooks.

``infertune eval`` builds an :class:`EvalRequest` from its flags; a notebook builds one
with keywords (or calls :func:`evaluation.evaluate`).  ``None`` means "not given": a
``--resume`` folder's value is used then, else the default.  A tuned profile arrives as
:class:`ProfileSettings`, plain values the command layer resolved, so evaluation never
reads a profile file or an argparse namespace.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from engines.errors import ConfigError
from engines.registry import backend_names


@dataclass(frozen=True, slots=True, kw_only=True)
class ProfileSettings:
    """A tuned profile as a run applies it: a backend and engine settings, and where from."""

    path: str
    backend: str
    engine: Mapping[str, object] = field(default_factory=dict)
    hardware_id: str | None = None
    created: str | None = None
    # the prompt settings the profile was tuned under (PromptSettings.tuned_record());
    # None for a profile older than that record
    prompt: Mapping[str, object] | None = None

    def as_record(self, *, is_applied: bool = True) -> dict[str, object]:
        """The ``profile`` entry of ``run.json``; an explicit other backend ignores the knobs."""
        if not is_applied:
            return {"backend": self.backend, "engine": {}, "path": self.path, "ignored": True}
        return {
            "backend": self.backend,
            "engine": dict(self.engine),
            "path": self.path,
            "hardware_id": self.hardware_id,
            "created": self.created,
        }


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
