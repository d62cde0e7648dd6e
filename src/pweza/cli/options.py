"""Options every client command shares, and the one way a command reports a failure.

This module is imported by every command, so it stays light: no manager, no models.
"""

from __future__ import annotations

from typing import Annotated

import typer

from pweza.cli.client import ApiClient, CliError
from pweza.cli.context import load_context

Server = Annotated[
    str | None,
    typer.Option("--server", "-s", envvar="PWEZA_URL", help="Manager URL (default: the one `pweza up` saved)."),
]
Token = Annotated[
    str | None,
    typer.Option("--token", envvar="PWEZA_TOKEN", help="Bearer token (default: the one `pweza up` saved)."),
]
Namespace = Annotated[str, typer.Option("--namespace", "-n", help="Namespace of the object.")]
AnyNamespace = Annotated[str | None, typer.Option("--namespace", "-n", help="Only this namespace (default: all).")]

# The formats of every listing, as kubectl has them.
LISTING_FORMATS = ("table", "wide", "json", "yaml", "name")
Output = Annotated[str, typer.Option("--output", "-o", help="table, wide, json, yaml or name.")]


def client(server: str | None, token: str | None, timeout: float = 30.0) -> ApiClient:
    return ApiClient(load_context(server, token), timeout=timeout)


def check_output(output: str, allowed: tuple[str, ...] = LISTING_FORMATS) -> None:
    if output not in allowed:
        raise CliError(f"--output must be {', '.join(allowed[:-1])} or {allowed[-1]}, not {output!r}", code=2)
