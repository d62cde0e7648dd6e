"""`pweza task ...`: submit tasks to a pool, wait for them, list, inspect and cancel them."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer

from pweza.cli.client import ApiClient, CliError
from pweza.cli.options import Namespace, Output, Server, Token, check_output, client
from pweza.cli.output import Column, age, console, emit, err_console, error_text, show

task_app = typer.Typer(
    no_args_is_help=True,
    help="Submit and inspect tasks.",
    epilog="""Examples:

  pweza task submit --pool classifiers --input '{"ticket": {"subject": "refund"}}' --wait

  pweza task list --state failed -o wide

  pweza task get TASK_ID -o yaml
""",
)


def _parse_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise CliError(f"{what} is not valid JSON: {error}", code=2) from None


SINGLE_FORMATS = ("json", "yaml")
TASK_COLUMNS = [
    Column("ID", lambda t: t["id"]),
    Column("POOL", lambda t: t["pool"]),
    Column("STATE", lambda t: t["state"]),
    Column("ATTEMPTS", lambda t: t["attempts"]),
    Column("AGENT", lambda t: t["agentId"]),
    Column("AGE", lambda t: age(t["createdAt"])),
    Column("NAMESPACE", lambda t: t["namespace"], True),
    Column("PRIORITY", lambda t: t["priority"], True),
    Column("PARENT", lambda t: t.get("parentId"), True),
    Column("ERROR", lambda t: error_text(t.get("error")), True),
]


@task_app.command(
    "submit",
    epilog='Examples:\n\n  pweza task submit --pool classifiers --input \'{"text": "hi"}\' --wait\n\n'
    "  pweza task submit --pool classifiers --count 100 --priority 5",
)
def task_submit(
    pool: Annotated[str, typer.Option(help="Pool that runs the task.")],
    input_json: Annotated[str, typer.Option("--input", help="Task input as JSON.")] = "null",
    count: Annotated[int, typer.Option(min=1, max=10_000, help="Submit this many copies.")] = 1,
    priority: int = 0,
    timeout: Annotated[str | None, typer.Option(help="Override the template's timeout, e.g. 30s.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the result(s).")] = False,
    namespace: Namespace = "default",
    output: Annotated[str, typer.Option("--output", "-o", help="json or yaml.")] = "json",
    server: Server = None,
    token: Token = None,
) -> None:
    """Submit tasks to a pool; with --wait, show progress and the result (exit 1 if one failed)."""
    check_output(output, SINGLE_FORMATS)
    value = _parse_json(input_json, "--input")
    item: dict[str, Any] = {"pool": pool, "namespace": namespace, "input": value, "priority": priority}
    if timeout:
        item["timeout"] = timeout
    with client(server, token, timeout=60.0) as api:
        if count == 1:
            ids = [api.request("POST", "/api/v1/tasks", json=item)["id"]]
        else:
            reply = api.request("POST", "/api/v1/tasks:batch", json={"tasks": [item] * count})
            ids = [entry["id"] for entry in reply["items"]]
        if not wait:
            emit(ids[0] if count == 1 else ids, output)
            return
        results = _wait_all(api, ids)
    failed = [r for r in results if r["state"] != "succeeded"]
    emit(results[0] if count == 1 else {"succeeded": count - len(failed), "failed": len(failed)}, output)
    raise typer.Exit(1 if failed else 0)


def _wait_all(api: ApiClient, ids: list[str]) -> list[dict[str, Any]]:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    results: list[dict[str, Any]] = []
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err_console, transient=True) as progress:
        bar = progress.add_task("waiting for tasks", total=len(ids))
        for task_id in ids:
            deadline = time.monotonic() + 3600
            while time.monotonic() < deadline:
                task = api.request("GET", f"/api/v1/tasks/{task_id}/wait", params={"timeout": 5})
                if task["state"] in ("succeeded", "failed", "cancelled", "timed_out"):
                    break
                # Say why nothing happens: a pending task waits for an agent of its pool.
                waiting = "running" if task["state"] != "pending" else _why_pending(api, task)
                progress.update(bar, description=f"task {task_id[:8]}: {waiting}")
            results.append(task)
            progress.advance(bar)
    return results


def _why_pending(api: ApiClient, task: dict[str, Any]) -> str:
    from pweza.cli.runs import pool_waiting, waiting_text

    return "pending, " + waiting_text(pool_waiting(api, task["namespace"], task["pool"]))


@task_app.command("get", epilog="Examples:\n\n  pweza task get TASK_ID -o yaml\n\n  pweza task get TASK_ID -o wide")
def task_get(
    task_id: str,
    output: Annotated[str, typer.Option("--output", "-o", help="json, yaml, table, wide or name.")] = "json",
    server: Server = None,
    token: Token = None,
) -> None:
    """Show a task with its attempts."""
    check_output(output)
    with client(server, token) as api:
        task = api.request("GET", f"/api/v1/tasks/{task_id}")
    show([task], output, TASK_COLUMNS, lambda t: f"task/{t['id']}", single=True)


@task_app.command(
    "list",
    epilog="Examples:\n\n  pweza task list --state failed -o wide\n\n  pweza task list --pool classifiers -o name",
)
def task_list(
    pool: Annotated[str | None, typer.Option(help="Only this pool's tasks.")] = None,
    state: Annotated[str | None, typer.Option(help="pending, assigned, running, succeeded, failed, ...")] = None,
    namespace: Annotated[str | None, typer.Option("--namespace", "-n", help="Only this namespace.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    output: Output = "table",
    server: Server = None,
    token: Token = None,
) -> None:
    """List recent tasks, newest first."""
    check_output(output)
    params: dict[str, Any] = {"limit": limit}
    for key, value in (("pool", pool), ("state", state), ("namespace", namespace)):
        if value:
            params[key] = value
    with client(server, token) as api:
        items = api.request("GET", "/api/v1/tasks", params=params)["items"]
    show(items, output, TASK_COLUMNS, lambda t: f"task/{t['id']}")


@task_app.command("cancel", epilog="Example:\n\n  pweza task cancel TASK_ID")
def task_cancel(task_id: str, server: Server = None, token: Token = None) -> None:
    """Cancel a task; a running handler sees its cancellation signal."""
    with client(server, token) as api:
        task = api.request("POST", f"/api/v1/tasks/{task_id}/cancel")
    pending = task["cancelRequested"] and task["state"] != "cancelled"
    console.print(f"task {task_id}: {task['state']}" + (" (cancel sent to the agent)" if pending else ""))


Comment = Annotated[str, typer.Option("--comment", "-m", help="Why: the model and the audit log see it.")]


@task_app.command("approve", epilog="Example:\n\n  pweza task approve TASK_ID approval-append_note-1 -m 'fine'")
def task_approve(task_id: str, key: str, comment: Comment = "", server: Server = None, token: Token = None) -> None:
    """Let a tool call the task's agent waits on run (its template's requireApproval)."""
    _decide(task_id, key, "approve", comment, server, token)


@task_app.command("reject", epilog="Example:\n\n  pweza task reject TASK_ID approval-append_note-1 -m 'not today'")
def task_reject(task_id: str, key: str, comment: Comment = "", server: Server = None, token: Token = None) -> None:
    """Refuse a tool call the task's agent waits on: the model is told who refused it and why."""
    _decide(task_id, key, "reject", comment, server, token)


def _decide(task_id: str, key: str, verdict: str, comment: str, server: str | None, token: str | None) -> None:
    with client(server, token) as api:
        decided = api.request("POST", f"/api/v1/tasks/{task_id}/approvals/{key}/{verdict}", json={"comment": comment})
    console.print(f"tool call {key} ({decided['tool']}) of task {task_id}: {decided['state']}")
