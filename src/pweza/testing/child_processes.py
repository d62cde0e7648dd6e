"""What the test kits (the control plane, the real node, its add-ons) do for every process
they start: show the end of its log when it fails (pweza.manager.children makes it die with the test)."""

from __future__ import annotations

import pathlib
from typing import Final

__all__ = ["LOG_TAIL_LINES", "log_tail"]

LOG_TAIL_LINES: Final = 40


def log_tail(path: pathlib.Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log, or why it cannot be read."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    return "\n".join(text.splitlines()[-lines:])
