"""Child processes that must not outlive the process that started them."""

from __future__ import annotations

import functools
import shutil
import signal
import sys
from collections.abc import Sequence

__all__ = ["dies_with_parent"]


@functools.cache
def _setpriv() -> str | None:
    return shutil.which("setpriv") if sys.platform.startswith("linux") else None


def dies_with_parent(command: Sequence[str], sig: signal.Signals = signal.SIGTERM) -> list[str]:
    """`command`, prefixed so that the kernel sends `sig` to it when this process dies.

    util-linux's `setpriv --pdeathsig` sets PR_SET_PDEATHSIG and then execs the command (the
    setting survives the exec). It is not done with a `preexec_fn` on purpose: that makes
    Python fork instead of vfork and run code in the child, and gRPC's fork handlers then
    abort the child about one start in three while the process's gRPC threads are busy
    (tests/unit/test_child_processes.py). Where there is no setpriv the command is returned
    as is and the child has to notice on its own (an agent watches PWEZA_PARENT_PID).
    The signal follows the death of the *thread* that started the child, so start it from a
    thread that lives as long as the process (the event loop's).
    """
    setpriv = _setpriv()
    if setpriv is None:
        return list(command)
    return [setpriv, f"--pdeathsig={sig.name.removeprefix('SIG')}", "--", *command]
