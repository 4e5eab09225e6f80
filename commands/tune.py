"""``infertune tune``: search engine configurations with Optuna and save a profile.

Example::

    infertune tune --model synthetic:small --dataset gsm8k --n-trials 20
    infertune tune ... --storage journal:/shared/tune.log --study-name s1   # one more worker

A thin wrapper around :func:`tuner.search.tuning.run_tuning`: every input check happens
before the first trial.  Exit codes: 0 with a profile written, 1 when no trial was
feasible, 2 on bad input.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from commands import flags
from commands.flags import option
from tuner.answer_parity import DEFAULT_THRESHOLD
from tuner.measurement.workload import DEFAULT_CANARY, DEFAULT_MAX_NEW_TOKENS, DEFAULT_SIZE

if TYPE_CHECKING:
    from tuner.search.tuning import TuneOutcome


def add_arguments(parser: argparse.ArgumentParser) -> None:
    flags.add_model(parser)
    flags.add_dataset(parser)
    flags.add_backend(
        parser,
        multiple=True,
        help="backends to search (default: every installed one)",
        aliases=("--backends",),
    )
    option(parser, "n_trials", type=int, default=20, help="total trials of the study (default: 20)")
    option(parser, "timeout", type=float, help="stop starting trials after this many seconds")
    option(
        parser,
        "storage",
        help="Optuna storage URL or journal:PATH (default: SQLite next to profiles)",
    )
    option(
        parser,
        "study_name",
        help="study to create or join (default: <model-slug>-<hardware-id>-<workload key>)",
    )
    flags.add_count(
        parser,
        default=DEFAULT_SIZE,
        help=f"problems in the workload (default: {DEFAULT_SIZE})",
        aliases=("--workload-size", "--workload_size"),
    )
    option(
        parser, "canary_size", type=int, default=DEFAULT_CANARY, help="problems checked for parity"
    )
    option(
        parser,
        "parity_threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        help="least share of canaries that agree with the batch-1 reference: same extracted"
        " answers for a model that answers (which must also not be significantly less"
        " accurate, McNemar), same tokens for a random-weight one"
        f" (default: {DEFAULT_THRESHOLD})",
    )
    flags.add_max_new_tokens(parser, default=DEFAULT_MAX_NEW_TOKENS)
    flags.add_prompt(parser)
    option(parser, "max_batch_size", type=int, help="largest batch size to try (e.g. the probe's)")
    option(
        parser, "trial_timeout", type=float, default=600.0, help="seconds per trial (default: 600)"
    )
    flags.add_seed(parser, default=None, help="sampler seed (reproducible suggestions)")
    flags.add_data_dir(parser)
    flags.add_profiles_dir(parser)
    _add_run_arguments(parser)


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The run tuned for: the study minimises its predicted wall time."""
    option(
        parser,
        "for_count",
        type=int,
        metavar="N",
        help="problems of the run to tune for (default: the dataset's size): minimised is"
        " load + warm-up + N / throughput",
    )
    option(parser, "mode", default="standard", help="run mode to tune for (default: standard)")
    option(parser, "num_runs", type=int, help="majority_vote: samples per problem, k (default: 5)")


def run(args: argparse.Namespace) -> int:
    """Tune; returns 0 with a profile written, 1 when no trial was feasible."""
    from rich.console import Console

    from tuner.search.tuning import run_tuning

    console = Console(stderr=True)
    outcome = run_tuning(
        args.model,
        args.dataset,
        n_trials=args.n_trials,
        backends=args.backend,
        count=args.count,
        canary_size=args.canary_size,
        parity_threshold=args.parity_threshold,
        max_new_tokens=args.max_new_tokens,
        max_batch_size=args.max_batch_size,
        trial_timeout=args.trial_timeout,
        timeout=args.timeout,
        seed=args.seed,
        data_dir=args.data_dir,
        profiles_dir=args.profiles_dir,
        storage=args.storage,
        study_name=args.study_name,
        for_count=args.for_count,
        mode=args.mode,
        num_runs=args.num_runs,
        **flags.prompt_options(args),
        log=console.print,
    )
    return _render(outcome)


def _render(outcome: TuneOutcome) -> int:
    """Every trial, then the profile saved (0) or why there is none (1)."""
    from rich.console import Console

    from tuner.reports.tune import trial_table

    out = Console(width=max(Console().width, 140))
    out.print(trial_table(list(outcome.rows), outcome.baseline))
    best, profile = outcome.best, outcome.profile
    if profile is None or best is None:
        out.print(
            "[red]no feasible trial[/]: every configuration failed or changed answers;"
            " raise --n-trials, lower --parity-threshold, or check the messages above"
        )
        return 1
    out.print(
        f"best: trial {best.number} ({best.backend}, batch {best.batch_size}),"
        f" {best.problems_per_s:.3g} problems/s, {profile.metrics.speedup:.2f}x the"
        " batch-1 reference"
    )
    out.print(f"profile: {outcome.path}")
    for plot in outcome.plots:
        out.print(f"plot: {plot}")
    for note in outcome.notes:
        out.print(f"note: {note}")
    return 0
