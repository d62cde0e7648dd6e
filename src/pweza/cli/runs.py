"""`pweza run` and `pweza runs ...`: start workflow runs and watch them as they happen."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
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

runs_app = typer.Typer(
    no_args_is_help=True,
    help="List, inspect and steer workflow runs.",
    epilog="Examples:\n\n  pweza runs list --state failed -o wide\n\n  pweza runs get RUN_ID\n\n"
    '  pweza runs approve RUN_ID review -m "looks good"\n\n  pweza runs retry RUN_ID --watch',
)

# How often the live tree asks which steps still wait for an agent (events redraw it at once).
_POLL_SECONDS = 1.0
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
        from pweza.domain.safe_yaml import load_one  # yaml, only when there is a file to read

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


@dataclass(frozen=True, slots=True)
class Waiting:
    """A step whose task no agent has taken yet: the pool it waits for and that pool's agents."""

    pool: str
    ready: int
    connected: int


def _duration(step: dict[str, Any], now: float) -> str:
    started = step.get("startedAt")
    if not started:
        return ""
    end = step.get("finishedAt") or now
    return f"{max(0.0, end - started):.1f}s"


def waiting_text(waiting: Waiting) -> str:
    if waiting.connected == 0:
        agents = "no agent connected"
    elif waiting.ready == waiting.connected:
        agents = f"{waiting.ready} agent{'' if waiting.ready == 1 else 's'} connected, all busy"
    else:
        agents = f"{waiting.connected} connected, {waiting.ready} ready"
    return f"waiting for an agent of pool {waiting.pool} ({agents})"


def render_run(
    run: dict[str, Any],
    waiting: dict[str, Waiting] | None = None,
    now: float | None = None,
    replies: dict[str, LiveReply] | None = None,
) -> Group:
    """The run as a tree of steps; `waiting` names the steps whose task is still pending, `now`
    (default: the clock) is what the timers of unfinished steps count to, and `replies` what the
    running steps' models are generating."""
    now = time.time() if now is None else now
    waiting = waiting or {}
    icon, style = _STYLE.get(run["state"], ("?", ""))
    tree = Tree(
        Text.assemble((f"{icon} ", style), (run["workflow"], "bold"), f"  run {run['id']}  ", (run["state"], style))
    )
    for step in run.get("steps", []):
        pending = waiting.get(step["name"])
        state = "pending" if pending is not None else step["state"]
        icon, style = _STYLE.get(state, ("?", ""))
        line = Text.assemble((f"{icon} ", style), (step["name"], "bold"), "  ", (state, style))
        if pending is not None:
            line.append(f"  {waiting_text(pending)}", "yellow")
        items = step.get("items")
        if items is not None:
            line.append(f"  {items} item{'' if items == 1 else 's'}")
        elif step.get("attempts"):
            line.append(f"  attempt {step['attempts']}")
        if duration := _duration(step, now):
            line.append(f"  {duration}", "dim")
        if step["state"] == "waiting_approval":
            line.append(f"  → pweza runs approve {run['id']} {step['name']}", "yellow")
        if step.get("error") and step["state"] in ("failed", "timed_out"):
            line.append(f"  {step['error'].get('message', '')}"[:160], "red")
        branch = tree.add(line)
        _add_children(branch, step.get("children") or [])
        _add_journal(branch, step.get("journal") or [])
        _add_tool_approvals(branch, step.get("taskId"), step.get("toolApprovals") or [])
        reply = (replies or {}).get(step["name"])
        if reply is not None and step["state"] == "running" and reply.text:
            branch.add(reply.line())
    parts: list[Any] = [tree]
    usage = run.get("usage") or {}
    if usage.get("tokens") or usage.get("budgetTokens"):
        budget = f" of a budget of {usage['budgetTokens']}" if usage.get("budgetTokens") else ""
        parts.append(Text(f"model tokens: {usage.get('tokens', 0)}{budget}", "dim"))
    if usage.get("cost") is not None:
        currency = usage.get("currency") or ""
        budget = f" of a budget of {usage['budgetCost']:g} {currency}" if usage.get("budgetCost") else ""
        parts.append(Text(f"model cost: {usage['cost']:g} {currency}{budget}", "dim"))
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


def _add_journal(branch: Tree, calls: list[dict[str, Any]]) -> None:
    """A step's model and tool calls, attempt by attempt; a replayed call was answered from the
    journal, not made again."""
    for call in calls:
        if call["kind"] == "model":
            usage = call.get("usage") or {}
            tokens = f"{usage.get('promptTokens', 0)}+{usage.get('completionTokens', 0)} tokens"
            what = f"model {call.get('model') or '?'}  {tokens}"
        else:
            what = f"tool {call.get('tool') or '?'}" + ("  error" if call.get("isError") else "")
        line = Text.assemble(("· ", "dim"), f"attempt {call['attempt']} call {call['index']}: {what}")
        line.append(f"  {call.get('seconds', 0.0):.1f}s", "dim")
        if call.get("replayed"):
            line.append("  replayed from the journal", "cyan")
        branch.add(line)


def _add_tool_approvals(branch: Tree, task_id: str | None, approvals: list[dict[str, Any]]) -> None:
    """The step's tool calls that wait for a person (with the command that decides), or were decided."""
    for approval in approvals:
        arguments = json.dumps(approval.get("arguments") or {}, ensure_ascii=False)
        call = f"tool {approval['tool']}({arguments[:80]})"
        if approval["state"] == "pending":
            line = Text.assemble(("⏸ ", "yellow"), f"{call} waits for approval", style="yellow")
            line.append(f"  → pweza task approve {task_id} {approval['key']}", "yellow")
        else:
            by = f" by {approval.get('decidedBy')}" if approval.get("decidedBy") else ""
            line = Text.assemble(("· ", "dim"), f"{call} {approval['state']}{by}")
        branch.add(line)


REPLY_TAIL_CHARS = 100


class LiveReply:
    """What a step's model is generating now, from the run's `model.delta` events: the current
    call's text, or the tool call it is writing."""

    def __init__(self) -> None:
        self.call: tuple[str, int, int] = ("", 0, -1)
        self.text = ""
        self.tool = ""

    def add(self, piece: dict[str, Any]) -> None:
        call = (str(piece.get("taskId", "")), int(piece.get("attempt", 0)), int(piece.get("call", 0)))
        if call != self.call:
            self.call, self.text, self.tool = call, "", ""
        if piece.get("tool"):
            self.tool, self.text = str(piece["tool"]), ""
        self.text += str(piece.get("text") or piece.get("arguments") or "")

    def line(self) -> Text:
        tail = " ".join(self.text.split())[-REPLY_TAIL_CHARS:]
        what = f"tool {self.tool}({tail}" if self.tool else tail
        return Text.assemble(("✎ ", "magenta"), (what, "dim"))


class RunView:
    """The live tree's renderable: drawn afresh at every refresh, so its timers move between events."""

    def __init__(self, run: dict[str, Any]) -> None:
        self.run = run
        self.waiting: dict[str, Waiting] = {}
        self.replies: dict[str, LiveReply] = {}

    def add_piece(self, piece: dict[str, Any]) -> None:
        self.replies.setdefault(str(piece.get("step", "")), LiveReply()).add(piece)

    def __rich__(self) -> Group:
        return render_run(self.run, self.waiting, replies=self.replies)


def find_waiting(client: ApiClient, run: dict[str, Any]) -> dict[str, Waiting]:
    """The running steps whose task is still pending, with their pool's connected agents."""
    found: dict[str, Waiting] = {}
    pools: dict[tuple[str, str], Waiting] = {}
    for step in run.get("steps", []):
        if step["state"] != "running" or not step.get("taskId"):
            continue
        try:
            task = client.request("GET", f"/api/v1/tasks/{step['taskId']}")
        except CliError:
            continue  # not created yet, or already gone: nothing to say
        if task["state"] != "pending":
            continue
        key = (task["namespace"], task["pool"])
        if key not in pools:
            pools[key] = pool_waiting(client, task["namespace"], task["pool"])
        found[step["name"]] = pools[key]
    return found


def pool_waiting(client: ApiClient, namespace: str, pool: str) -> Waiting:
    """A pool's connected agents and how many of them can take a task."""
    agents = client.request("GET", "/api/v1/agents", params={"pool": pool})["items"]
    mine = [a for a in agents if a["namespace"] == namespace]
    ready = sum(1 for a in mine if a["state"] not in ("unhealthy", "draining") and a["slots"] > 0)
    return Waiting(pool, ready, len(mine))


def _watch_events(
    url: str,
    headers: dict[str, str],
    changed: threading.Event,
    done: threading.Event,
    on_piece: Callable[[dict[str, Any]], None],
) -> None:
    """Set `changed` at every stored event of the run's stream and hand each piece of a model
    reply (`model.delta`) to `on_piece`, reconnecting until `done`."""
    import httpx  # here, not at the top: only following a run needs it, and it is slow to import

    while not done.is_set():
        try:
            with httpx.stream("GET", url, headers=headers, timeout=httpx.Timeout(10, read=60)) as stream:
                kind = ""
                for line in stream.iter_lines():
                    if line.startswith("event:"):
                        kind = line.partition(":")[2].strip()
                        if kind != "model.delta":
                            changed.set()  # the tree is read again; a reply piece only redraws it
                    elif line.startswith("data:") and kind == "model.delta":
                        with contextlib.suppress(ValueError, TypeError):  # a piece is only shown
                            on_piece(json.loads(line.partition(":")[2]))
                    if done.is_set() or line.strip() == "event: end":
                        return
        except httpx.HTTPError:
            pass  # the manager may be restarting; its state is durable
        done.wait(1.0)


def follow(client: ApiClient, run_id: str) -> dict[str, Any]:
    """Show the run's tree until it ends: redrawn at every event, and polled every second (which
    steps still wait for an agent; the timers move with every refresh)."""
    from rich.live import Live  # only following a run draws live

    view = RunView(client.request("GET", f"/api/v1/runs/{run_id}"))
    context = client.context
    headers = {"Authorization": f"Bearer {context.token}"} if context.token else {}
    changed, done = threading.Event(), threading.Event()
    watcher = threading.Thread(
        target=_watch_events,
        args=(f"{context.url}/api/v1/runs/{run_id}/events", headers, changed, done, view.add_piece),
        daemon=True,  # it may sit in a read of the stream; it must not hold the command open
    )
    watcher.start()
    try:
        with Live(view, console=err_console, refresh_per_second=4, transient=False):
            while view.run["state"] == "running":
                changed.wait(_POLL_SECONDS)
                changed.clear()
                run = client.request("GET", f"/api/v1/runs/{run_id}")
                view.waiting = find_waiting(client, run) if run["state"] == "running" else {}
                view.run = run
    finally:
        done.set()
    return view.run


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
        report_error(f"{error}")
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
        report_error(f"{error}")
        raise typer.Exit(error.code) from None


LATEST = "@latest"


def run_ref(server: str | None, token: str | None, ref: str) -> str:
    """A run id as given, or the newest run's id for `@latest` (the habit of `argo get @latest`)."""
    if ref != LATEST:
        return ref
    items = _call(server, token, "GET", "/api/v1/runs", params={"limit": 1})["items"]
    if not items:
        report_error("@latest: there are no runs yet")
        raise typer.Exit(1)
    return str(items[0]["id"])


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
    run_id = run_ref(server, token, run_id)
    run = _call(server, token, "GET", f"/api/v1/runs/{run_id}")
    if output == "tree":
        console.print(render_run(run))
    else:
        emit(run, output)


@runs_app.command("cancel")
def runs_cancel(run_id: str, server: Server = None, token: Token = None) -> None:
    """Cancel a run; its running steps are cancelled on their agents."""
    run_id = run_ref(server, token, run_id)
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
    run_id = run_ref(server, token, run_id)
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
    run_id = run_ref(server, token, run_id)
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
    run_id = run_ref(server, token, run_id)
    _call(server, token, "POST", f"/api/v1/runs/{run_id}/steps/{step}/reject", json={"comment": comment})
    console.print(f"step {step} of run {run_id} rejected")


@runs_app.command("logs")
def runs_logs(run_id: str, server: Server = None, token: Token = None) -> None:
    """The run's history: every transition, in order."""
    run_id = run_ref(server, token, run_id)
    events = _call(server, token, "GET", f"/api/v1/runs/{run_id}/events", params={"follow": False})["items"]
    for event in events:
        stamp = time.strftime("%H:%M:%S", time.localtime(event["at"])) + f".{int(event['at'] * 1000) % 1000:03d}"
        detail = {k: v for k, v in event["data"].items() if v not in (None, "", {})}
        where = f" {event['step']}" if event["step"] else ""
        console.print(f"{stamp}  {event['type']}{where}  {json.dumps(detail) if detail else ''}", highlight=False)


_FINISHED = "finished"
_APPROVAL = "approval"
_WAIT_FOR = ("approval", "finished", "succeeded", "failed", "cancelled", "timed_out")


def _reached(run: dict[str, Any], wanted: str) -> bool:
    if wanted == _APPROVAL:
        return any(step["state"] == "waiting_approval" for step in run.get("steps", []))
    if wanted == _FINISHED:
        return bool(run["state"] != "running")
    return bool(run["state"] == wanted)


@runs_app.command("wait")
def runs_wait(
    run_id: Annotated[str, typer.Argument(help="A run id, or @latest for the newest run.")],
    wait_for: Annotated[
        str,
        typer.Option(
            "--for", help="approval (a step waits for a decision), finished, succeeded, failed, cancelled, timed_out."
        ),
    ] = _FINISHED,
    timeout: Annotated[str, typer.Option(help="Give up after this long: 30s, 5m, 1h.")] = "5m",
    server: Server = None,
    token: Token = None,
) -> None:
    """Wait until a run reaches a state, like `kubectl wait --for`; print the run's state.

    Exits 1 when the run ends in another state first, or when --timeout passes. With @latest it
    also waits for a first run to exist.

    Example: RUN=$(pweza run wf.yaml --detach); pweza runs wait $RUN --for approval"""
    if wait_for not in _WAIT_FOR:
        report_error(f"--for {wait_for!r}: expected one of {', '.join(_WAIT_FOR)}")
        raise typer.Exit(2)
    from pweza.domain.durations import parse_duration  # pydantic: only this command needs it

    try:
        limit = parse_duration(timeout)
    except ValueError as error:
        report_error(f"--timeout: {error}")
        raise typer.Exit(2) from None
    deadline = time.monotonic() + limit
    while run_id == LATEST:  # a run started a moment ago in another terminal may not exist yet
        items = _call(server, token, "GET", "/api/v1/runs", params={"limit": 1})["items"]
        if items:
            run_id = str(items[0]["id"])
        elif time.monotonic() >= deadline:
            err_console.print(f"[red]error:[/red] @latest: no run was started within {timeout}")
            raise typer.Exit(1)
        else:
            time.sleep(0.3)
    while True:
        run = _call(server, token, "GET", f"/api/v1/runs/{run_id}")
        if _reached(run, wait_for):
            print(f"run {run_id}: {wait_for if wait_for == _APPROVAL else run['state']}")
            return
        if run["state"] != "running":
            report_error(f"run {run_id} ended {run['state']} before reaching {wait_for}")
            raise typer.Exit(1)
        if time.monotonic() >= deadline:
            report_error(f"run {run_id} did not reach {wait_for} within {timeout}")
            raise typer.Exit(1)
        time.sleep(0.3)
