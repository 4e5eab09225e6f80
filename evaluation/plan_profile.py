"""How a run applies a tuned profile: the entry for its mode and count, a batch-only
profile (``--batch-size auto``), and a warning when the profile was tuned on other prompts.

:func:`evaluation.plan.plan_for_mode` calls these once the run's problems are known.
"""

from __future__ import annotations

import dataclasses

from engines.registry import batch_field
from evaluation.prompts import PromptSettings, prompt_differences
from evaluation.request import EvalRequest, ProfileSettings, mode_key, samples_per_problem


def for_run(request: EvalRequest, mode_name: str, mode_settings: dict, count: int) -> EvalRequest:
    """``request`` with its profile's entry for this run: its mode and number of problems.

    A batch-only profile (``--batch-size auto``) becomes the request's batch size.
    """
    profile = request.profile
    if profile is None:
        return request
    num_runs = (mode_settings.get("agent") or {}).get("num_runs")
    samples = samples_per_problem(mode_name, num_runs)
    profile = profile.for_run(mode_key(mode_name, num_runs), count, samples)
    if not profile.is_batch_only:
        return dataclasses.replace(request, profile=profile)
    batch = profile.engine.get(batch_field(profile.backend))
    return dataclasses.replace(request, profile=profile, batch_size=batch)


def batch_source(request: EvalRequest, backend: str, engine: dict) -> dict[str, object]:
    """``batch_size_source`` and the batch it chose, for ``run.json`` (``--batch-size auto``)."""
    if request.batch_size_source is None:
        return {}
    return {"batch_size_source": request.batch_size_source,
            "batch_size": engine.get(batch_field(backend))}  # fmt: skip


def prompt_mismatch(
    profile: ProfileSettings | None, record: dict[str, object] | None, prompt: dict
) -> tuple[str, ...]:
    """A warning, and a ``prompt_mismatch`` entry in ``record``, when the profile was
    tuned under other prompt settings than this run's.

    The profile still applies (as vLLM and lm-eval warn about, rather than refuse,
    a mismatched config): its knobs only change speed, and the run records its
    own prompt settings, so nothing is silently wrong; a refusal would stop, for
    instance, an evaluation with a larger ``max_new_tokens`` than the tuning's.
    """
    if profile is None or record is None or not profile.prompt or record.get("ignored"):
        return ()
    differences = prompt_differences(profile.prompt, PromptSettings.from_record(prompt))
    if not differences:
        return ()
    record["prompt_mismatch"] = {k: {"profile": a, "run": b} for k, (a, b) in differences.items()}
    named = ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in differences.items())
    return (
        f"profile {profile.path} was tuned under other prompt settings ({named}); its engine"
        " settings are applied anyway, and its measured speed may not hold for this run",
    )
