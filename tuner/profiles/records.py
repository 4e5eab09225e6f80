"""The profile record: what tuning chose, what it measured, where and with what.

A :class:`Profile` holds what tuning chose (a backend and engine settings that
pass straight to ``engines.load_engine(backend, model, **settings)``), what it
measured, and where and with which library versions it measured it.  Files carry
``"kind": "infertune.profile"`` and a ``schema_version``; :meth:`Profile.from_dict`
accepts every older version.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from common.hardware import Hardware
from common.versions import LibraryVersions

# the parts live in entries.py; importing them from here keeps working
from tuner.profiles.entries import (  # noqa: F401
    CountRange,
    ModeEntry,
    ProfileConfig,
    ProfileError,
    ProfileMetrics,
    StudyRef,
)

# 2: metrics gain load_s, warmup_s, for_count, predicted_wall_s; profiles gain by_count,
# mode and modes (version 1 files read unchanged: one standard entry, one range)
SCHEMA_VERSION = 2
KIND = "infertune.profile"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True, slots=True, kw_only=True)
class Profile:
    """One tuned configuration of ``model`` on one kind of machine.

    ``workload`` describes what was measured (dataset, count, seed, decoding,
    replayed lengths, ...) as plain JSON.  ``hardware_id`` is stored, not
    recomputed, so profiles keep their key if the id scheme ever changes.

    ``config``, ``metrics``, ``by_count``, ``workload`` and ``study`` are the entry
    of run mode ``mode`` (``"standard"`` for every version-1 file); ``modes`` holds
    the entries of the other modes that were tuned.  :meth:`entry` reads either.
    """

    model: str
    hardware: Hardware
    hardware_id: str
    config: ProfileConfig
    metrics: ProfileMetrics
    workload: dict[str, Any] = field(default_factory=dict)
    model_revision: str | None = None
    study: StudyRef | None = None
    created: str = field(default_factory=_now)
    schema_version: int = SCHEMA_VERSION
    by_count: tuple[CountRange, ...] = ()
    mode: str = "standard"
    modes: dict[str, ModeEntry] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.model or not isinstance(self.model, str):
            raise ProfileError("model must be a non-empty model id or path")
        if not self.hardware_id or not isinstance(self.hardware_id, str):
            raise ProfileError("hardware_id must be non-empty (use common.hardware.hardware_id)")
        # read back from a file a user may have edited: listing and sorting need these types
        if not isinstance(self.created, str):
            raise ProfileError(f"created must be an ISO date string, got {self.created!r}")
        if not isinstance(self.model_revision, str | None):
            raise ProfileError(f"model_revision must be a string, got {self.model_revision!r}")

    @property
    def versions(self) -> LibraryVersions:
        return self.hardware.versions

    def entries(self) -> dict[str, ModeEntry]:
        """Every tuned mode's entry, this profile's own ``mode`` first."""
        own = ModeEntry(config=self.config, metrics=self.metrics, by_count=self.by_count,
                        workload=self.workload, study=self.study)  # fmt: skip
        return {self.mode: own} | {k: v for k, v in self.modes.items() if k != self.mode}

    def entry(self, mode: str) -> ModeEntry | None:
        """The entry tuned for run mode ``mode``, or ``None`` when that mode was not tuned."""
        return self.entries().get(mode)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, as written to disk."""
        return {
            "kind": KIND,
            "schema_version": self.schema_version,
            "model": self.model,
            "model_revision": self.model_revision,
            "hardware_id": self.hardware_id,
            "hardware": self.hardware.as_dict(),
            "config": asdict(self.config),
            "metrics": asdict(self.metrics),
            "workload": self.workload,
            "study": None if self.study is None else asdict(self.study),
            "created": self.created,
            "mode": self.mode,
            "by_count": [r.as_dict() for r in self.by_count],
            "modes": {k: v.as_dict() for k, v in self.modes.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Profile:
        """Read :meth:`as_dict` output of this or any older schema version.

        Raises:
            ProfileError: the dict is not a profile, or a field is missing or invalid.
        """
        data = _upgrade(data)
        try:
            return cls(
                model=data["model"],
                hardware=Hardware.from_dict(data["hardware"]),
                hardware_id=data["hardware_id"],
                config=ProfileConfig(**data["config"]),
                metrics=ProfileMetrics(**data["metrics"]),
                workload=dict(data.get("workload") or {}),
                model_revision=data.get("model_revision"),
                study=StudyRef(**data["study"]) if data.get("study") else None,
                created=data["created"],
                mode=data.get("mode") or "standard",
                by_count=tuple(CountRange.from_dict(r) for r in data.get("by_count") or ()),
                modes={k: ModeEntry.from_dict(v) for k, v in (data.get("modes") or {}).items()},
            )
        except KeyError as error:
            raise ProfileError(f"profile is missing field {error.args[0]!r}") from None
        except (TypeError, ValueError, AttributeError) as error:
            raise ProfileError(f"profile has an invalid field: {error}") from None


# version -> function turning a dict of that version into the next version.
# Version 2 only added optional fields, whose defaults read a version-1 file as it was.
_UPGRADES: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: dict}


def _upgrade(data: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(data, Mapping) or data.get("kind") != KIND:
        raise ProfileError(f'not an infertune profile (no "kind": "{KIND}")')
    version = data.get("schema_version")
    if not isinstance(version, int) or version < 1:
        raise ProfileError(f"profile has an invalid schema_version {version!r}")
    if version > SCHEMA_VERSION:
        raise ProfileError(
            f"profile schema_version {version} is newer than this infertune reads"
            f" ({SCHEMA_VERSION}); upgrade infertune"
        )
    upgraded = dict(data)
    while version < SCHEMA_VERSION:
        upgraded = _UPGRADES[version](upgraded)
        version += 1
    return upgraded
