"""The columns of `pweza get`: objects and connected agents, with READY and AGE as kubectl has them."""

from __future__ import annotations

import calendar
import time
from collections import Counter
from typing import Any

from pweza.cli.client import ApiClient, CliError
from pweza.cli.output import Column, age, show
from pweza.domain.kind_names import plural_of

AGENT_NAMES = frozenset({"agent", "agents", "ag"})
# An agent in one of these states takes work; a draining (or unhealthy) one does not.
READY_STATES = frozenset({"idle", "busy"})


def split_kind_name(kind: str, name: str | None) -> tuple[str, str | None]:
    """KIND NAME or KIND/NAME, as kubectl takes them."""
    if "/" in kind:
        if name is not None:
            raise CliError(f"give KIND/NAME or KIND NAME, not both ({kind} {name})", code=2)
        kind, name = kind.split("/", 1)
    return kind, name


def object_path(kind: str, name: str) -> str:
    return f"/api/v1/{plural_of(kind)}/{name}"


def created_at(item: dict[str, Any]) -> float | None:
    """The object's creationTimestamp (RFC 3339, UTC) as seconds since the epoch."""
    stamp = item.get("metadata", {}).get("creationTimestamp")
    if not stamp:
        return None
    return float(calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")))


def desired_replicas(pool: dict[str, Any]) -> int:
    spec = pool.get("spec", {})
    replicas = spec.get("replicas")
    return int(replicas if replicas is not None else spec.get("scaling", {}).get("minReplicas", 1))


def ready_agents(api: ApiClient) -> Counter[tuple[str, str]]:
    """How many agents of each (namespace, pool) take work now."""
    agents = api.request("GET", "/api/v1/agents")["items"]
    return Counter((a["namespace"], a["pool"]) for a in agents if a.get("state") in READY_STATES)


def _key(item: dict[str, Any]) -> tuple[str, str]:
    return (item["metadata"]["namespace"], item["metadata"]["name"])


def _runtime_detail(template: dict[str, Any]) -> str:
    runtime = template["spec"]["runtime"]
    for key in ("handler", "url", "model", "modelRef"):
        if runtime.get(key):
            return str(runtime[key])
    return " ".join(runtime.get("command") or [])


def tool_server_target(server: dict[str, Any]) -> str:
    """Its URL or its command: never a header or environment value, which may be secrets."""
    spec = server["spec"]
    return str(spec.get("url") or " ".join(spec.get("command") or []))


def tool_server_ready(server: dict[str, Any]) -> str:
    """Whether the manager could list its tools: yes, no, or unknown before it tried."""
    conditions = (server.get("status") or {}).get("conditions") or []
    ready = next((c for c in conditions if c.get("type") == "Ready"), None)
    return "unknown" if ready is None else ("yes" if ready.get("status") == "True" else "no")


def _reachable(model_config: dict[str, Any]) -> str:
    reachable = (model_config.get("status") or {}).get("reachable")
    return "?" if reachable is None else ("yes" if reachable else "no")


def object_columns(kind: str, ready: Counter[tuple[str, str]]) -> list[Column]:
    first = [Column("NAMESPACE", lambda i: i["metadata"]["namespace"]), Column("NAME", lambda i: i["metadata"]["name"])]
    last = [Column("AGE", lambda i: age(created_at(i))), Column("GEN", lambda i: i["metadata"].get("generation"), True)]
    if kind == "AgentTemplate":
        return [
            *first,
            Column("RUNTIME", lambda i: i["spec"]["runtime"]["kind"]),
            Column("CONCURRENCY", lambda i: i["spec"].get("concurrency")),
            Column("TIMEOUT", lambda i: i["spec"].get("timeout")),
            *last,
            Column("RUNS", _runtime_detail, True),
        ]
    if kind == "AgentPool":
        return [
            *first,
            Column("TEMPLATE", lambda i: i["spec"]["templateRef"]),
            Column(
                "READY", lambda i: f"{ready[(i['metadata']['namespace'], i['metadata']['name'])]}/{desired_replicas(i)}"
            ),
            Column("MIN", lambda i: i["spec"].get("scaling", {}).get("minReplicas")),
            Column("MAX", lambda i: i["spec"].get("scaling", {}).get("maxReplicas")),
            *last,
        ]
    if kind == "ToolServer":
        return [
            *first,
            Column("TRANSPORT", lambda i: i["spec"]["transport"]),
            Column("TOOLS", lambda i: (i.get("status") or {}).get("toolCount", "")),
            Column("READY", tool_server_ready),
            *last,
            Column("TARGET", tool_server_target, True),
        ]
    if kind == "ModelConfig":
        return [
            *first,
            Column("MODEL", lambda i: i["spec"]["model"]),
            Column("URL", lambda i: i["spec"]["baseUrl"]),
            Column("REACHABLE", _reachable),
            *last,
            Column("FALLBACKS", lambda i: ",".join(i["spec"].get("fallbacks") or []), True),
            Column("LAST-ERROR", lambda i: (i.get("status") or {}).get("lastError", ""), True),
        ]
    return [
        *first,
        Column("STEPS", lambda i: len(i["spec"].get("steps", []))),
        *last,
        Column("INPUTS", lambda i: ",".join(i["spec"].get("inputs") or {}), True),
    ]


def show_objects(api: ApiClient, kind: str, items: list[dict[str, Any]], output: str, *, single: bool) -> None:
    ready = ready_agents(api) if kind == "AgentPool" and output in ("table", "wide") else Counter()
    show(items, output, object_columns(kind, ready), lambda i: f"{kind.lower()}/{i['metadata']['name']}", single=single)


AGENT_COLUMNS = [
    Column("NAMESPACE", lambda a: a["namespace"]),
    Column("POOL", lambda a: a["pool"]),
    Column("ID", lambda a: a["id"]),
    Column("STATE", lambda a: a["state"]),
    Column("READY", lambda a: "yes" if a["state"] in READY_STATES else "no"),
    Column("RUNNING", lambda a: f"{len(a.get('running') or [])}/{a.get('slots')}"),
    Column("AGE", lambda a: age(a.get("connectedAt"))),
    Column("HOST", lambda a: a.get("hostname"), True),
    Column("PID", lambda a: a.get("pid"), True),
    Column("REPLICA", lambda a: a.get("replica") or "", True),
    Column("LAST-SEEN", lambda a: age(a.get("lastSeen")), True),
]


def show_agents(api: ApiClient, agent_id: str | None, namespace: str | None, output: str) -> None:
    agents = api.request("GET", "/api/v1/agents")["items"]
    agents = [a for a in agents if namespace is None or a["namespace"] == namespace]
    if agent_id is not None:
        agents = [a for a in agents if a["id"] == agent_id]
        if not agents:
            raise CliError(f"agent {agent_id} is not connected", status=404)
    show(agents, output, AGENT_COLUMNS, lambda a: f"agent/{a['id']}", single=agent_id is not None)


def _duration(run: dict[str, Any]) -> str:
    return f"{(run.get('finishedAt') or time.time()) - run['createdAt']:.1f}s"


RUN_COLUMNS = [
    Column("RUN", lambda r: r["id"]),
    Column("WORKFLOW", lambda r: r["workflow"]),
    Column("STATE", lambda r: r["state"]),
    Column("AGE", lambda r: age(r["createdAt"])),
    Column("DURATION", _duration),
    Column("NAMESPACE", lambda r: r["namespace"], True),
    Column("GEN", lambda r: r.get("generation"), True),
    Column("RETRIES", lambda r: r.get("retries"), True),
    Column("ERROR", lambda r: str(r.get("error") or "")[:80], True),
]
