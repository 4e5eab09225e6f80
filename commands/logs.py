"""Verbosity for every command: ``-v`` shows more, ``-q`` less, library warnings included.

Libraries report through :mod:`logging` and :mod:`warnings`; routing warnings
into logging (``logging.captureWarnings``) puts both under the one ``-v``/``-q``
switch instead of each library printing as it pleases.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

# loggers of libraries that talk a lot at INFO; they follow -v/-q but never go below WARNING
# unless asked with -vv
_CHATTY = ("transformers", "vllm", "optuna", "torch", "urllib3", "filelock", "ray")


def add_verbosity(parser: argparse.ArgumentParser, *, is_subcommand: bool = False) -> None:
    """``-v``/``--verbose`` and ``-q``/``--quiet``, both repeatable.

    A subcommand's copy has no default, which would overwrite what was given
    before the command name (``infertune -v eval``).
    """
    default = argparse.SUPPRESS if is_subcommand else 0
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=default,
        help="say more (-vv: library debug output too)",
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="count",
        default=default,
        help="say less (-q: errors only, library warnings hidden)",
    )


_handler: logging.Handler | None = None


def setup_logging(verbose: int = 0, quiet: int = 0) -> int:
    """Configure the root logger for a command run; returns the level chosen."""
    global _handler
    level = max(logging.DEBUG, min(logging.CRITICAL, logging.WARNING + 10 * (quiet - verbose)))
    root = logging.getLogger()
    if _handler is not None:  # a second command in one process (tests) replaces, not doubles
        root.removeHandler(_handler)
    _handler = logging.StreamHandler(sys.stderr)
    _handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(_handler)
    root.setLevel(level)
    # off, then on: captureWarnings(True) does nothing while it believes it is on, even
    # after something (a test's catch_warnings) put the original showwarning back
    logging.captureWarnings(False)
    logging.captureWarnings(True)
    library_level = level if verbose > 1 else max(level, logging.WARNING)
    for name in _CHATTY:
        logging.getLogger(name).setLevel(library_level)
    # vLLM configures its own logger when it is imported, which is after this, at INFO
    # (twenty lines of engine config per eval); it reads its level from the environment,
    # which the trial and sweep subprocesses inherit too (-vv shows its INFO lines).
    os.environ["VLLM_LOGGING_LEVEL"] = logging.getLevelName(library_level)
    return level
