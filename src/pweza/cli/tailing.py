"""`pweza logs`: a task's or an agent's log, through the manager (which reads what `pweza up` kept)."""

from __future__ import annotations

from typing import Annotated

import typer

from pweza.cli.client import CliError
from pweza.cli.listings import split_kind_name
from pweza.cli.options import Server, Token, client

_KINDS = {"task": "tasks", "tasks": "tasks", "agent": "agents", "agents": "agents", "ag": "agents"}

_EXAMPLES = """Examples:

  pweza logs task/3f2a9c0d1e4b5a6f              # what the task's handler logged, and its tracebacks

  pweza logs agent classifiers-0-4242-17 -f     # follow an agent's output

  pweza logs agent/classifiers-0-4242-17 --tail 50

An agent's log is what `pweza up` kept of its output; on Kubernetes, use kubectl logs.
A run's history is `pweza runs logs RUN_ID`.
"""


def register(app: typer.Typer) -> None:
    app.command(epilog=_EXAMPLES, rich_help_panel="Work")(logs)


def logs(
    kind: Annotated[str, typer.Argument(help="task or agent (or task/ID, agent/ID).")],
    name: Annotated[str | None, typer.Argument(help="The task's or the agent's id.")] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Go on printing new lines (a task's: until it has finished).")
    ] = False,
    tail: Annotated[int | None, typer.Option(min=0, help="Only the last N lines.")] = None,
    server: Server = None,
    token: Token = None,
) -> None:
    """Print the log of a task or of an agent, kept by `pweza up` and served by the manager."""
    kind, name = split_kind_name(kind, name)
    plural = _KINDS.get(kind.lower())
    if plural is None:
        raise CliError(f"logs are kept for tasks and agents, not {kind!r}: pweza logs task/ID or agent/ID", code=2)
    if not name:
        raise CliError(f"give the {kind}'s id: pweza logs {kind}/ID", code=2)
    params = {"follow": follow, "tail": tail}
    with client(server, token) as api:
        for line in api.lines(f"/api/v1/{plural}/{name}/logs", params=params):
            print(line, flush=follow)
