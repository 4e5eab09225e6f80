"""The ``infertune`` command: a table of subcommands, each a module of :mod:`commands`.

Every module in :data:`COMMANDS` exposes ``add_arguments(parser)`` and
``run(args) -> int``.  Modules keep heavy imports (torch, vLLM, Optuna) inside
``run`` so that ``infertune --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from importlib import metadata
from typing import Any, NoReturn

from commands.logs import add_verbosity, setup_logging
from engines.errors import run_reporting_errors

# subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "eval": ("commands.eval", "evaluate a model on a dataset (standard mode or an agent)"),
    "profiles": ("commands.profiles", "list saved tuning profiles or show one"),
    "bench-gate": ("commands.bench_gate", "fail when benchmark throughput dropped too far"),
    "speedup": ("commands.speedup", "measure the speedup table: batched configs vs batch size 1"),
    "probe": ("commands.probe", "measure memory per sequence; confirm the largest batch"),
    "tune": ("commands.tune", "search engine configurations with Optuna and save a profile"),
    "sweep": ("commands.sweep", "tune, then evaluate a models x datasets x modes grid"),
    "efficiency": ("commands.efficiency", "benchmark the tuner against an exhaustive grid"),
}


class Parser(argparse.ArgumentParser):
    """argparse, with its usage errors as one line and exit code 2 like every other error.

    Flags must be spelled out: with argparse's prefix matching, ``probe --batch-size 4``
    silently set ``--batch-sizes`` while ``--batch-size`` means the run's batch in ``eval``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)  # subcommand parsers are built through here too
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def version() -> str:
    try:
        return metadata.version("infertune")
    except metadata.PackageNotFoundError:  # a source tree that was never installed
        return "unknown (not installed)"


def _global_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    add_verbosity(parser)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="infertune", description=__doc__.splitlines()[0])
    _global_flags(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.set_defaults(_module=module)
        add_verbosity(command, is_subcommand=True)  # -v/-q after the command name too
        importlib.import_module(module).add_arguments(command)
    return parser


def run_command(module_name: str, run_args: argparse.Namespace, prog: str) -> int:
    """Run one command, turning infertune errors into one line and an exit code."""
    setup_logging(getattr(run_args, "verbose", 0), getattr(run_args, "quiet", 0))
    return run_reporting_errors(lambda: importlib.import_module(module_name).run(run_args), prog)


def run_standalone(name: str, argv: Sequence[str] | None, *, prog: str) -> int:
    """Command ``name`` as a program of its own (``python -m evaluation.eval``)."""
    module, help_text = COMMANDS[name]
    parser = Parser(prog=prog, description=help_text)
    _global_flags(parser)
    importlib.import_module(module).add_arguments(parser)
    args = _parse(parser, argv)
    return args if isinstance(args, int) else run_command(module, args, parser.prog)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(build_parser(), argv)
    return (
        args
        if isinstance(args, int)
        else run_command(args._module, args, f"infertune {args.command}")
    )


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace | int:
    """The parsed flags, or the exit code of a usage error, ``--help`` or ``--version``
    (returned rather than raised, like every other error of a command)."""
    try:
        return parser.parse_args(argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 2


if __name__ == "__main__":
    sys.exit(main())
