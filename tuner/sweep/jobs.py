"""From a checked sweep to jobs, and from a job to the command line that runs it.

Every job is a subprocess of a real CLI (``python -m evaluation.eval``,
``python -m evaluation.eval_agent``, ``python -m tuner.cli tune``): vLLM does
not give memory back within a process, a killed job cannot take the sweep with
it, and a Ray worker runs exactly the command the sequential sweep would.

Each evaluation job gets its own folder ``<root>/<job id>/``, given to the eval
CLI as ``--results_dir``; the CLI names the run folder inside it as usual
(``<round>_<model>_<dataset>_<count>_<MMDD>``), so the one folder in there that
holds a ``run.json`` is the job's run, and a later attempt passes it to
``--resume``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from tuner.sweep.manifest import Job
from tuner.sweep.spec import ModeSpec, SweepSpec

# eval-file key -> eval CLI flag (the rest keep their names)
_EVAL_FLAGS = {"backend": "inference_backend"}


def slug(text: str) -> str:
    """A path-safe job id part: ``Qwen/Qwen2.5-Math-1.5B`` -> ``Qwen2.5-Math-1.5B``."""
    last = text.rstrip("/").rsplit("/", 1)[-1].replace("synthetic:", "synthetic-")
    return re.sub(r"[^A-Za-z0-9._-]+", "-", last).strip("-") or "model"


def tune_job(model: str) -> Job:
    return Job(id=f"tune__{slug(model)}", kind="tune", model=model)


def eval_jobs(spec: SweepSpec) -> list[Job]:
    """The grid in a stable order: model, then dataset, then mode."""
    jobs = []
    for model in spec.models:
        for data in spec.datasets:
            part = f"{data.name}-{data.count or 'all'}"
            part += f"-from{data.start}" if data.start else ""
            for mode in spec.modes:
                jobs.append(Job(id=f"{slug(model.id)}__{part}__{mode.label}", kind="eval",
                                model=model.id, dataset=data.name, count=data.count,
                                start=data.start, mode=mode.label))  # fmt: skip
    return jobs


def find_run_dir(job_dir: Path) -> Path | None:
    """The run folder an earlier attempt left in ``job_dir``, if any."""
    runs = sorted(p.parent for p in job_dir.glob("*/run.json"))
    return runs[-1] if runs else None


def eval_command(spec: SweepSpec, job: Job, job_dir: Path, profile: Path | None) -> list[str]:
    """The eval CLI invocation for ``job`` (with ``--resume`` when a run folder exists)."""
    mode = next(m for m in spec.modes if m.label == job.mode)
    module = "evaluation.eval_agent" if mode.is_agent else "evaluation.eval"
    command = [sys.executable, "-m", module, "--model", job.model, "--dataset", str(job.dataset),
               "--count", str(job.count), "--start", str(job.start), "--round", spec.name,
               "--results_dir", str(job_dir)]  # fmt: skip
    if mode.is_agent:
        command += ["--agent", mode.name]
    settings = dict(spec.eval) | mode.settings  # the mode's own settings win
    command += _flags(settings)
    if profile is not None:
        command += profile_flags(profile, explicit=settings)
    run_dir = find_run_dir(job_dir)
    if run_dir is not None:
        command += ["--resume", str(run_dir)]
    return command


def _flags(settings: dict[str, Any]) -> list[str]:
    flags: list[str] = []
    for key, value in settings.items():
        flag = "--" + _EVAL_FLAGS.get(key, key)
        if key == "engine_args":
            for name, item in value.items():
                flags += ["--engine_arg", f"{name}={_yaml_value(item)}"]
        elif isinstance(value, bool):
            flags += [flag] if value else []
        else:
            flags += [flag, str(value)]
    return flags


def profile_flags(path: Path, explicit: dict[str, Any]) -> list[str]:
    """Apply a profile: ``--profile PATH`` (so the run records it) and its settings as flags.

    The profile's backend and engine settings are also passed explicitly as
    ``--inference_backend`` and ``--engine_arg`` (the same values, so nothing
    changes where ``--profile`` is honoured): an eval CLI that accepts
    ``--profile`` without applying it (the agent CLI, at the time of writing)
    or predates it still runs with the profile.  Settings the sweep file gives
    explicitly are left out, so they win either way.
    """
    from tuner.profiles import load_profile

    config = load_profile(path).config
    flags = ["--profile", str(path)] if _eval_has_profile_flag() else []
    flags += [] if "backend" in explicit else ["--inference_backend", config.backend]
    engine_args = explicit.get("engine_args") or {}
    skip = set(engine_args) | ({"dtype"} if "dtype" in explicit else set())
    skip |= {"batch_size", "max_num_seqs"} if "batch_size" in explicit else set()
    for name, value in config.settings.items():
        if name not in skip:
            flags += ["--engine_arg", f"{name}={_yaml_value(value)}"]
    return flags


def _eval_has_profile_flag() -> bool:
    import argparse

    from evaluation.eval import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return "--profile" in parser._option_string_actions


def _yaml_value(value: object) -> str:
    """Text the eval CLI's ``--engine_arg`` parser (YAML) reads back as ``value``."""
    import json

    return json.dumps(value) if not isinstance(value, str) else value


def tune_command(spec: SweepSpec, model: str) -> list[str]:
    """``infertune tune`` for ``model`` with the sweep's budget."""
    tune = spec.tune
    dataset = tune.dataset or spec.datasets[0].name
    command = [sys.executable, "-m", "tuner.cli", "tune", "--model", model, "--dataset", dataset]
    for key, value in tune.options.items():
        command += ["--" + key.replace("_", "-"), str(value)]
    if tune.backends:
        command += ["--backends", *tune.backends]
    if spec.eval.get("data_dir"):
        command += ["--data_dir", spec.eval["data_dir"]]
    if spec.profiles_dir is not None:
        command += ["--profiles-dir", str(spec.profiles_dir.resolve())]
    return command


def mode_of(spec: SweepSpec, label: str) -> ModeSpec:
    return next(m for m in spec.modes if m.label == label)
