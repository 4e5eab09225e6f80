"""``infertune speedup``: measure the speedup table on this machine.

Example::

    infertune speedup --model synthetic:small --dataset gsm8k --count 64 --out results/speedup
    infertune speedup ... --configs baseline transformers-bs16 vllm-seqs32

A thin wrapper around :func:`tuner.api.speedup`: every configuration runs the same
workload (same prompts, greedy decoding, replayed output lengths for synthetic
models) in its own subprocess with a warm-up excluded from timing.  Writes
``speedup.md``, ``speedup.csv``, ``speedup.json`` and ``speedup.png`` into
``--results-dir`` (``--out``) and prints the table.  Exit codes: 0 with the files
written, 1 when the baseline did not finish (no speedup can be computed; the files
are still written), 2 on bad input (before anything runs).
"""

from __future__ import annotations

import argparse
import sys

from commands import flags
from commands.flags import option
from tuner.measurement.speedup import DEFAULT_NAMES, DEFAULT_TIME_LIMIT_S
from tuner.measurement.workload import DEFAULT_MAX_NEW_TOKENS, DEFAULT_SIZE


def add_arguments(parser: argparse.ArgumentParser) -> None:
    flags.add_model(parser)
    flags.add_dataset(parser)
    flags.add_count(parser, default=DEFAULT_SIZE, help=f"problems (default: {DEFAULT_SIZE})")
    flags.add_max_new_tokens(parser, default=DEFAULT_MAX_NEW_TOKENS)
    flags.add_prompt(parser)
    flags.add_seed(parser, default=0, help="workload sampling seed (default: 0)")
    option(
        parser,
        "configs",
        nargs="+",
        default=list(DEFAULT_NAMES),
        metavar="NAME",
        help=f"configurations to measure (default: all of {', '.join(DEFAULT_NAMES)})",
    )
    flags.add_results_dir(
        parser,
        default=None,
        help="output folder (default: results/speedup/<model-slug>-<hardware-id>)",
    )
    option(
        parser,
        "time_limit",
        type=float,
        default=DEFAULT_TIME_LIMIT_S,
        help=f"seconds per configuration, load included (default: {DEFAULT_TIME_LIMIT_S:g})",
    )
    flags.add_data_dir(parser)
    flags.add_profiles_dir(parser)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from tuner.api import speedup
    from tuner.reports.speedup import rich_table

    console = Console(stderr=True)
    report = speedup(
        args.model,
        args.dataset,
        count=args.count,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
        configs=args.configs,
        time_limit=args.time_limit,
        data_dir=args.data_dir,
        profiles_dir=args.profiles_dir,
        results_dir=args.results_dir,
        **flags.prompt_options(args),
        log=console.print,
    )
    # Ten columns do not fit the 80 a console assumes when piped into a log.
    Console(width=None if sys.stdout.isatty() else 160).print(rich_table(report))
    for note in report.notes:
        console.print(f"note: {note}", markup=False)
    console.print(f"wrote {', '.join(str(p) for p in report.files)}", markup=False)
    return 0 if report.rows[0].is_ok else 1
