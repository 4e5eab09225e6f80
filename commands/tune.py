"""``infertune tune``: search engine configurations with Optuna and save a profile.

Example::

    infertune tune --model synthetic:small --dataset gsm8k --budget 5m
    infertune tune ... --storage journal:/shared/tune.log --study-name s1   # one more worker

A thin wrapper around :func:`tuner.search.tuning.run_tuning`: every input check happens
before the first trial.  ``--budget`` bounds the whole tune's wall clock (default 10m);
a live line shows trials done, the best so far and the time left (on a terminal; a
plain line per trial otherwise).  Exit codes: 0 with a profile written, 1 when no
trial was feasible, 2 on bad input.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from typing import TYPE_CHECKING

from rich.markup import escape

from commands import flags
from commands.flags import option
from engines.errors import ConfigError
from tuner.answer_parity import DEFAULT_THRESHOLD
from tuner.measurement.workload import DEFAULT_CANARY, DEFAULT_MAX_NEW_TOKENS, DEFAULT_SIZE
from tuner.search.budget import DEFAULT_BUDGET_S, format_duration, parse_duration

if TYPE_CHECKING:
    from rich.console import Console

    from tuner.search.budget import TuneProgress
    from tuner.search.tuning import TuneOutcome


def duration(text: str) -> float:
    """argparse type of ``--budget``: its errors are argparse's one-line usage errors."""
    try:
        return parse_duration(text)
    except ConfigError as error:
        raise argparse.ArgumentTypeError(str(error).removeprefix(f"--budget {text!r}: ")) from None


def seconds(text: str) -> float:
    """argparse type of the hidden ``--timeout``: plain seconds, > 0."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"want seconds greater than 0, got {text!r}")
    return value


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
    option(
        parser,
        "budget",
        type=duration,
        default=DEFAULT_BUDGET_S,
        metavar="DURATION",
        help="wall clock for the whole tune, e.g. 90s, 10m, 1h30m or seconds (default:"
        f" {format_duration(DEFAULT_BUDGET_S)}); trials that cannot finish in it are not"
        " started",
    )
    # the older name, in seconds: a later --budget or --timeout wins, as argparse does
    parser.add_argument("--timeout", dest="budget", type=seconds, help=argparse.SUPPRESS)
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
    with _ProgressLine(console) as progress:
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
            budget_s=args.budget,
            seed=args.seed,
            data_dir=args.data_dir,
            profiles_dir=args.profiles_dir,
            storage=args.storage,
            study_name=args.study_name,
            for_count=args.for_count,
            mode=args.mode,
            num_runs=args.num_runs,
            **flags.prompt_options(args),
            progress=progress,
            log=progress.log,
        )
    return _render(outcome)


class _ProgressLine:
    """The live line: a rich status on a terminal, else one plain line after each trial.

    On a terminal the time left counts down between trials: the status renders
    :meth:`__rich__`, which subtracts the time since the last figures came in.
    """

    def __init__(self, console: Console) -> None:
        self.console = console
        self.last: tuple[TuneProgress, float] | None = None
        self.status = console.status(self, refresh_per_second=2) if console.is_terminal else None

    def __enter__(self) -> _ProgressLine:
        if self.status is not None:
            self.status.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.status is not None:
            self.status.stop()

    def __call__(self, progress: TuneProgress) -> None:
        self.last = (progress, time.monotonic())
        if self.status is None and progress.running is None:
            self.console.print(f"tune: {progress.describe()}", markup=False, highlight=False)

    def __rich__(self) -> str:
        if self.last is None:
            return "tune: starting"
        progress, since = self.last
        left = max(0.0, progress.remaining_s - (time.monotonic() - since))
        return escape(f"tune: {dataclasses.replace(progress, remaining_s=left).describe()}")

    def log(self, line: str) -> None:
        self.console.print(line, markup=False, highlight=False)


def _render(outcome: TuneOutcome) -> int:
    """Every trial, then the profile saved (0) or why there is none (1)."""
    from rich.console import Console

    from tuner.reports.tune import trial_table

    out = Console(width=max(Console().width, 140))
    out.print(trial_table(list(outcome.rows), outcome.baseline))
    budget = "no budget" if outcome.budget_s == float("inf") else format_duration(outcome.budget_s)
    out.print(
        f"stopped: {outcome.stop_reason}; used {format_duration(outcome.budget_used_s)}"
        f" of {budget}",
        markup=False,
    )
    best, profile = outcome.best, outcome.profile
    if profile is None or best is None:
        out.print(
            "[red]no feasible trial[/]: every configuration failed or changed answers, or none"
            " fitted in the budget; raise --budget or --n-trials, lower --parity-threshold,"
            " or check the messages above"
        )
        return 1
    from commands.profiles import entries_text, entry_metrics, tuned_for

    # A mode tune writes its entry beside the others: report that entry, not the profile's
    # own (the standard one, from an earlier tune), which this study did not measure.
    speedup = entry_metrics(profile, outcome.mode).speedup
    out.print(
        f"best: trial {best.number} ({best.backend}, batch {best.batch_size}),"
        f" {best.problems_per_s:.3g} problems/s, {speedup:.2f}x the batch-1 reference"
    )

    tuned = tuned_for(profile, outcome.mode)
    out.print(f"tuned for: {tuned}; entries: {entries_text(profile)}", markup=False)
    out.print(f"profile: {outcome.path}")
    for plot in outcome.plots:
        out.print(f"plot: {plot}")
    for note in outcome.notes:
        out.print(f"note: {note}")
    return 0
