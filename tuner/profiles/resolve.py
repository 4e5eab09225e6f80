"""Which profile a run applies: the one answer for ``eval``, ``speedup`` and ``sweep``.

``--profile auto`` means this machine's saved profile for the model; a path means
that file.  Either way the profile must be for the model and fit this machine
(:func:`~tuner.profiles.store.check_compatible`); harmless version drift comes
back as warnings, for the caller to show.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.hardware import Hardware, fingerprint, hardware_id
from tuner.profiles.records import Profile, ProfileError
from tuner.profiles.store import check_compatible, find_profile, load_profile

AUTO = "auto"
NONE = "none"


@dataclass(frozen=True, slots=True, kw_only=True)
class ResolvedProfile:
    """The profile to apply (``profile``, read from ``path``), or why there is none.

    ``reason`` is set exactly when ``profile`` is ``None``; ``warnings`` are
    version drifts that do not stop the profile from applying.
    """

    path: Path | None
    profile: Profile | None
    warnings: tuple[str, ...] = ()
    reason: str | None = None

    @property
    def backend(self) -> str | None:
        return self.profile.config.backend if self.profile else None

    @property
    def settings(self) -> dict[str, Any]:
        """The engine settings to apply: they pass straight to ``load_engine``."""
        return dict(self.profile.config.settings) if self.profile else {}


def resolve_profile(
    spec: str | os.PathLike[str] | None,
    model: str | None,
    *,
    root: str | os.PathLike[str] | None = None,
    hardware: Hardware | None = None,
    optional: bool = False,
) -> ResolvedProfile:
    """Resolve ``spec`` (``"auto"``, a profile path, or ``None``/``"none"``) for ``model``.

    Args:
        spec: What the user asked for.
        model: The model the run is for (required for ``"auto"``); a profile for
            another model is refused.
        root: The profiles root (default: :func:`~tuner.profiles.store.profiles_root`).
        hardware: This machine's fingerprint (default: read it now).
        optional: With ``"auto"``, a missing or unusable profile is returned as a
            ``reason`` instead of raised (the sweep tunes then; speedup skips it).

    Raises:
        ProfileError: no profile (unless ``optional``), or one for another model or
            another machine; the message says what to do.
    """
    if spec is None or str(spec) == NONE:
        return ResolvedProfile(path=None, profile=None, reason="no profile requested")
    hardware = hardware or fingerprint()
    if str(spec) != AUTO:
        return _checked(Path(spec), model, hardware)
    if not model:
        raise ProfileError("--profile auto needs --model to find the model's profile")
    here = hardware_id(hardware)
    path = find_profile(model, here, root)
    if path is None:
        reason = f"no profile for {model} on this machine ({here})"
        if optional:
            return ResolvedProfile(path=None, profile=None, reason=reason)
        raise ProfileError(f"{reason}; run `infertune tune --model {model}` first")
    try:
        return _checked(path, model, hardware)
    except ProfileError as error:
        if not optional:
            raise
        return ResolvedProfile(path=path, profile=None, reason=str(error))


def _checked(path: Path, model: str | None, hardware: Hardware) -> ResolvedProfile:
    profile = load_profile(path)
    if model and profile.model != model:
        raise ProfileError(f"profile {path} is for model {profile.model}, not {model}")
    warnings = tuple(check_compatible(profile, hardware))
    return ResolvedProfile(path=path, profile=profile, warnings=warnings)
