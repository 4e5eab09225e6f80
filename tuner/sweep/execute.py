"""Run one job as a subprocess and record its outcome in the manifest.

This is the only code that runs on a worker: the sequential sweep calls
:func:`execute` in a loop, the Ray backend calls it inside a task.  Everything
it needs travels in a picklable :class:`JobContext`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.children import die_with_parent
from common.stopping import Stopped
from tuner.sweep.jobs import eval_command, find_run_dir, tune_commands
from tuner.sweep.manifest import Job, Manifest
from tuner.sweep.spec import SweepSpec

JOB_LOG = "job.log"
_STOP_GRACE_S = 60.0  # for a stopped job to write its reports and close its engine


@dataclass(frozen=True, slots=True, kw_only=True)
class JobContext:
    """What a worker needs to run jobs: the sweep, its results root, and the job environment."""

    spec: SweepSpec
    root: Path
    env: dict[str, str] = field(default_factory=dict)  # added to the worker's environment


def execute(job: Job, context: JobContext, profile: str | None) -> dict[str, Any]:
    """Run ``job`` to its end (``profile``: path of the profile to evaluate with).

    Never raises for a failing job: the failure is recorded in the manifest
    (state ``failed`` with the job's last error line) and returned, so the other
    jobs go on.
    """
    manifest = Manifest(context.root)
    job_dir = context.root / job.id
    manifest.update(job.id, state="running", add_attempt=True, host=socket.gethostname(),
                    error=None, profile=profile)  # fmt: skip
    started = time.perf_counter()
    try:
        job_dir.mkdir(parents=True, exist_ok=True)
        if job.kind == "eval":
            profile_path = Path(profile) if profile else None
            commands = [eval_command(context.spec, job, job_dir, profile_path)]
        else:  # one tune per mode the sweep runs
            commands = tune_commands(context.spec, job.model)
        returncode = 0
        for command in commands:  # a failed tune leaves the rest untried: the job failed
            returncode = returncode or _run(command, job_dir / JOB_LOG, context.env)
        error = None if returncode == 0 else _last_error(job_dir / JOB_LOG, returncode)
    except Stopped:  # the sweep was told to stop: the job is resumed by its next run
        manifest.update(job.id, state="pending", error="stopped; resumed by the next run",
                        **_outcome(job, job_dir, context, started))  # fmt: skip
        raise
    except Exception as exc:  # failures are data: a broken job must not stop the sweep
        error = f"{type(exc).__name__}: {exc}".splitlines()[0]
    changes = _outcome(job, job_dir, context, started)
    if job.kind == "eval" and error is None and changes["folder"] is None:
        error = f"the eval CLI left no run folder in {job_dir}"
    return manifest.update(job.id, state="failed" if error else "done", error=error, **changes)


def _outcome(job: Job, job_dir: Path, context: JobContext, started: float) -> dict[str, Any]:
    """The manifest changes of an attempt however it ended: its wall time and run folder."""
    changes: dict[str, Any] = {"add_wall_s": time.perf_counter() - started}
    if job.kind == "eval":
        run_dir = find_run_dir(job_dir) if job_dir.is_dir() else None
        changes["folder"] = str(run_dir.relative_to(context.root)) if run_dir else None
    return changes


def _run(command: list[str], log_path: Path, extra_env: dict[str, str]) -> int:
    env = os.environ | extra_env
    with log_path.open("ab") as log:
        stamp = dt.datetime.now().isoformat(timespec="seconds")
        log.write(f"\n=== {stamp} {' '.join(command)}\n".encode())
        log.flush()
        # stdin closed: a job must never wait for input the sweep cannot give.  Its own
        # process group keeps a terminal's Ctrl-C for the sweep, which stops the job itself.
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                   preexec_fn=die_with_parent())  # fmt: skip
        try:
            return process.wait()
        except BaseException:  # the sweep is stopping: the job stops too, saving its reports
            _stop(process)
            raise


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the job's group (the eval command then writes its reports), SIGKILL if stuck."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=_STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _last_error(log_path: Path, returncode: int) -> str:
    """The job's own one-line error if it printed one, else how it ended."""
    lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    attempt = lines[max(i for i, line in enumerate(lines) if line.startswith("=== ")) :]
    errors = [line.strip() for line in attempt if "error" in line.lower() and line.strip()]
    ended = f"killed by signal {-returncode}" if returncode < 0 else f"exit code {returncode}"
    return (errors[-1][:300] + f" ({ended})") if errors else f"{ended}; see {log_path}"
