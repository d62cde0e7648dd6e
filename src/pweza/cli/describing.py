"""`pweza describe`: one object with what goes on around it — conditions, agents, tasks, runs, events."""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import quote

import typer

from pweza.cli.client import ApiClient, CliError
from pweza.cli.listings import (
    AGENT_NAMES,
    READY_STATES,
    created_at,
    desired_replicas,
    object_path,
    split_kind_name,
    tool_server_target,
)
from pweza.cli.options import Namespace, Server, Token, client
from pweza.cli.output import age, error_text, moment, table
from pweza.domain.kind_names import resolve_kind

RECENT = 10

_EXAMPLES = """Examples:

  pweza describe agentpool classifiers          # conditions, connected agents, recent tasks

  pweza describe wf/support-triage              # steps, recent runs, the latest run's events

  pweza describe agent classifiers-0-1234-567   # one connected agent

  pweza describe task TASK_ID                   # attempts and the model/tool calls it journaled
"""


def register(app: typer.Typer) -> None:
    app.command(epilog=_EXAMPLES, rich_help_panel="Objects")(describe)


def describe(
    kind: Annotated[
        str,
        typer.Argument(
            help="agenttemplate (at), agentpool (ap), workflow (wf), toolserver (ts), modelconfig (mc), agent or task."
        ),
    ],
    name: Annotated[str | None, typer.Argument(help="The object (KIND/NAME works too).")] = None,
    namespace: Namespace = "default",
    server: Server = None,
    token: Token = None,
) -> None:
    """Show one object in detail: its spec, conditions, agents, recent tasks or runs, and events."""
    kind, name = split_kind_name(kind, name)
    if not name:
        raise CliError("give the name of the object: pweza describe KIND NAME", code=2)
    with client(server, token) as api:
        if kind.lower() in AGENT_NAMES:
            _describe_agent(api, name)
            return
        if kind.lower() in ("task", "tasks"):
            _describe_task(api, name)
            return
        resolved = resolve_kind(kind)
        item = api.request("GET", object_path(resolved, name), params={"namespace": namespace})
        _header(item)
        if resolved == "AgentPool":
            _describe_pool(api, item)
        elif resolved == "AgentTemplate":
            _describe_template(api, item)
        elif resolved == "ToolServer":
            _describe_tool_server(item)
        elif resolved == "ModelConfig":
            _describe_model_config(api, item)
        else:
            _describe_workflow(api, item)


def _fields(pairs: list[tuple[str, Any]], indent: int = 0) -> None:
    width = 15  # one column for every kind's fields, as kubectl lines them up
    for key, value in pairs:
        shown = "<none>" if value in (None, "", [], {}) else value
        print(f"{' ' * indent}{key + ':':<{width}}{shown}")


def _section(title: str) -> None:
    print(f"\n{title}:")


def _header(item: dict[str, Any]) -> None:
    metadata = item["metadata"]
    _fields(
        [
            ("Name", metadata["name"]),
            ("Namespace", metadata["namespace"]),
            ("Kind", item["kind"]),
            ("Labels", ", ".join(f"{k}={v}" for k, v in (metadata.get("labels") or {}).items())),
            ("Generation", metadata.get("generation")),
            ("Created", f"{moment(created_at(item))} ({age(created_at(item))} ago)" if created_at(item) else None),
        ]
    )


def _conditions(rows: list[tuple[str, bool, str]]) -> None:
    _section("Conditions")
    table(["TYPE", "STATUS", "MESSAGE"], [[kind, "True" if ok else "False", why] for kind, ok, why in rows])


def _agents(agents: list[dict[str, Any]]) -> None:
    _section(f"Agents ({len(agents)} connected)")
    if agents:
        table(["ID", "STATE", "RUNNING", "HOST", "PID", "AGE"], [_agent_row(a) for a in agents])


def _agent_row(agent: dict[str, Any]) -> list[Any]:
    running = f"{len(agent.get('running') or [])}/{agent.get('slots')}"
    return [
        agent["id"],
        agent["state"],
        running,
        agent.get("hostname"),
        agent.get("pid"),
        age(agent.get("connectedAt")),
    ]


def _agents_of(api: ApiClient, namespace: str, pools: list[str]) -> list[dict[str, Any]]:
    agents: list[dict[str, Any]] = api.request("GET", "/api/v1/agents")["items"]
    return [a for a in agents if a["namespace"] == namespace and a["pool"] in pools]


def _describe_pool(api: ApiClient, pool: dict[str, Any]) -> None:
    namespace, name = pool["metadata"]["namespace"], pool["metadata"]["name"]
    spec = pool["spec"]
    scaling = spec.get("scaling", {})
    desired = desired_replicas(pool)
    bounds = f"{scaling.get('minReplicas')}..{scaling.get('maxReplicas')}"
    _fields([("Template", spec["templateRef"]), ("Replicas", f"{desired} desired (scaling {bounds})")])
    agents = _agents_of(api, namespace, [name])
    ready = sum(1 for a in agents if a.get("state") in READY_STATES)
    found = _exists(api, "AgentTemplate", spec["templateRef"], namespace)
    _conditions(
        [
            ("TemplateFound", found, f"AgentTemplate {spec['templateRef']}" + ("" if found else " does not exist")),
            ("Ready", ready >= desired, f"{ready}/{desired} agents take work"),
        ]
    )
    _agents(agents)
    params = {"pool": name, "namespace": namespace, "limit": RECENT}
    tasks = api.request("GET", "/api/v1/tasks", params=params)["items"]
    _section(f"Recent tasks (last {RECENT})")
    if tasks:
        table(["ID", "STATE", "ATTEMPTS", "AGENT", "AGE", "ERROR"], [_task_row(t) for t in tasks])


def _task_row(task: dict[str, Any]) -> list[Any]:
    return [
        task["id"],
        task["state"],
        task["attempts"],
        task["agentId"],
        age(task["createdAt"]),
        error_text(task.get("error")),
    ]


def _describe_template(api: ApiClient, template: dict[str, Any]) -> None:
    namespace, name = template["metadata"]["namespace"], template["metadata"]["name"]
    spec = template["spec"]
    runtime = {k: v for k, v in spec["runtime"].items() if k not in ("headers",)}
    _fields(
        [
            ("Runtime", json.dumps(runtime)),
            ("Concurrency", spec.get("concurrency")),
            ("Timeout", spec.get("timeout")),
            ("Retry", json.dumps(spec["retry"]) if spec.get("retry") else None),
            ("Capabilities", ", ".join(spec.get("capabilities") or [])),
            ("Tools", _tools_text(spec.get("tools") or {})),
        ]
    )
    pools = api.request("GET", "/api/v1/agentpools", params={"namespace": namespace})["items"]
    users = [p["metadata"]["name"] for p in pools if p["spec"]["templateRef"] == name]
    _section("Used by pools")
    print("  " + (", ".join(users) if users else "<none>"))
    agents = [
        a for a in api.request("GET", "/api/v1/agents")["items"] if a["namespace"] == namespace and a["pool"] in users
    ]
    _agents(agents)


def _tools_text(tools: dict[str, Any]) -> str:
    """The template's tools block on one line: ToolServers with their allow-lists, pools as tools."""
    parts = []
    for ref in tools.get("servers") or []:
        allow = ref.get("allow")
        parts.append(f"ToolServer {ref['toolServer']}" + (f" [{', '.join(allow)}]" if allow is not None else " [all]"))
    for agent in tools.get("agents") or []:
        name = agent.get("name") or agent["pool"]
        parts.append(f"pool {agent['pool']}" + (f" as {name}" if name != agent["pool"] else ""))
    approval = [name for ref in tools.get("servers") or [] for name in ref.get("requireApproval") or []]
    approval += [a.get("name") or a["pool"] for a in tools.get("agents") or [] if a.get("requireApproval")]
    return "; ".join(parts) + (f" (approval: {', '.join(approval)})" if approval else "")


def _key_location(spec: dict[str, Any]) -> str | None:
    where = spec.get("apiKey") or {}
    if where.get("env"):
        return f"env {where['env']}"
    secret = where.get("secretKeyRef")
    return f"secret {secret['name']}/{secret['key']}" if secret else None


def _describe_model_config(api: ApiClient, model_config: dict[str, Any]) -> None:
    namespace, name = model_config["metadata"]["namespace"], model_config["metadata"]["name"]
    spec, status = model_config["spec"], model_config.get("status") or {}
    rate = (spec.get("rateLimit") or {}).get("requestsPerMinute")
    reachable = status.get("reachable")
    _fields(
        [
            ("Model", spec["model"]),
            ("URL", spec["baseUrl"]),
            ("API key", _key_location(spec)),  # where it is: the key itself is never in the object
            ("Fallbacks", ", ".join(spec.get("fallbacks") or [])),
            ("Timeout", spec.get("timeout")),
            ("Concurrency", spec.get("concurrency")),
            ("Rate limit", f"{rate}/min" if rate else None),
            ("Reachable", None if reachable is None else ("yes" if reachable else "no")),
            ("Models", ", ".join(status.get("models") or [])),
            ("Last error", status.get("lastError")),
            ("Checked", status.get("checkedAt")),
        ]
    )
    templates = api.request("GET", "/api/v1/agenttemplates", params={"namespace": namespace})["items"]
    users = [t["metadata"]["name"] for t in templates if t["spec"]["runtime"].get("modelRef") == name]
    _section("Used by templates")
    print("  " + (", ".join(users) if users else "<none>"))


def _describe_workflow(api: ApiClient, workflow: dict[str, Any]) -> None:
    namespace, name = workflow["metadata"]["namespace"], workflow["metadata"]["name"]
    spec = workflow["spec"]
    _fields([("Inputs", ", ".join(spec.get("inputs") or {})), ("Outputs", ", ".join(spec.get("outputs") or {}))])
    _section("Steps")
    table(
        ["STEP", "RUNS ON", "DEPENDS"],
        [[s["name"], _runs_on(s), ", ".join(s.get("depends") or [])] for s in spec.get("steps", [])],
    )
    runs = api.request("GET", "/api/v1/runs", params={"workflow": name, "namespace": namespace, "limit": RECENT})[
        "items"
    ]
    _section(f"Recent runs (last {RECENT})")
    if not runs:
        return
    table(
        ["RUN", "STATE", "AGE", "DURATION"],
        [[r["id"], r["state"], age(r["createdAt"]), _duration(r["createdAt"], r.get("finishedAt"))] for r in runs],
    )
    latest = runs[0]["id"]
    events = api.request("GET", f"/api/v1/runs/{latest}/events", params={"follow": False})["items"]
    _section(f"Events of run {latest} (last {RECENT})")
    table(
        ["AGE", "TYPE", "STEP", "DETAIL"],
        [[age(e["at"]), e["type"], e.get("step") or "", _detail(e.get("data") or {})] for e in events[-RECENT:]],
    )


def _describe_tool_server(server: dict[str, Any]) -> None:
    spec, status = server["spec"], server.get("status") or {}
    headers = [
        h["name"] + (f" (from ${h['valueFrom']['env']})" if h.get("valueFrom") else "")
        for h in spec.get("headers") or []
    ]
    refreshed = status.get("lastRefreshed")
    _fields(
        [
            ("Transport", spec["transport"]),
            ("Target", tool_server_target(server)),
            ("Headers", ", ".join(headers)),
            ("Timeout", f"{spec.get('timeout', '60s')} a call, {spec.get('connectTimeout', '10s')} to connect"),
            ("Refresh", spec.get("refreshInterval", "5m")),
            ("Listed", f"{moment(refreshed)} ({age(refreshed)} ago)" if refreshed else None),
            ("Last error", status.get("lastError")),
        ]
    )
    conditions = status.get("conditions") or []
    _conditions([(c["type"], c["status"] == "True", c.get("message", "")) for c in conditions])
    tools = status.get("tools") or []
    _section(f"Tools ({len(tools)})")
    if tools:
        table(["NAME", "ARGUMENTS", "DESCRIPTION"], [_tool_row(tool) for tool in tools])


def _tool_row(tool: dict[str, Any]) -> list[Any]:
    arguments = ", ".join((tool.get("inputSchema") or {}).get("properties") or {})
    return [tool["name"], arguments, " ".join(str(tool.get("description") or "").split())[:80]]


def _describe_agent(api: ApiClient, agent_id: str) -> None:
    agents = [a for a in api.request("GET", "/api/v1/agents")["items"] if a["id"] == agent_id]
    if not agents:
        raise CliError(f"agent {agent_id} is not connected (pweza get agents lists those that are)", status=404)
    agent = agents[0]
    _fields(
        [
            ("ID", agent["id"]),
            ("Namespace", agent["namespace"]),
            ("Pool", agent["pool"]),
            ("Template", agent.get("template")),
            ("State", agent["state"]),
            ("Slots", f"{agent.get('freeSlots')} free of {agent.get('slots')}"),
            ("Host", f"{agent.get('hostname')} (pid {agent.get('pid')})"),
            ("Replica", agent.get("replica")),
            ("Connected", f"{moment(agent.get('connectedAt'))} ({age(agent.get('connectedAt'))} ago)"),
            ("Last seen", f"{age(agent.get('lastSeen'))} ago"),
            ("Capabilities", ", ".join(agent.get("capabilities") or [])),
            ("Running tasks", ", ".join(agent.get("running") or [])),
        ]
    )


def _describe_task(api: ApiClient, task_id: str) -> None:
    task = api.request("GET", f"/api/v1/tasks/{quote(task_id, safe='')}")
    _fields(
        [
            ("ID", task["id"]),
            ("Namespace", task["namespace"]),
            ("Pool", task["pool"]),
            ("State", task["state"]),
            ("Attempts", task["attempts"]),
            ("Labels", ", ".join(f"{k}={v}" for k, v in (task.get("labels") or {}).items())),
            ("Created", moment(task.get("createdAt"))),
            ("Error", error_text(task["error"]) if task.get("error") else None),
        ]
    )
    _section("Attempts")
    history = task.get("attemptHistory") or []
    table(
        ["ATTEMPT", "AGENT", "STATE", "DURATION", "ERROR"],
        [
            [a["number"], a["agentId"], a["state"], _duration(a["startedAt"], a.get("finishedAt")),
             error_text(a["error"]) if a.get("error") else ""]
            for a in history
        ],
    )  # fmt: skip
    journal = task.get("journal") or []
    if not journal:
        return
    _section("Journal (model and tool calls; replayed: answered from an earlier attempt's record)")
    table(["ATTEMPT", "CALL", "KIND", "WHAT", "TOKENS", "SECONDS", "REPLAYED"], [_call_row(c) for c in journal])
    models = [c for c in journal if c["kind"] == "model" and not c.get("replayed")]
    prompt = sum((c.get("usage") or {}).get("promptTokens", 0) for c in models)
    completion = sum((c.get("usage") or {}).get("completionTokens", 0) for c in models)
    usage = task.get("usage") or {}
    cost = f", costing {usage['cost']:g} {usage.get('currency', '')}" if usage.get("cost") is not None else ""
    print(f"\nPaid for: {len(models)} model call(s), {prompt} prompt + {completion} completion tokens{cost}")


def _call_row(call: dict[str, Any]) -> list[Any]:
    if call["kind"] == "model":
        usage = call.get("usage") or {}
        what, tokens = call.get("model") or "", f"{usage.get('promptTokens', 0)}+{usage.get('completionTokens', 0)}"
    else:
        what, tokens = (call.get("tool") or "") + (" (error)" if call.get("isError") else ""), ""
    return [call["attempt"], call["index"], call["kind"], what, tokens, f"{call.get('seconds', 0.0):.2f}",
            "yes" if call.get("replayed") else ""]  # fmt: skip


def _exists(api: ApiClient, kind: str, name: str, namespace: str) -> bool:
    try:
        api.request("GET", object_path(kind, name), params={"namespace": namespace})
    except CliError as error:
        if error.status == 404:
            return False
        raise
    return True


def _runs_on(step: dict[str, Any]) -> str:
    agent = step.get("agent") or {}
    if agent.get("pool"):
        return f"pool {agent['pool']}"
    if agent.get("template"):
        return f"template {agent['template']}"
    return next((key for key in ("approval", "workflow") if key in step), "")


def _detail(data: dict[str, Any]) -> str:
    shown = {k: v for k, v in data.items() if v not in (None, "", {})}
    return json.dumps(shown)[:80] if shown else ""


def _duration(start: float, end: float | None) -> str:
    import time

    return f"{(end or time.time()) - start:.1f}s"
