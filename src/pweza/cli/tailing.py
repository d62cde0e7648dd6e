"""`pweza logs`: a task's or an agent's log, through the manager."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    pass
