"""``--batch-size auto``: the batch of this machine's profile for the run, else the probe's.

It needs the probe and the profiles, which live in ``tuner``; evaluation never imports
``tuner``, so it is resolved here and handed down as plain values
(:func:`tuner.profiles.eval_settings`).
"""

from __future__ import annotations

import dataclasses
import sys

from engines.errors import ConfigError
from evaluation.request import EvalRequest
from tuner.profiles import eval_settings, resolve_profile

PROBE_PROBLEMS = 64  # the probe's workload: enough for its p90 lengths, quick to build


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
        settings = eval_settings(resolved.profile, resolved.path, is_batch_only=True)
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
