"""A saved profile as an evaluation applies it: plain settings, no file and no tuner types.

Evaluation never imports the tuner, so a profile reaches it as
:class:`evaluation.request.ProfileSettings`: the profile's own entry, and every tuned
entry (per mode and range of counts) as a :class:`~evaluation.request.ProfileChoice`, so
the plan picks the one for the run once it knows its problems.  The ``eval`` command and
a notebook build it the same way::

    from evaluation import evaluate
    from tuner.profiles import eval_settings, resolve_profile

    resolved = resolve_profile("auto", "synthetic:small")
    evaluate(model="synthetic:small", dataset="gsm8k",
             profile=eval_settings(resolved.profile, resolved.path))
"""

from __future__ import annotations

from pathlib import Path

from evaluation.request import ProfileChoice, ProfileSettings
from tuner.profiles.records import CountRange, Profile


def eval_settings(
    profile: Profile, path: Path | str | None = None, *, is_batch_only: bool = False
) -> ProfileSettings:
    """``profile`` as plain settings: its own entry, and every entry as a choice.

    ``path`` is where it was read from (``run.json`` records it); ``is_batch_only`` applies
    only its batch size (``--batch-size auto``), not its backend and knobs.
    """
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
