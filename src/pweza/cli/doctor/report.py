"""The report: a table (or JSON) of the checks, and the exit code."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from rich.table import Table

from pweza.cli.doctor.results import Check, Status
from pweza.cli.output import console, emit

__all__ = ["print_report"]


_STYLE: Final = {Status.OK: "green", Status.WARN: "yellow", Status.FAIL: "bold red", Status.SKIP: "dim"}


def print_report(checks: Sequence[Check], output: str = "table") -> int:
    """Print the checks (a table, or JSON) and return the exit code: 1 when any check failed."""
    if output == "json":
        emit([check.as_dict() for check in checks], "json")
    else:
        grid = Table(header_style="bold", show_lines=False)
        for column in ("CHECK", "STATUS", "DETAIL", "FIX"):
            grid.add_column(column, overflow="fold")
        for check in checks:
            style = _STYLE[check.status]
            grid.add_row(check.name, f"[{style}]{check.status.value}[/{style}]", check.detail, check.fix)
        console.print(grid)
        failed = sum(1 for check in checks if check.status is Status.FAIL)
        console.print(f"{failed} check(s) failed" if failed else "[green]ready for the chart[/green]")
    return 1 if any(check.status is Status.FAIL for check in checks) else 0
