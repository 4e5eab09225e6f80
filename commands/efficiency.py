"""``infertune efficiency``: how close the tuner gets to an exhaustive grid, with a third
of its trials.

Example::

    infertune efficiency --model synthetic:small --dataset synthetic --json efficiency.json

Measures every configuration of a reduced but real space, runs the tuner on the
same space, and prints the report (JSON) of
:func:`tuner.search.efficiency.measure_efficiency`.  A benchmark: it takes minutes
and asserts nothing about time.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from commands import flags
from commands.flags import option
from commands.tune import duration


def add_arguments(parser: argparse.ArgumentParser) -> None:
    option(parser, "model", default="synthetic:small", help="model (default: synthetic:small)")
    flags.add_dataset(parser, required=False, default="synthetic")
    flags.add_backend(
        parser,
        multiple=True,
        default=["transformers", "vllm"],
        help="backends of the grid (default: transformers vllm)",
        aliases=("--backends",),
    )
    option(
        parser,
        "batch_sizes",
        nargs="+",
        type=int,
        default=[1, 4, 16, 32],
        metavar="N",
        help="batch sizes of the grid (default: 1 4 16 32)",
    )
    flags.add_count(
        parser,
        default=32,
        help="problems in the workload (default: 32)",
        aliases=("--workload-size", "--workload_size"),
    )
    flags.add_max_new_tokens(parser, default=32)
    flags.add_seed(parser, default=0, help="sampler seed (default: 0)")
    option(
        parser,
        "repeats",
        type=int,
        default=3,
        help="interleaved re-measurements of the finalists (default: 3)",
    )
    flags.add_data_dir(parser)
    option(parser, "json", metavar="FILE", help="also write the report here")
    option(
        parser,
        "budget",
        type=duration,
        metavar="DURATION",
        help="judge `tune --budget DURATION` instead: one budgeted tune per --for-count against"
        " the grid, on the predicted wall time of that run (e.g. 5m)",
    )
    option(
        parser,
        "for_count",
        nargs="+",
        type=int,
        default=[50, 1000],
        metavar="N",
        help="with --budget: the run sizes to tune and judge for (default: 50 1000)",
    )
    option(
        parser,
        "canary_size",
        type=int,
        default=4,
        help="with --budget: problems checked for parity (default: 4)",
    )
    option(
        parser,
        "storage_dir",
        metavar="DIR",
        help="with --budget: keep the grid's and the tunes' study journals here",
    )


def run(args: argparse.Namespace) -> int:
    from engines.errors import ConfigError
    from tuner.search.efficiency import measure_efficiency

    for name in ("count", "max_new_tokens", "repeats", "canary_size"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if min(args.for_count) < 1:
        raise ConfigError(f"--for-count must be >= 1, got {min(args.for_count)}")
    # what both benchmarks take: the workload and the space of the grid
    shared = {
        "backends": args.backend,
        "batch_sizes": args.batch_sizes,
        "count": args.count,
        "max_new_tokens": args.max_new_tokens,
        "seed": args.seed,
        "data_dir": args.data_dir,
        "log": lambda text: print(text, file=sys.stderr, flush=True),
    }
    if args.budget is not None:
        from tuner.search.budget_efficiency import measure_budget_efficiency

        report = measure_budget_efficiency(
            args.model,
            args.dataset,
            budget_s=args.budget,
            for_counts=args.for_count,
            canary_size=args.canary_size,
            storage_dir=args.storage_dir,
            **shared,
        )
    else:
        report = measure_efficiency(args.model, args.dataset, repeats=args.repeats, **shared)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        from common.io import write_atomic

        write_atomic(Path(args.json), text + "\n")
    return 0
