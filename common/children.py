"""Child processes that do not outlive the process that started them."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that SIGKILLs the child when this process dies, even by SIGKILL (Linux).

    Children started in their own session (so they can be killed as a group) get
    no signal when their parent is killed: a killed sweep left its job writing,
    and a killed tune left its trial holding the CPU or the GPU's memory.
    SIGKILL, not SIGTERM: it also ends a stopped child.  ``None`` elsewhere.
    """
    if not sys.platform.startswith("linux"):
        return None
    parent = os.getpid()
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the line above
            os._exit(1)

    return arm
