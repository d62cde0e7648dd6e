"""Rendering objects for people (tables) and for programs (JSON, YAML)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

console = Console()
err_console = Console(stderr=True)


def report_error(message: str) -> None:
    """One line on stderr, unwrapped and without markup (a message may hold brackets)."""
    err_console.print(Text.assemble(("error:", "red"), " ", message), soft_wrap=True)


def emit(data: Any, output: str) -> None:
    if output == "json":
        print(json.dumps(data, indent=2, default=str))
    elif output == "yaml":
        import yaml

        print(yaml.safe_dump(data, sort_keys=False), end="")
    else:
        raise ValueError(output)


def table(columns: list[str], rows: list[list[Any]]) -> None:
    grid = Table(box=None, header_style="bold")
    for column in columns:
        grid.add_column(column)
    for row in rows:
        grid.add_row(*("" if cell is None else str(cell) for cell in row))
    # Into a pipe or a file, a table keeps its natural width (rich would cut it to 80 columns).
    target = console if console.is_terminal else Console(width=100_000)
    target.print(grid, highlight=False)


@dataclass(frozen=True, slots=True)
class Column:
    header: str
    value: Callable[[dict[str, Any]], Any]
    wide: bool = False  # shown only with -o wide


def show(
    items: list[dict[str, Any]],
    output: str,
    columns: Sequence[Column],
    name_of: Callable[[dict[str, Any]], str],
    *,
    single: bool = False,
) -> None:
    """A listing in one of the formats of -o: table, wide, json, yaml or name."""
    if output in ("json", "yaml"):
        emit(items[0] if single and items else items, output)
    elif output == "name":
        for item in items:
            print(name_of(item))
    else:
        shown = [c for c in columns if output == "wide" or not c.wide]
        table([c.header for c in shown], [[c.value(item) for c in shown] for item in items])


def age(since: float | None, now: float | None = None) -> str:
    """How long ago, kubectl style: 42s, 7m, 5h, 3d."""
    if since is None:
        return ""
    seconds = max(0, int((time.time() if now is None else now) - since))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= 2 * size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def moment(at: float | None) -> str:
    return "" if at is None else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at)) + "Z"


def error_text(error: dict[str, Any] | None, limit: int = 80) -> str:
    """A task's error as `type: message`, cut to fit a column."""
    return "" if not error else f"{error.get('type', '')}: {error.get('message', '')}"[:limit]
