"""What the test kits (the control plane, the real node, its add-ons) do for every process
they start: make it die with the test, and show the end of its log when it fails."""

from __future__ import annotations

import ctypes
import pathlib
import signal
import sys
from collections.abc import Callable
from typing import Final

__all__ = ["LOG_TAIL_LINES", "log_tail", "parent_death_signal"]

LOG_TAIL_LINES: Final = 40
_PR_SET_PDEATHSIG: Final = 1


def parent_death_signal() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the kernel SIGKILL the child when its parent dies, or None
    where prctl() is not available (not Linux)."""
    # If the test process dies without running __exit__ (SIGKILL, a CI timeout), the
    # kernel kills the components too instead of leaving etcd and the apiserver behind.
    # Caveat: the signal fires when the *thread* that started them exits.
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    return preexec


def log_tail(path: pathlib.Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log, or why it cannot be read."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    return "\n".join(text.splitlines()[-lines:])
