"""SIGTERM and SIGINT as one exception, so a run stops where Python code can clean up.

A run that is told to stop (Ctrl-C, ``kill``, a scheduler's SIGTERM, a sweep
stopping its child) should still leave its reports matching its records and
say how to continue.  :func:`stop_on_signals` turns both signals into
:class:`Stopped`, a ``KeyboardInterrupt``: code that handles Ctrl-C already
handles it, and the ``except Exception`` that turns a failed batch into data
never swallows it.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Stopped(KeyboardInterrupt):
    """The process was asked to stop by ``signum``."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """The shell's convention: 128 + the signal (130 for SIGINT, 143 for SIGTERM)."""
        return 128 + self.signum


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, SIGTERM and SIGINT raise :class:`Stopped` (once) in the main thread.

    After the first signal the others are ignored, so the cleanup that the
    exception triggers (reports, closing the engine) is not cut short by an
    impatient second Ctrl-C.  Outside the main thread (a notebook's worker, a
    Ray task) Python cannot install handlers, and the block runs unchanged.
    The previous handlers are restored when the block ends.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_signal(signum: int, frame: FrameType | None) -> None:
        for other in watched:
            signal.signal(other, signal.SIG_IGN)
        raise Stopped(signum)

    # a signal ignored on purpose (SIGINT of a shell's background job) stays ignored
    watched = [s for s in STOP_SIGNALS if signal.getsignal(s) is not signal.SIG_IGN]
    previous = {signum: signal.signal(signum, on_signal) for signum in watched}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
