"""A profile as ``eval`` applies it, and ``--batch-size auto``.

The command layer reads the profile (``tuner``) and hands evaluation plain
values (:class:`evaluation.request.ProfileSettings`): every tuned entry, per mode
and range of counts, as a :class:`~evaluation.request.ProfileChoice`, so the plan
picks the one for the run once it knows its problems.  ``--batch-size auto``
needs the probe, which lives in ``tuner``; evaluation never imports ``tuner``, so
it is resolved here too.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from engines.errors import ConfigError
from evaluation.request import EvalRequest, ProfileChoice, ProfileSettings
from tuner.profiles import CountRange, Profile, resolve_profile

PROBE_PROBLEMS = 64  # the probe's workload: enough for its p90 lengths, quick to build


def profile_settings(
    profile: Profile, path: Path | None, *, is_batch_only: bool = False
) -> ProfileSettings:
    """``profile`` as plain settings: its own entry, and every entry as a choice."""
    choices = []
    for mode, entry in profile.entries().items():
        # the entry itself closes the list: it holds for a count no range covers
        whole = CountRange(config=entry.config, metrics=entry.metrics)
        for part in (*entry.by_count, whole):
            choices.append(ProfileChoice(mode=mode, backend=part.config.backend,
                                         engine=dict(part.config.settings),
                                         batch_size=part.config.batch_size,
                                         min_count=part.min_count,
                                         max_count=part.max_count))  # fmt: skip
    limits = [e.workload.get("max_batch_size") for e in profile.entries().values()]
    return ProfileSettings(
        path=str(path),
        backend=profile.config.backend,
        engine=dict(profile.config.settings),
        hardware_id=profile.hardware_id,
        created=profile.created,
        prompt=profile.workload.get("prompt"),
        choices=tuple(choices),
        max_batch_size=next((n for n in limits if isinstance(n, int)), None),
        is_batch_only=is_batch_only,
    )


def auto_batch(request: EvalRequest) -> EvalRequest:
    """``--batch-size auto``: the batch of the profile (``--profile``, else this machine's
    valid one) for the run's mode and count, else the probe's confirmed maximum."""
    if request.profile is not None:  # its batch applies as a profile's always does
        return dataclasses.replace(request, batch_size_source="profile")
    if not request.model or not request.dataset:
        raise ConfigError("--batch-size auto needs --model and --dataset (even with --resume)")
    resolved = resolve_profile("auto", request.model, optional=True)
    if resolved.profile is not None:
        for warning in resolved.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        settings = profile_settings(resolved.profile, resolved.path, is_batch_only=True)
        return dataclasses.replace(request, profile=settings, batch_size_source="profile")
    print(f"--batch-size auto: {resolved.reason}; probing the largest batch", file=sys.stderr)
    batch = _probed_batch(request)
    return dataclasses.replace(request, batch_size=batch, batch_size_source="probe")


def _probed_batch(request: EvalRequest) -> int:
    """The probe's confirmed maximum batch on the run's dataset and prompt settings."""
    from evaluation.datasets import load_problems
    from evaluation.prompts import PromptSettings
    from tuner.measurement.probe import run_probe

    available = len(load_problems(request.dataset, data_dir=request.data_dir))
    result = run_probe(
        request.model,
        request.dataset,
        data_dir=request.data_dir,
        num_problems=min(PROBE_PROBLEMS, available),
        max_new_tokens=request.max_new_tokens or PromptSettings().max_new_tokens,
        dtype=request.dtype or "auto",
        chat_template=request.apply_chat_template,
        system_prompt=request.system_prompt,
        stop=request.stop,
        progress=lambda line: print(f"probe: {line}", file=sys.stderr),
    )
    return result.confirmed_batch
