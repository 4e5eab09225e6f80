"""``infertune sweep SWEEP.yaml``: tune, then evaluate a whole grid, resumably.

Example::

    infertune sweep examples/sweep-offline.yaml            # one job after another
    infertune sweep examples/sweep-qwen-math.yaml --ray    # fan out over a local Ray cluster
    infertune sweep sweep.yaml --ray ray://head:10001      # ... or an existing one
    infertune sweep tuned.yaml --baseline results/sweep-batch1   # answers vs an untuned run

The whole file is checked before anything runs.  Running the same command again
skips finished jobs and resumes interrupted ones; exit code 0 when every job is
done, 1 when some failed (rerun to retry them), 2 for a bad sweep file.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from commands import flags
from commands.flags import option


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sweep_file", metavar="SWEEP", help="sweep file (.yaml, .yml or .toml)")
    flags.add_results_dir(
        parser,
        default=None,
        help="results root: jobs, manifest, summary (default: the file's 'results')",
        aliases=("--results",),
    )
    option(
        parser,
        "ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="run jobs as Ray tasks; no ADDRESS starts a local cluster",
    )
    option(
        parser,
        "workers",
        type=int,
        metavar="N",
        help="local Ray cluster: concurrent jobs on CPU (default: the CPU count)",
    )
    option(parser, "check", action="store_true", help="only check the sweep file and list its jobs")
    option(
        parser,
        "baseline",
        metavar="ROOT",
        help="results root of the same grid run without profiles (e.g. batch size 1): the"
        " summary compares each job's answers with it (agreement, flips, McNemar p)",
    )


def run(args: argparse.Namespace) -> int:
    """Check, run what is left, summarise; 0 when every job is done, else 1."""
    from rich.console import Console

    from engines.errors import ConfigError
    from tuner.sweep.runner import job_context, run_sweep, sequential
    from tuner.sweep.spec import load_spec
    from tuner.sweep.summary import baseline_jobs, build_rows, rich_table, write_summary

    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {args.workers}")
    spec = load_spec(args.sweep_file, args.results_dir)
    baseline = Path(args.baseline).resolve() if args.baseline else None
    if baseline is not None:
        baseline_jobs(baseline)  # a wrong path fails now, not after the whole grid
    console = Console()
    if args.check:
        return _check(spec, console)
    executor: Any = sequential
    if args.ray:
        from tuner.sweep.ray_backend import RayExecutor

        address = None if args.ray == "local" else args.ray
        executor = RayExecutor(address, args.workers, job_context(spec).env)
        console.print(f"sweep {spec.name}: running jobs on {executor.description}")
    progress = _Progress(console)
    try:
        entries = run_sweep(spec, executor, progress.on_done, progress.on_phase)
    finally:
        if args.ray:
            executor.close()
    root = spec.results_root.resolve()
    rows = build_rows(root, entries, baseline)
    console.print(rich_table(rows, f"sweep {spec.name}"))
    for path in write_summary(root, rows):
        console.print(f"wrote {path}")
    failed = [row for row in rows if row.state != "done"]
    if failed:
        console.print(
            f"[red]{len(failed)} of {len(rows)} jobs failed[/red]; rerun the same"
            " command to retry them (finished jobs are kept)"
        )
        return 1
    console.print(f"all {len(rows)} jobs done")
    return 0


def _check(spec: Any, console: Any) -> int:
    from tuner.sweep.jobs import eval_jobs

    jobs = eval_jobs(spec)
    console.print(f"{spec.path}: OK, {len(jobs)} jobs")
    for job in jobs:
        console.print(f"  {job.id}")
    return 0


class _Progress:
    """One line per phase and per finished job."""

    def __init__(self, console: Any) -> None:
        self.console = console
        self.num_finished = 0
        self.num_jobs = 0

    def on_phase(self, name: str, num_to_run: int, num_total: int) -> None:
        self.num_finished, self.num_jobs = 0, num_to_run
        if name == "tune":
            self.console.print(f"tuning {num_to_run} of {num_total} models (no valid profile)")
        elif num_to_run == 0:
            self.console.print(f"all {num_total} jobs already done; nothing to run")
        else:
            done = num_total - num_to_run
            self.console.print(f"running {num_to_run} of {num_total} jobs ({done} already done)")

    def on_done(self, entry: dict[str, Any]) -> None:
        from rich.markup import escape

        self.num_finished += 1
        state = "[green]done[/green]" if entry["state"] == "done" else "[red]failed[/red]"
        line = f"[{self.num_finished}/{self.num_jobs}] {state} {escape(entry['id'])}"
        line += f" ({entry['wall_s']:.1f} s)"
        if entry.get("error"):
            line += f": {escape(entry['error'])}"
        self.console.print(line, highlight=False)
