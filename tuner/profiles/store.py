"""Where profiles live, and reading, writing, finding and checking them.

Profiles live at ``<root>/<model-slug>/<hardware-id>.json`` (see
:func:`profiles_root`; the slug is :func:`common.naming.model_slug`, the one every
folder uses)::

    path = save_profile(profile)              # atomic; never clobbers a foreign file
    path = find_profile("synthetic:small", hardware_id(fingerprint()))
    profile = load_profile(path)
    warnings = check_compatible(profile, fingerprint())   # raises ProfileError on a mismatch
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from common.hardware import Hardware, hardware_id
from common.io import write_atomic
from common.limits import read_text_limited
from common.naming import model_slug
from common.versions import LibraryVersions
from engines.errors import ConfigError
from engines.models import model_revision as model_revision  # re-exported for profiles
from tuner.profiles.records import Profile, ProfileError, StudyRef

ROOT_ENV = "INFERTUNE_PROFILES_DIR"


def legacy_slug(model: str) -> str:
    """The folder name profiles were saved under before :func:`common.naming.model_slug`:
    ``"Qwen/Qwen2.5-1.5B"`` -> ``"qwen--qwen2.5-1.5b"``.  Read, never written."""
    name = Path(model).name if Path(model).is_dir() else model
    return re.sub(r"[^a-z0-9._-]+", "-", name.lower().replace("/", "--")).strip("-.")


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
    checkout = Path(__file__).resolve().parents[2]
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
        text = read_text_limited(path, what="profile")  # not /dev/zero, nor 1 GB
    except FileNotFoundError:
        raise ProfileError(f"profile {path} does not exist; run `infertune tune` first") from None
    except ConfigError as error:  # the message names the file already
        raise ProfileError(str(error)) from None
    except OSError as error:
        raise ProfileError(f"cannot read profile {path}: {error}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ProfileError(
            f"profile {path} is corrupted (invalid JSON at line {error.lineno});"
            " delete it and tune again"
        ) from None
    try:
        profile = Profile.from_dict(data)
    except ProfileError as error:
        raise ProfileError(f"{path}: {error}") from None
    # On disk the storage is relative to the profile (it travels); in memory it
    # is the URL Optuna opens, so a loaded profile equals the one that was saved.
    return _with_storages(profile, lambda storage: storage_url(path, storage))


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
    profile = _with_storages(profile, lambda storage: portable_storage(storage, target.parent))
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


def update_profile(
    model: str,
    hardware_id: str,
    build: Callable[[Profile | None], Profile],
    root: str | os.PathLike[str] | None = None,
) -> tuple[Profile, Path]:
    """Read this machine's profile of ``model``, build the new one from it and save it, as one
    step: ``build`` gets the current profile (``None`` if there is none) and returns the one
    to write.  Returns it and its path.

    Tunes of different modes add their entries to one profile, and a Ray sweep runs them at
    once: without the lock two could read the same file and the later write would drop the
    other's entry.  An ``flock`` on a hidden lock file beside the profile makes writers take
    turns; readers need none, since every write is atomic.
    """
    target = profile_path(model, hardware_id, root)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.with_name(f".{target.name}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        found = find_profile(model, hardware_id, root)
        profile = build(load_profile(found) if found is not None else None)
        return profile, save_profile(profile, path=target)


def _with_storages(profile: Profile, convert: Callable[[str], str]) -> Profile:
    """``profile`` with ``convert`` applied to the storage of each mode's study."""

    def study(ref: StudyRef | None) -> StudyRef | None:
        return None if ref is None else replace(ref, storage=convert(ref.storage))

    modes = {k: replace(v, study=study(v.study)) for k, v in profile.modes.items()}
    return replace(profile, study=study(profile.study), modes=modes)


def find_profile(
    model: str, hardware_id: str, root: str | os.PathLike[str] | None = None
) -> Path | None:
    """The path of ``model``'s profile for ``hardware_id``, or ``None`` (``--profile auto``).

    A profile saved under the older folder name (:func:`legacy_slug`) is found too.
    """
    path = profile_path(model, hardware_id, root)
    legacy = profiles_root(root) / legacy_slug(model) / f"{hardware_id}.json"
    return next((p for p in (path, legacy) if p.is_file()), None)


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


# Storages that are a file on this machine: (URL prefix, what may follow it first).
_FILE_STORAGES = (("sqlite:///", ""), ("journal:", "//"))


def _file_storage(storage: str) -> tuple[str, Path] | None:
    """``(prefix, path)`` of a storage that is a file on this machine, else None."""
    for prefix, extra in _FILE_STORAGES:
        if storage.startswith(prefix):
            raw = storage.removeprefix(prefix).removeprefix(extra)
            # ":memory:" or nothing is no file to move.
            return None if not raw or raw.startswith(":memory:") else (prefix, Path(raw))
    return None


def portable_storage(storage: str, folder: str | os.PathLike[str]) -> str:
    """``storage`` as a profile in ``folder`` records it: absolute file paths made relative.

    A profile is a file that travels (committed, copied to another machine), so
    it must not carry the absolute path of the machine that tuned.  Server URLs
    (``postgresql://...``) are kept as the user passed them.
    """
    found = _file_storage(storage)
    if found is None:
        return storage
    prefix, path = found
    # A relative path was relative to where tune ran; resolve() anchors it there.
    return prefix + Path(os.path.relpath(path.resolve(), Path(folder).resolve())).as_posix()


def storage_url(profile_path: str | os.PathLike[str], storage: str) -> str:
    """The inverse of :func:`portable_storage`: a URL Optuna opens, from a saved profile."""
    found = _file_storage(storage)
    if found is None or found[1].is_absolute():
        return storage
    prefix, path = found
    return prefix + str((Path(profile_path).resolve().parent / path).resolve())
