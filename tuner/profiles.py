"""Tuned configurations saved per model and per kind of machine.

A :class:`Profile` holds what tuning chose (a backend and engine settings that
pass straight to ``engines.load_engine(backend, model, **settings)``), what it
measured, and where and with which library versions it measured it.  Profiles
live at ``<root>/<model-slug>/<hardware-id>.json`` (see :func:`profiles_root`).
Files carry ``"kind": "infertune.profile"`` and a ``schema_version``; readers
accept every older version::

    path = save_profile(profile)              # atomic; never clobbers a foreign file
    path = find_profile("synthetic:small", hardware_id(fingerprint()))
    profile = load_profile(path)
    warnings = check_compatible(profile, fingerprint())   # raises ProfileError on a mismatch
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engines.errors import InfertuneError
from evaluation.results import write_atomic
from tuner.hardware import Hardware, LibraryVersions, hardware_id

SCHEMA_VERSION = 1
KIND = "infertune.profile"
ROOT_ENV = "INFERTUNE_PROFILES_DIR"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")


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
    canary problems whose greedy answer matched the baseline's, in [0, 1].
    """

    problems_per_s: float
    output_tokens_per_s: float
    baseline_problems_per_s: float
    speedup: float
    parity_agreement: float
    peak_memory_bytes: int | None = None

    def __post_init__(self) -> None:
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
    """Where the Optuna trial that produced a profile lives."""

    storage: str
    study_name: str
    trial_number: int


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True, slots=True, kw_only=True)
class Profile:
    """One tuned configuration of ``model`` on one kind of machine.

    ``workload`` describes what was measured (dataset, count, seed, decoding,
    replayed lengths, ...) as plain JSON.  ``hardware_id`` is stored, not
    recomputed, so profiles keep their key if the id scheme ever changes.
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

    def __post_init__(self) -> None:
        if not self.model:
            raise ProfileError("model must be a non-empty model id or path")
        if not self.hardware_id:
            raise ProfileError("hardware_id must be non-empty (use tuner.hardware.hardware_id)")

    @property
    def versions(self) -> LibraryVersions:
        return self.hardware.versions

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
            )
        except KeyError as error:
            raise ProfileError(f"profile is missing field {error.args[0]!r}") from None
        except (TypeError, ValueError) as error:
            raise ProfileError(f"profile has an invalid field: {error}") from None


# version -> function turning a dict of that version into the next version.
_UPGRADES: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}


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


def model_slug(model: str) -> str:
    """The directory name for ``model``: ``"Qwen/Qwen2.5-1.5B"`` -> ``"qwen--qwen2.5-1.5b"``.

    A local model directory is named by its last component, so the same model
    copied elsewhere finds the same profiles.
    """
    name = Path(model).name if Path(model).is_dir() else model
    slug = re.sub(r"[^a-z0-9._-]+", "-", name.lower().replace("/", "--")).strip("-.")
    if not slug:
        raise ProfileError(f"cannot make a profile directory name from model {model!r}")
    return slug


def model_revision(model: str) -> str | None:
    """A content id for ``model`` when one can be had offline, else ``None``.

    Local directory: ``"sha256:<16 hex>"`` of ``config.json`` plus the names and
    sizes of the weight files.  ``synthetic:NAME``: a hash of its spec.  Hub id:
    the commit the local Hugging Face cache resolved ``main`` to, if cached.
    """
    path = Path(model)
    if path.is_dir():
        digest = hashlib.sha256()
        config = path / "config.json"
        if config.is_file():
            digest.update(config.read_bytes())
        for weight in sorted(p for p in path.iterdir() if p.name.endswith(WEIGHT_SUFFIXES)):
            digest.update(f"{weight.name}:{weight.stat().st_size}\n".encode())
        return "sha256:" + digest.hexdigest()[:16]
    if model.startswith("synthetic:"):
        from engines import synthetic

        spec = json.dumps(asdict(synthetic.spec_for(model)), sort_keys=True)
        return "synthetic:" + hashlib.sha256(spec.encode()).hexdigest()[:12]
    hub = os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME", os.path.expanduser("~/.cache/huggingface")), "hub"
    )
    ref = Path(hub) / f"models--{model.replace('/', '--')}" / "refs" / "main"
    return ref.read_text().strip() if ref.is_file() else None


def profiles_root(root: str | os.PathLike[str] | None = None) -> Path:
    """Where profiles live, first match wins.

    1. ``root`` when given (``--root``);
    2. ``$INFERTUNE_PROFILES_DIR`` when set;
    3. ``profiles/`` of the source checkout holding the ``tuner`` package,
       when it is writable (created on first save);
    4. ``$XDG_DATA_HOME/infertune/profiles`` (default ``~/.local/share/...``).
    """
    if root is not None:
        return Path(root)
    if os.environ.get(ROOT_ENV):
        return Path(os.environ[ROOT_ENV])
    checkout = Path(__file__).resolve().parents[1]
    repo = checkout / "profiles"
    # A source checkout (pyproject.toml next to the package), not site-packages.
    if (checkout / "pyproject.toml").is_file() and os.access(
        repo if repo.is_dir() else checkout, os.W_OK
    ):
        return repo
    data_home = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return Path(data_home) / "infertune" / "profiles"


def profile_path(model: str, hardware_id: str, root: str | os.PathLike[str] | None = None) -> Path:
    """``<root>/<model-slug>/<hardware-id>.json`` (the file need not exist)."""
    return profiles_root(root) / model_slug(model) / f"{hardware_id}.json"


def load_profile(path: str | os.PathLike[str]) -> Profile:
    """Read a profile file.

    Raises:
        ProfileError: the file is missing, not JSON, not a profile, of a newer
            schema, or has an invalid field; the one-line message names the file.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProfileError(f"profile {path} does not exist; run `infertune tune` first") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ProfileError(f"cannot read profile {path}: {error}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ProfileError(
            f"profile {path} is corrupted (invalid JSON at line {error.lineno});"
            " delete it and tune again"
        ) from None
    try:
        return Profile.from_dict(data)
    except ProfileError as error:
        raise ProfileError(f"{path}: {error}") from None


def save_profile(
    profile: Profile,
    root: str | os.PathLike[str] | None = None,
    *,
    path: str | os.PathLike[str] | None = None,
) -> Path:
    """Write ``profile`` atomically (temp file + ``os.replace``); returns its path.

    The path defaults to :func:`profile_path`.  An existing profile there is
    replaced; an existing file that is *not* a readable profile is left alone.

    Raises:
        ProfileError: the target holds a foreign or corrupted file, or the
            profile's settings or workload are not JSON-serialisable.
    """
    target = (
        Path(path) if path is not None else profile_path(profile.model, profile.hardware_id, root)
    )
    try:
        text = json.dumps(profile.as_dict(), indent=2, sort_keys=False) + "\n"
    except (TypeError, ValueError) as error:
        raise ProfileError(f"profile is not JSON-serialisable: {error}") from None
    if target.exists():
        try:
            load_profile(target)
        except ProfileError as error:
            raise ProfileError(
                f"refusing to overwrite {target}, which is not a readable profile ({error});"
                " move it away first"
            ) from None
    return write_atomic(target, text)


def find_profile(
    model: str, hardware_id: str, root: str | os.PathLike[str] | None = None
) -> Path | None:
    """The path of ``model``'s profile for ``hardware_id``, or ``None`` (``--profile auto``)."""
    path = profile_path(model, hardware_id, root)
    return path if path.is_file() else None


@dataclass(frozen=True, slots=True, kw_only=True)
class ProfileEntry:
    """One ``*.json`` file under the profiles root: a profile, or why it is not one."""

    path: Path
    profile: Profile | None = None
    error: str | None = None


def list_profiles(root: str | os.PathLike[str] | None = None) -> list[ProfileEntry]:
    """Every ``<model-slug>/<hardware-id>.json`` under the root, sorted by path."""
    entries = []
    for path in sorted(profiles_root(root).glob("*/*.json")):
        try:
            entries.append(ProfileEntry(path=path, profile=load_profile(path)))
        except ProfileError as error:
            entries.append(ProfileEntry(path=path, error=str(error)))
    return entries


def check_compatible(
    profile: Profile, hardware: Hardware, versions: LibraryVersions | None = None
) -> list[str]:
    """Refuse a profile measured elsewhere; return warnings for harmless drift.

    The hardware ids must match.  torch and transformers (and vllm for a vLLM
    profile) must match in major.minor; a patch difference, or another Python,
    is a warning.  ``versions`` defaults to ``hardware.versions``.

    Raises:
        ProfileError: another kind of machine, or a library's major/minor
            version differs or is missing; the message names the difference.
    """
    here = hardware_id(hardware)
    if profile.hardware_id != here:
        raise ProfileError(
            f"profile for {profile.model} was tuned on {profile.hardware_id}"
            f" ({profile.hardware.describe()}), but this machine is {here}"
            f" ({hardware.describe()}); run `infertune tune` here"
        )
    versions = versions or hardware.versions
    libraries = ["torch", "transformers"] + (["vllm"] if profile.config.backend == "vllm" else [])
    warnings = [
        message
        for library in libraries
        if (
            message := _version_drift(
                library, getattr(profile.versions, library), getattr(versions, library)
            )
        )
    ]
    if profile.versions.python.rsplit(".", 1)[0] != versions.python.rsplit(".", 1)[0]:
        warnings.append(
            f"python {versions.python} differs from the profile's {profile.versions.python}"
        )
    return warnings


def _version_drift(library: str, tuned: str | None, installed: str | None) -> str | None:
    """A warning for patch drift; raises ProfileError for a major/minor change."""
    if tuned is None or tuned == installed:
        return None
    if installed is None:
        raise ProfileError(f"profile was tuned with {library} {tuned}, which is not installed")
    if _major_minor(tuned) != _major_minor(installed):
        raise ProfileError(
            f"profile was tuned with {library} {tuned} but {installed} is installed;"
            f" install {library}=={tuned} or tune again"
        )
    return f"{library} {installed} differs from the profile's {tuned} (patch level only)"


def _major_minor(version: str) -> str:
    match = re.match(r"(\d+)\.(\d+)", version)
    return match.group(0) if match else version
