"""The project's exception tree.

Every error a user can cause or meet derives from :class:`InfertuneError`, so the
command-line front ends map any of them to one line on stderr and exit code 2
(bad input) without a traceback.  The messages are written to be shown as they
are: they name what was wrong and how to fix it, on one line.

Engines sit at the bottom of the dependency graph, so the root lives here and
``evaluation`` and ``tuner`` subclass it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable


class InfertuneError(Exception):
    """Base of every error infertune raises on purpose."""

    exit_code: int = 2


class ConfigError(InfertuneError, ValueError):
    """A setting or an argument is invalid; the message names the field."""


class BackendUnavailableError(InfertuneError):
    """An optional backend (vLLM, Ray, ...) is not installed."""


class ModelLoadError(InfertuneError):
    """A model id or path cannot be resolved or loaded."""


class EngineOutOfMemoryError(InfertuneError):
    """Generation ran out of device memory even for a single request."""

    exit_code = 3


# torch.OutOfMemoryError ("CUDA out of memory ...") is a RuntimeError, and on CPU
# torch's allocator raises a plain RuntimeError: both are told by their text.
_OOM_TEXT = ("out of memory", "can't allocate memory", "cannot allocate memory")


def is_out_of_memory(error: BaseException | None) -> bool:
    """Whether ``error`` (or an error it was raised from) says memory ran out, on any device."""
    # An error raised by torch means torch is imported; this module stays light without it.
    torch = sys.modules.get("torch")
    types = (MemoryError, EngineOutOfMemoryError, *([torch.OutOfMemoryError] if torch else []))
    while error is not None:
        if isinstance(error, types):
            return True
        if isinstance(error, RuntimeError) and any(t in str(error) for t in _OOM_TEXT):
            return True
        error = error.__cause__
    return False


def run_reporting_errors(command: Callable[[], int], prog: str) -> int:
    """Run a command-line ``command``; an infertune error becomes one line and its exit code."""
    try:
        return command()
    except InfertuneError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
