"""Tuned configurations saved per model and per kind of machine.

:mod:`tuner.profiles.records` defines the :class:`Profile` record,
:mod:`tuner.profiles.store` where profiles live and how they are read and
written, and :mod:`tuner.profiles.resolve` the one answer to "which profile does
this run apply" (``--profile auto|PATH``)::

    path = save_profile(profile)              # atomic; never clobbers a foreign file
    path = find_profile("synthetic:small", hardware_id(fingerprint()))
    profile = load_profile(path)
    warnings = check_compatible(profile, fingerprint())   # raises ProfileError on a mismatch

:func:`eval_settings` turns one into what ``evaluation.evaluate(profile=...)`` applies.
"""

from common.naming import model_slug
from tuner.profiles.eval_settings import eval_settings
from tuner.profiles.records import (
    KIND,
    SCHEMA_VERSION,
    CountRange,
    ModeEntry,
    Profile,
    ProfileConfig,
    ProfileError,
    ProfileMetrics,
    StudyRef,
)
from tuner.profiles.resolve import ResolvedProfile, resolve_profile
from tuner.profiles.store import (
    ROOT_ENV,
    ProfileEntry,
    check_compatible,
    find_profile,
    legacy_slug,
    list_profiles,
    load_profile,
    model_revision,
    profile_path,
    profiles_root,
    save_profile,
    update_profile,
)

__all__ = [
    "KIND",
    "ROOT_ENV",
    "SCHEMA_VERSION",
    "CountRange",
    "ModeEntry",
    "Profile",
    "ProfileConfig",
    "ProfileEntry",
    "ProfileError",
    "ProfileMetrics",
    "ResolvedProfile",
    "StudyRef",
    "check_compatible",
    "eval_settings",
    "find_profile",
    "legacy_slug",
    "list_profiles",
    "load_profile",
    "model_revision",
    "model_slug",
    "profile_path",
    "profiles_root",
    "resolve_profile",
    "save_profile",
    "update_profile",
]
