"""The engines' errors, on top of the project's root (:mod:`common.errors`).

``InfertuneError`` and ``ConfigError`` are re-exported here, the name the rest of
the code has always imported them by; ``evaluation`` and ``tuner`` subclass them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from common.errors import ConfigError, InfertuneError

__all__ = [
    "BackendUnavailableError",
    "ConfigError",
    "EngineOutOfMemoryError",
    "InfertuneError",
    "ModelLoadError",
    "is_out_of_memory",
    "run_reporting_errors",
]


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
