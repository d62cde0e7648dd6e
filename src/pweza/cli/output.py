"""Rendering objects for people (tables) and for programs (JSON, YAML)."""

from __future__ import annotations

import json
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

console = Console()
err_console = Console(stderr=True)


def emit(data: Any, output: str) -> None:
    if output == "json":
        print(json.dumps(data, indent=2, default=str))
    elif output == "yaml":
        print(yaml.safe_dump(data, sort_keys=False), end="")
    else:
        raise ValueError(output)


def table(columns: list[str], rows: list[list[Any]]) -> None:
    grid = Table(box=None, header_style="bold")
    for column in columns:
        grid.add_column(column)
    for row in rows:
        grid.add_row(*("" if cell is None else str(cell) for cell in row))
    console.print(grid)


def object_rows(kind: str, items: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    if kind == "AgentTemplate":
        return (
            ["NAMESPACE", "NAME", "RUNTIME", "CONCURRENCY", "TIMEOUT", "GEN"],
            [
                [
                    i["metadata"]["namespace"],
                    i["metadata"]["name"],
                    i["spec"]["runtime"]["kind"],
                    i["spec"].get("concurrency"),
                    i["spec"].get("timeout"),
                    i["metadata"].get("generation"),
                ]
                for i in items
            ],
        )
    if kind == "AgentPool":
        return (
            ["NAMESPACE", "NAME", "TEMPLATE", "MIN", "MAX", "GEN"],
            [
                [
                    i["metadata"]["namespace"],
                    i["metadata"]["name"],
                    i["spec"]["templateRef"],
                    i["spec"].get("scaling", {}).get("minReplicas"),
                    i["spec"].get("scaling", {}).get("maxReplicas"),
                    i["metadata"].get("generation"),
                ]
                for i in items
            ],
        )
    return (
        ["NAMESPACE", "NAME", "GEN"],
        [[i["metadata"]["namespace"], i["metadata"]["name"], i["metadata"].get("generation")] for i in items],
    )
