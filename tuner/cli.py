"""The ``infertune`` command: a table of subcommands, each a module.

Every module in :data:`COMMANDS` exposes ``add_arguments(parser)`` and
``run(args) -> int``.  Modules keep heavy imports (torch, vLLM, Optuna) inside
``run`` so that ``infertune --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from engines.errors import run_reporting_errors

# subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "eval": ("evaluation.eval", "evaluate a model on a dataset (standard mode or an agent)"),
    "profiles": ("tuner.profiles_cli", "list saved tuning profiles or show one"),
    "bench-gate": ("tuner.gate_cli", "fail when benchmark throughput dropped beyond a threshold"),
    "speedup": ("tuner.speedup_cli", "measure the speedup table: batched configs vs batch size 1"),
    "probe": ("tuner.probe_cli", "measure memory per sequence; confirm the largest batch"),
    "tune": ("tuner.tune_cli", "search engine configurations with Optuna and save a profile"),
    "sweep": ("tuner.sweep_cli", "tune, then evaluate a models x datasets x modes grid"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="infertune", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.set_defaults(_module=module)
        importlib.import_module(module).add_arguments(command)
    return parser


def run_command(module_name: str, run_args: argparse.Namespace, prog: str) -> int:
    """Run one command, turning infertune errors into one line and an exit code."""
    return run_reporting_errors(lambda: importlib.import_module(module_name).run(run_args), prog)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(args._module, args, f"infertune {args.command}")


if __name__ == "__main__":
    sys.exit(main())
