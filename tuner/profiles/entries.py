"""The parts of a profile: what tuning chose and measured for one run, per mode and
range of counts, and where its study lives.

:class:`ProfileConfig` passes straight to ``engines.load_engine``; :class:`ProfileMetrics`
holds what it measured; :class:`CountRange` and :class:`ModeEntry` say which runs it is
for.  :mod:`tuner.profiles.records` assembles them into a :class:`~tuner.profiles.records.Profile`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from engines.errors import InfertuneError


class ProfileError(InfertuneError, ValueError):
    """A profile is missing, corrupted, foreign, invalid, or does not fit this machine."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ProfileConfig:
    """The chosen configuration.

    ``settings`` are the backend's config fields, passed unchanged to
    ``load_engine(backend, model, **settings)``.  ``batch_size`` is the batch
    size to report in tables (transformers' ``batch_size``, vLLM's
    ``max_num_seqs``).
    """

    backend: str
    settings: dict[str, Any] = field(default_factory=dict)
    batch_size: int | None = None

    def __post_init__(self) -> None:
        if not self.backend or not isinstance(self.backend, str):
            raise ProfileError(f"config.backend must be a backend name, got {self.backend!r}")
        if not isinstance(self.settings, dict) or not all(
            isinstance(k, str) for k in self.settings
        ):
            raise ProfileError("config.settings must be a dict keyed by engine setting names")
        if self.batch_size is not None and self.batch_size < 1:
            raise ProfileError(f"config.batch_size must be >= 1, got {self.batch_size}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ProfileMetrics:
    """What the chosen configuration measured on the workload.

    ``speedup`` is ``problems_per_s / baseline_problems_per_s`` (baseline:
    transformers at batch size 1); ``parity_agreement`` is the fraction of
    canary problems whose greedy answer matched the baseline's, in [0, 1];
    ``parity`` the whole comparison (:meth:`tuner.answer_parity.ParityReport.as_dict`:
    flips, accuracy delta, McNemar p), absent from profiles saved before it.
    ``load_s`` and ``warmup_s`` are the engine's load and warm-up seconds;
    ``predicted_wall_s`` is ``load_s + warmup_s + for_count / problems_per_s``,
    the objective tuning minimised (absent from profiles saved before it).
    """

    problems_per_s: float
    output_tokens_per_s: float
    baseline_problems_per_s: float
    speedup: float
    parity_agreement: float
    peak_memory_bytes: int | None = None
    parity: dict[str, Any] | None = None
    load_s: float | None = None
    warmup_s: float | None = None
    for_count: int | None = None
    predicted_wall_s: float | None = None

    def __post_init__(self) -> None:
        for name in ("load_s", "warmup_s", "predicted_wall_s"):
            if getattr(self, name) is not None and not getattr(self, name) >= 0:
                raise ProfileError(f"metrics.{name} must be >= 0, got {getattr(self, name)!r}")
        if self.for_count is not None and not self.for_count >= 1:
            raise ProfileError(f"metrics.for_count must be >= 1, got {self.for_count!r}")
        for name in ("problems_per_s", "baseline_problems_per_s", "speedup"):
            if not getattr(self, name) > 0:
                raise ProfileError(f"metrics.{name} must be > 0, got {getattr(self, name)!r}")
        if not self.output_tokens_per_s >= 0:
            raise ProfileError(
                f"metrics.output_tokens_per_s must be >= 0, got {self.output_tokens_per_s!r}"
            )
        if not 0 <= self.parity_agreement <= 1:
            raise ProfileError(
                f"metrics.parity_agreement must be in [0, 1], got {self.parity_agreement!r}"
            )
        if self.peak_memory_bytes is not None and self.peak_memory_bytes < 0:
            raise ProfileError(
                f"metrics.peak_memory_bytes must be >= 0, got {self.peak_memory_bytes}"
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class StudyRef:
    """Where the Optuna trial that produced a profile lives.

    In a saved profile a file storage (``sqlite:///``, ``journal:``) is relative
    to the profile's folder; :func:`tuner.profiles.store.load_profile` makes it
    absolute again.  ``budget_s`` / ``budget_used_s`` are the tune's wall-clock
    budget and what it used, ``stop_reason`` why it stopped (``budget``,
    ``n_trials``, ...); ``None`` in profiles saved before tune had a budget.
    """

    storage: str
    study_name: str
    trial_number: int
    budget_s: float | None = None
    budget_used_s: float | None = None
    stop_reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CountRange:
    """The configuration that makes runs of ``min_count`` to ``max_count`` problems fastest.

    Load and warm-up are paid once per run, throughput once per problem, so a
    configuration that loads fast can win short runs and lose long ones; tuning
    keeps each winner with its range (``max_count`` ``None``: no upper bound).
    """

    config: ProfileConfig
    metrics: ProfileMetrics
    min_count: int = 1
    max_count: int | None = None

    def __post_init__(self) -> None:
        if self.min_count < 1 or (self.max_count is not None and self.max_count < self.min_count):
            raise ProfileError(
                f"by_count range [{self.min_count}, {self.max_count}] is empty or below 1"
            )

    def covers(self, count: int) -> bool:
        return self.min_count <= count and (self.max_count is None or count <= self.max_count)

    def as_dict(self) -> dict[str, Any]:
        return {"min_count": self.min_count, "max_count": self.max_count,
                "config": asdict(self.config), "metrics": asdict(self.metrics)}  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CountRange:
        return cls(
            min_count=data.get("min_count", 1),
            max_count=data.get("max_count"),
            config=ProfileConfig(**data["config"]),
            metrics=ProfileMetrics(**data["metrics"]),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ModeEntry:
    """What tuning chose for one run mode (:func:`evaluation.request.mode_key`)."""

    config: ProfileConfig
    metrics: ProfileMetrics
    by_count: tuple[CountRange, ...] = ()
    workload: dict[str, Any] = field(default_factory=dict)
    study: StudyRef | None = None

    def for_count(self, count: int | None) -> CountRange:
        """The range holding ``count`` problems; the entry itself when none does (or no count)."""
        found = [r for r in self.by_count if count is not None and r.covers(count)]
        return found[0] if found else CountRange(config=self.config, metrics=self.metrics)

    def as_dict(self) -> dict[str, Any]:
        return {
            "config": asdict(self.config),
            "metrics": asdict(self.metrics),
            "by_count": [r.as_dict() for r in self.by_count],
            "workload": self.workload,
            "study": None if self.study is None else asdict(self.study),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModeEntry:
        return cls(
            config=ProfileConfig(**data["config"]),
            metrics=ProfileMetrics(**data["metrics"]),
            by_count=tuple(CountRange.from_dict(r) for r in data.get("by_count") or ()),
            workload=dict(data.get("workload") or {}),
            study=StudyRef(**data["study"]) if data.get("study") else None,
        )
