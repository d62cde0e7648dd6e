"""`pweza run` and `pweza runs ...`: start workflow runs and watch them as they happen."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.text import Text
from rich.tree import Tree

from pweza.cli.client import ApiClient, CliError
from pweza.cli.context import load_context
from pweza.cli.files import load_documents, plural_of
from pweza.cli.listings import RUN_COLUMNS
from pweza.cli.options import Output, Server, Token, check_output
from pweza.cli.output import console, emit, err_console, report_error, show
from pweza.domain.errors import InvalidInput
from pweza.domain.safe_yaml import load_one

runs_app = typer.Typer(
    no_args_is_help=True,
    help="List, inspect and steer workflow runs.",
    epilog="Examples:\n\n  pweza runs list --state failed -o wide\n\n  pweza runs get RUN_ID\n\n"
    '  pweza runs approve RUN_ID review -m "looks good"\n\n  pweza runs retry RUN_ID --watch',
)

_STYLE = {
    "pending": ("·", "dim"),
    "running": ("▶", "cyan"),
    "waiting_approval": ("⏸", "yellow"),
    "succeeded": ("✔", "green"),
    "failed": ("✘", "red"),
    "timed_out": ("⏱", "red"),
    "cancelled": ("■", "magenta"),
    "skipped": ("↷", "dim"),
    "assigned": ("▷", "cyan"),
}


def parse_inputs(pairs: list[str], input_file: Path | None) -> dict[str, Any]:
    inputs: dict[str, Any] = {}
    if input_file is not None:
        try:
            loaded = load_one(input_file.read_bytes(), f"--input-file {input_file}")
        except OSError as error:
            raise CliError(f"--input-file {input_file}: cannot be read: {error.strerror}", code=2) from None
        except InvalidInput as error:
            raise CliError(error.detail, code=2) from None
        if not isinstance(loaded, dict):
            raise CliError(f"--input-file {input_file}: expected a mapping of input names to values", code=2)
        inputs.update(loaded)
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise CliError(f"-i {pair!r}: use key=value", code=2)
        try:
            inputs[key] = json.loads(raw)
        except json.JSONDecodeError:
            inputs[key] = raw  # plain text needs no quotes
    return inputs


def _duration(step: dict[str, Any]) -> str:
    started = step.get("startedAt")
    if not started:
        return ""
    end = step.get("finishedAt") or time.time()
    return f"{end - started:.2f}s"


def render_run(run: dict[str, Any]) -> Group:
    icon, style = _STYLE.get(run["state"], ("?", ""))
    tree = Tree(
        Text.assemble((f"{icon} ", style), (run["workflow"], "bold"), f"  run {run['id']}  ", (run["state"], style))
    )
    for step in run.get("steps", []):
        icon, style = _STYLE.get(step["state"], ("?", ""))
        line = Text.assemble((f"{icon} ", style), (step["name"], "bold"), "  ", (step["state"], style))
        items = step.get("items")
        if items is not None:
            line.append(f"  {items} item{'' if items == 1 else 's'}")
        elif step.get("attempts"):
            line.append(f"  attempt {step['attempts']}")
        if duration := _duration(step):
            line.append(f"  {duration}", "dim")
        if step["state"] == "waiting_approval":
            line.append(f"  → pweza runs approve {run['id']} {step['name']}", "yellow")
        if step.get("error") and step["state"] in ("failed", "timed_out"):
            line.append(f"  {step['error'].get('message', '')}"[:160], "red")
        branch = tree.add(line)
        _add_children(branch, step.get("children") or [])
    parts: list[Any] = [tree]
    if run.get("error"):
        parts.append(Text(f"error: {run['error']}", "red"))
    return Group(*parts)


def _add_children(branch: Tree, children: list[dict[str, Any]]) -> None:
    for child in children:
        icon, style = _STYLE.get(child["state"], ("?", ""))
        node = branch.add(
            Text.assemble((f"{icon} ", style), f"delegated to {child['pool']}  ", (child["state"], style))
        )
        _add_children(node, child.get("children") or [])


def follow(client: ApiClient, run_id: str) -> dict[str, Any]:
    """Show the run's tree, updated in place on every event, until it ends."""
    import httpx  # here, not at the top: only following a run needs them, and they are slow to import
    from rich.live import Live

    run: dict[str, Any] = client.request("GET", f"/api/v1/runs/{run_id}")
    context = client.context
    headers = {"Authorization": f"Bearer {context.token}"} if context.token else {}
    with Live(render_run(run), console=err_console, refresh_per_second=10, transient=False) as live:
        while run["state"] == "running":
            try:
                with httpx.stream(
                    "GET",
                    f"{context.url}/api/v1/runs/{run_id}/events",
                    headers=headers,
                    timeout=httpx.Timeout(10, read=60),
                ) as stream:
                    for line in stream.iter_lines():
                        if line.startswith("event:"):
                            run = client.request("GET", f"/api/v1/runs/{run_id}")
                            live.update(render_run(run))
                            if line.strip() == "event: end" or run["state"] != "running":
                                break
            except httpx.HTTPError:
                time.sleep(1.0)  # the manager may be restarting; its state is durable
            run = client.request("GET", f"/api/v1/runs/{run_id}")
            live.update(render_run(run))
    return run


def run_command(
    target: Annotated[str, typer.Argument(help="A workflow file (applied first) or the name of an applied workflow.")],
    inputs: Annotated[
        list[str] | None, typer.Option("--input", "-i", help="key=value (value parsed as JSON if it can be).")
    ] = None,
    input_file: Annotated[Path | None, typer.Option(help="YAML or JSON mapping of inputs.")] = None,
    detach: Annotated[bool, typer.Option("--detach", "-d", help="Print the run id and return at once.")] = False,
    namespace: Annotated[str, typer.Option("--namespace", "-n")] = "default",
    output: Annotated[str, typer.Option("--output", "-o", help="Format of the outputs: json or yaml.")] = "json",
    server: Server = None,
    token: Token = None,
) -> None:
    """Start a workflow run and show its progress; exit 0 only if it succeeded."""
    try:
        values = parse_inputs(inputs or [], input_file)
        with ApiClient(load_context(server, token)) as client:
            name = target
            path = Path(target)
            if not path.exists() and _looks_like_a_path(target):
                raise CliError(f"{target}: no such file or directory", code=2)
            if path.exists():
                documents = load_documents(path)
                workflows = [doc for _, doc in documents if doc["kind"] == "Workflow"]
                if len(workflows) != 1:
                    raise CliError(f"{target}: expected exactly one Workflow, found {len(workflows)}", code=2)
                for where, document in documents:
                    ns = document["metadata"].get("namespace", namespace)
                    try:
                        client.request(
                            "PUT", f"/api/v1/{plural_of(document['kind'])}/{document['metadata']['name']}",
                            json=document, params={"namespace": ns},
                        )  # fmt: skip
                    except CliError as error:
                        raise CliError(f"{where}: {error}") from None
                name = workflows[0]["metadata"]["name"]
            run = client.request(
                "POST", f"/api/v1/workflows/{name}/runs", json={"inputs": values}, params={"namespace": namespace}
            )
            if detach:
                print(run["id"])
                return
            final = follow(client, run["id"])
    except CliError as error:
        report_error(str(error))
        raise typer.Exit(error.code) from None
    if final["state"] == "succeeded":
        emit(final["outputs"], output)
        raise typer.Exit(0)
    err_console.print(f"[red]run {final['id']} {final['state']}[/red]")
    raise typer.Exit(1)


def _looks_like_a_path(target: str) -> bool:
    """A workflow's name is a DNS label: a slash or a file suffix means a file was meant."""
    return "/" in target or target.endswith((".yaml", ".yml", ".json")) or target.startswith(".")


def _call(server: str | None, token: str | None, method: str, path: str, **kwargs: Any) -> Any:
    try:
        with ApiClient(load_context(server, token)) as client:
            return client.request(method, path, **kwargs)
    except CliError as error:
        report_error(str(error))
        raise typer.Exit(error.code) from None


@runs_app.command("list")
def runs_list(
    workflow: Annotated[str | None, typer.Option(help="Only this workflow's runs.")] = None,
    state: Annotated[str | None, typer.Option(help="running, succeeded, failed, ...")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    output: Output = "table",
    server: Server = None,
    token: Token = None,
) -> None:
    """Recent runs, newest first."""
    check_output(output)
    params: dict[str, Any] = {"limit": limit, "workflow": workflow, "state": state}
    items = _call(server, token, "GET", "/api/v1/runs", params=params)["items"]
    show(items, output, RUN_COLUMNS, lambda r: f"run/{r['id']}")


@runs_app.command("get")
def runs_get(
    run_id: str,
    output: Annotated[str, typer.Option("--output", "-o")] = "tree",
    server: Server = None,
    token: Token = None,
) -> None:
    """A run with every step: state, attempts, timing, output or error."""
    run = _call(server, token, "GET", f"/api/v1/runs/{run_id}")
    if output == "tree":
        console.print(render_run(run))
    else:
        emit(run, output)


@runs_app.command("cancel")
def runs_cancel(run_id: str, server: Server = None, token: Token = None) -> None:
    """Cancel a run; its running steps are cancelled on their agents."""
    run = _call(server, token, "POST", f"/api/v1/runs/{run_id}/cancel")
    console.print(f"run {run_id}: {run['state']}")


@runs_app.command("retry")
def runs_retry(
    run_id: str,
    step: Annotated[str | None, typer.Option(help="Retry only this failed step.")] = None,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Follow the run afterwards.")] = False,
    server: Server = None,
    token: Token = None,
) -> None:
    """Retry a failed run (or one failed step) from where it failed, keeping succeeded steps."""
    run = _call(server, token, "POST", f"/api/v1/runs/{run_id}/retry", json={"step": step})
    if not watch:
        console.print(f"run {run_id}: {run['state']}")
        return
    with ApiClient(load_context(server, token)) as client:
        final = follow(client, run_id)
    raise typer.Exit(0 if final["state"] == "succeeded" else 1)


@runs_app.command("approve")
def runs_approve(
    run_id: str,
    step: str,
    comment: Annotated[str, typer.Option("--comment", "-m")] = "",
    server: Server = None,
    token: Token = None,
) -> None:
    """Approve a step waiting for approval."""
    _call(server, token, "POST", f"/api/v1/runs/{run_id}/steps/{step}/approve", json={"comment": comment})
    console.print(f"step {step} of run {run_id} approved")


@runs_app.command("reject")
def runs_reject(
    run_id: str,
    step: str,
    comment: Annotated[str, typer.Option("--comment", "-m")] = "",
    server: Server = None,
    token: Token = None,
) -> None:
    """Reject a step waiting for approval (the step fails)."""
    _call(server, token, "POST", f"/api/v1/runs/{run_id}/steps/{step}/reject", json={"comment": comment})
    console.print(f"step {step} of run {run_id} rejected")


@runs_app.command("logs")
def runs_logs(run_id: str, server: Server = None, token: Token = None) -> None:
    """The run's history: every transition, in order."""
    events = _call(server, token, "GET", f"/api/v1/runs/{run_id}/events", params={"follow": False})["items"]
    for event in events:
        stamp = time.strftime("%H:%M:%S", time.localtime(event["at"])) + f".{int(event['at'] * 1000) % 1000:03d}"
        detail = {k: v for k, v in event["data"].items() if v not in (None, "", {})}
        where = f" {event['step']}" if event["step"] else ""
        console.print(f"{stamp}  {event['type']}{where}  {json.dumps(detail) if detail else ''}", highlight=False)
