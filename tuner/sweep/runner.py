"""The sweep coordinator: find or tune profiles, then run every unfinished job.

Two phases, each a batch of independent jobs handed to an executor (in
process, one after another; or Ray tasks): first ``tune`` jobs for models
without a valid profile for this machine, then every evaluation job that is not
``done`` in the manifest.  A job left ``running`` by a killed sweep runs again
and the eval command's ``--resume`` continues it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tuner
from common.io import check_writable
from common.stopping import Stopped, stop_on_signals
from engines.errors import InfertuneError
from tuner.sweep.execute import JobContext, execute
from tuner.sweep.jobs import eval_jobs, tune_job
from tuner.sweep.manifest import Job, Manifest
from tuner.sweep.spec import ModelSpec, SweepSpec

# called with each finished job's manifest entry
OnDone = Callable[[dict[str, Any]], None]
# runs jobs (with their profile paths) and calls on_done as each finishes
Executor = Callable[[list[tuple[Job, str | None]], JobContext, OnDone], None]
# environment a job inherits from the sweep (also sent to Ray workers)
_PASSED_ENV_PREFIXES = ("INFERTUNE_", "HF_", "VLLM_", "OMP_", "MKL_", "CUDA_", "TRANSFORMERS_")


class SweepStopped(InfertuneError):
    """A signal stopped the sweep; it exits 128 + the signal, like a shell."""

    def __init__(self, message: str, *, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True, slots=True, kw_only=True)
class ProfileStatus:
    """The profile a model will be evaluated with, or why it must be tuned first."""

    path: str | None
    reason: str | None = None  # set when tuning is needed


def profile_status(model: ModelSpec, profiles_dir: Path | None) -> ProfileStatus:
    """``auto``: this machine's saved profile if valid; a path: that profile, checked.

    Raises:
        ProfileError: an explicitly named profile does not fit this machine.
    """
    from tuner.profiles import resolve_profile

    resolved = resolve_profile(model.profile, model.id, root=profiles_dir, optional=True)
    if resolved.profile is None:
        return ProfileStatus(path=None, reason=None if model.profile == "none" else resolved.reason)
    return ProfileStatus(path=str(resolved.path.resolve()))


def job_context(spec: SweepSpec) -> JobContext:
    """The context of ``spec``'s jobs: absolute paths, and the environment they need."""
    root = spec.results_root.resolve()
    repo = str(Path(tuner.__file__).resolve().parents[1])  # `python -m evaluation.eval` anywhere
    path = os.pathsep.join(p for p in (repo, os.environ.get("PYTHONPATH")) if p)
    env = {k: v for k, v in os.environ.items() if k.startswith(_PASSED_ENV_PREFIXES)}
    env["PYTHONPATH"] = path
    if spec.profiles_dir is not None:
        env["INFERTUNE_PROFILES_DIR"] = str(spec.profiles_dir.resolve())
    return JobContext(spec=spec, root=root, env=env)


def run_sweep(spec: SweepSpec, executor: Executor, on_done: OnDone,
              on_phase: Callable[[str, int, int], None]) -> list[dict[str, Any]]:  # fmt: skip
    """Run what is left of ``spec``; returns the manifest entries of its evaluation jobs.

    ``on_phase(name, num_to_run, num_total)`` is told what each phase will do.

    Raises:
        SweepStopped: SIGTERM or SIGINT stopped the sweep; the running job was
            stopped too (its reports written) and the summary shows what is done.
    """
    context = job_context(spec)
    fix = "set the sweep file's results: (or --results) to a writable folder"
    check_writable(context.root, what="sweep results", fix=fix)
    try:
        with stop_on_signals():
            return _run_phases(spec, context, executor, on_done, on_phase)
    except Stopped as stop:
        _write_summary_so_far(spec, context.root)
        raise SweepStopped(
            f"stopped by {stop}; run `infertune sweep {spec.path}` again to continue"
            " (finished jobs are kept, the stopped one resumes)",
            exit_code=stop.exit_code,
        ) from None


def _write_summary_so_far(spec: SweepSpec, root: Path) -> None:
    from tuner.sweep.summary import build_rows, write_summary

    entries = Manifest(root).jobs()
    write_summary(
        root, build_rows(root, [entries[j.id] for j in eval_jobs(spec) if j.id in entries])
    )


def _run_phases(spec: SweepSpec, context: JobContext, executor: Executor, on_done: OnDone,
                on_phase: Callable[[str, int, int], None]) -> list[dict[str, Any]]:  # fmt: skip
    manifest = Manifest(context.root)
    profiles_dir = spec.profiles_dir.resolve() if spec.profiles_dir else None
    statuses = {m.id: profile_status(m, profiles_dir) for m in spec.models}
    with manifest.exclusive_run():
        to_tune = [m for m in spec.models if statuses[m.id].reason and spec.tune.enabled]
        grid = eval_jobs(spec)
        entries = manifest.sync([tune_job(m.id) for m in to_tune] + grid)
        if to_tune:
            on_phase("tune", len(to_tune), len(spec.models))
            executor([(tune_job(m.id), None) for m in to_tune], context, on_done)
            statuses |= {m.id: profile_status(m, profiles_dir) for m in to_tune}
        pending = [job for job in grid if entries[job.id]["state"] != "done"]
        runnable = _skip_untuned(pending, statuses, spec, manifest, on_done)
        on_phase("eval", len(pending), len(grid))
        executor([(job, statuses[job.model].path) for job in runnable], context, on_done)
        final = manifest.jobs()
    return [final[job.id] for job in grid]


def _skip_untuned(jobs: Iterable[Job], statuses: dict[str, ProfileStatus], spec: SweepSpec,
                  manifest: Manifest, on_done: OnDone) -> list[Job]:  # fmt: skip
    """Jobs whose model has the profile it needs; the others fail with the reason."""
    runnable = []
    for job in jobs:
        reason = statuses[job.model].reason
        if reason is None or not spec.tune.enabled:
            runnable.append(job)  # tuning off: evaluate with the eval CLI's defaults
            continue
        error = f"tuning {job.model} failed ({reason}); see {tune_job(job.model).id}/job.log"
        on_done(manifest.update(job.id, state="failed", error=error))
    return runnable


def sequential(jobs: list[tuple[Job, str | None]], context: JobContext, on_done: OnDone) -> None:
    """Run jobs one after another in this process's children."""
    for job, profile in jobs:
        on_done(execute(job, context, profile))
