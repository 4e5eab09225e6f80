"""From a checked sweep to jobs, and from a job to the command line that runs it.

Every job is a subprocess of a real command (``python -m evaluation.eval``, which
runs agents too, and ``python -m commands tune``): vLLM does
not give memory back within a process, a killed job cannot take the sweep with
it, and a Ray worker runs exactly the command the sequential sweep would.

Each evaluation job gets its own folder ``<root>/<job id>/``, given to the eval
command as ``--results-dir``; the CLI names the run folder inside it as usual
(``<round>_<model>_<dataset>_<count>_<MMDD>``), so the one folder in there that
holds a ``run.json`` is the job's run, and a later attempt passes it to
``--resume``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from common.naming import model_slug
from tuner.sweep.manifest import Job
from tuner.sweep.spec import DatasetSpec, SweepSpec


def tune_job(model: str) -> Job:
    return Job(id=f"tune__{model_slug(model)}", kind="tune", model=model)


def eval_jobs(spec: SweepSpec) -> list[Job]:
    """The grid in a stable order: model, then dataset, then mode."""
    jobs = []
    for model in spec.models:
        for data in spec.datasets:
            part = f"{data.name}-{data.count or 'all'}"
            part += f"-from{data.start}" if data.start else ""
            for mode in spec.modes:
                jobs.append(Job(id=f"{model_slug(model.id)}__{part}__{mode.label}", kind="eval",
                                model=model.id, dataset=data.name, count=data.count,
                                start=data.start, mode=mode.label))  # fmt: skip
    return jobs


def find_run_dir(job_dir: Path) -> Path | None:
    """The run folder an earlier attempt left in ``job_dir``, if any."""
    runs = sorted(p.parent for p in job_dir.glob("*/run.json"))
    return runs[-1] if runs else None


def eval_command(spec: SweepSpec, job: Job, job_dir: Path, profile: Path | None) -> list[str]:
    """The eval command for ``job`` (with ``--resume`` when a run folder exists).

    A profile is passed as ``--profile PATH`` alone: the eval command applies its
    backend and settings, and the sweep file's explicit settings win as any flag does.
    """
    mode = next(m for m in spec.modes if m.label == job.mode)
    command = [sys.executable, "-m", "evaluation.eval", "--model", job.model,
               "--dataset", str(job.dataset), "--count", str(job.count), "--start", str(job.start),
               "--round", spec.name, "--results-dir", str(job_dir)]  # fmt: skip
    if mode.is_agent:
        command += ["--agent", mode.name]
    command += _flags(dict(spec.eval) | mode.settings)  # the mode's own settings win
    if profile is not None:
        command += ["--profile", str(profile)]
    run_dir = find_run_dir(job_dir)
    if run_dir is not None:
        command += ["--resume", str(run_dir)]
    return command


_CHAT_TEMPLATE = {True: "on", False: "off"}


def _flags(settings: dict[str, Any]) -> list[str]:
    flags: list[str] = []
    for key, value in settings.items():
        flag = "--" + key.replace("_", "-")
        if key == "engine_args":
            for name, item in value.items():
                flags += ["--engine-arg", f"{name}={_yaml_value(item)}"]
        elif key == "chat_template":
            flags += [f"{flag}={_CHAT_TEMPLATE.get(value, value)}"]  # true/false/"auto"
        elif key in ("stop", "system_prompt"):
            # FLAG=VALUE: a value that starts with "-" is not read as another flag
            flags += [f"{flag}={text}" for text in ([value] if isinstance(value, str) else value)]
        elif isinstance(value, bool):
            flags += [flag] if value else []
        else:
            flags += [flag, str(value)]
    return flags


def _yaml_value(value: object) -> str:
    """Text the eval CLI's ``--engine_arg`` parser (YAML) reads back as ``value``."""
    import json

    return json.dumps(value) if not isinstance(value, str) else value


_TUNE_INHERITS = ("chat_template", "system_prompt", "stop", "max_new_tokens")


def tune_commands(spec: SweepSpec, model: str) -> list[list[str]]:
    """The tune step of ``model``: one ``infertune tune`` per mode the sweep runs, each for
    the sweep's largest count, so the profile holds an entry per mode.

    Modes with one sequence per problem (standard, the stepwise agents) share the
    standard entry; each majority_vote k gets its own, after it.
    """
    from evaluation.request import samples_per_problem

    largest = max(_run_count(spec, data) for data in spec.datasets)
    runs: dict[tuple[str, int | None], None] = {("standard", None): None}
    for mode in spec.modes:
        num_runs = mode.settings.get("num_runs")
        if samples_per_problem(mode.name, num_runs) > 1:
            runs[(mode.name, num_runs)] = None
    return [tune_command(spec, model, mode=name, num_runs=k, for_count=largest)
            for name, k in runs]  # fmt: skip


def _run_count(spec: SweepSpec, data: DatasetSpec) -> int:
    """Problems an evaluation of ``data`` runs: its count, or the dataset from its start."""
    if data.count:
        return data.count
    from evaluation.datasets import load_problems

    return len(load_problems(data.name, data_dir=spec.eval.get("data_dir"), start=data.start))


def tune_command(
    spec: SweepSpec,
    model: str,
    *,
    mode: str = "standard",
    num_runs: int | None = None,
    for_count: int | None = None,
) -> list[str]:
    """``infertune tune`` for ``model`` with the sweep's budget, for a run of ``for_count``
    problems in ``mode`` (``num_runs``: majority_vote's k)."""
    tune = spec.tune
    dataset = tune.dataset or spec.datasets[0].name
    command = [sys.executable, "-m", "commands", "tune", "--model", model, "--dataset", dataset]
    command += ["--mode", mode] + (["--num-runs", str(num_runs)] if num_runs else [])
    command += ["--for-count", str(for_count)] if for_count else []
    # the evaluations' prompt settings, so the profile is measured on what they send
    inherited = {k: v for k, v in spec.eval.items() if k in _TUNE_INHERITS}
    command += _flags(inherited | tune.options)
    if tune.backends:
        command += ["--backend", *tune.backends]
    if spec.eval.get("data_dir"):
        command += ["--data-dir", spec.eval["data_dir"]]
    if spec.profiles_dir is not None:
        command += ["--profiles-dir", str(spec.profiles_dir.resolve())]
    return command
