"""Child processes that must not outlive the process that started them."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: signal.Signals = signal.SIGTERM) -> Callable[[], None] | None:
    """A `preexec_fn` that has the kernel send `sig` to the child when this process dies.

    Linux only (prctl PR_SET_PDEATHSIG); None elsewhere, where the child has to notice on its
    own (an agent watches the pid in PWEZA_PARENT_PID). The signal follows the death of the *thread* that forked, so
    call this from the thread that lives as long as the process (the event loop's).
    """
    if not sys.platform.startswith("linux"):
        return None
    # Resolved here, in the parent: after fork the child should call, not load, anything.
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def in_child() -> None:
        prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl: nobody would signal us
            os._exit(1)

    return in_child
