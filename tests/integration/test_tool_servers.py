"""ToolServers through a real manager: their tools listed in status (REST API, `pweza get`,
`pweza describe`), refreshed when the object changes, handed to agents in their Welcome; and
another pool as a tool, a durable delegation through real agents."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from pweza.operator.handlers import Context
from pweza.operator.resources import OperatorConfig
from pweza.operator.syncing import ManagerSync
from pweza.operator.tool_servers import reconcile_tool_server
from pweza.testing.platform import Platform
from pweza.testing.processes import free_port
from pweza.testing.waiting import eventually
from tests.conftest import pool, template
from tests.integration.notes_servers import notes_over_http, stdio_spec
from tests.integration.raw_agent import RawAgent

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
REPO = Path(__file__).resolve().parents[2]
HANDLERS = "tests.integration.tool_handlers:"


def tool_server(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "pweza.ai/v1", "kind": "ToolServer", "metadata": {"name": name}, "spec": spec}


def status_of(platform: Platform, name: str) -> dict[str, Any]:
    with platform.client() as client:
        response = client.get(f"/api/v1/toolservers/{name}")
        response.raise_for_status()
        status: dict[str, Any] = response.json().get("status") or {}
        return status


def ready(platform: Platform, name: str, expected: str) -> dict[str, Any] | None:
    status = status_of(platform, name)
    conditions = {c["type"]: c for c in status.get("conditions") or []}
    return status if conditions.get("Ready", {}).get("status") == expected else None


def cli(platform: Platform, *args: str) -> str:
    command = [sys.executable, "-m", "pweza", *args, "--server", platform.url, "--token", platform.admin_token]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_manager_lists_a_tool_servers_tools_in_its_status_and_the_cli_shows_them(
    platform: Platform, tmp_path: Path
) -> None:
    gone = f"http://127.0.0.1:{free_port()}/mcp"
    with notes_over_http(tmp_path / "http.log") as url:
        platform.apply(
            tool_server("notes", {"transport": "http", "url": gone, "connectTimeout": "2s"}),
            tool_server("local-notes", stdio_spec(tmp_path / "stdio.log")),
        )
        failed = eventually(lambda: ready(platform, "notes", "False"), timeout=30, what="notes to be unreachable")
        assert gone in failed["lastError"] and "ConnectError" in failed["lastError"]
        assert "tools" not in failed

        # Applying a change lists the tools again at once, without waiting for the retry.
        platform.apply(tool_server("notes", {"transport": "http", "url": url, "refreshInterval": "1h"}))
        listed = eventually(lambda: ready(platform, "notes", "True"), timeout=20, what="notes to list its tools")
        assert listed["toolCount"] == 2
        search = next(tool for tool in listed["tools"] if tool["name"] == "search_notes")
        assert "every word" in search["description"]
        assert search["inputSchema"]["required"] == ["query"]
        over_stdio = eventually(lambda: ready(platform, "local-notes", "True"), timeout=30, what="the stdio server")
        assert sorted(tool["name"] for tool in over_stdio["tools"]) == ["append_note", "search_notes"]

        rows = {line.split()[1]: line.split() for line in cli(platform, "get", "toolservers").splitlines()[1:]}
        assert rows["notes"][2:5] == ["http", "2", "yes"]
        assert rows["local-notes"][2:5] == ["stdio", "2", "yes"]
        described = cli(platform, "describe", "ts", "notes")
        assert url in described
        assert "search_notes" in described and "append_note" in described and "query" in described


def test_an_agents_welcome_carries_the_tool_servers_its_template_names(platform: Platform) -> None:
    header = {"name": "Authorization", "valueFrom": {"env": "NOTES_BEARER"}}
    secret_free = {"transport": "http", "url": "http://127.0.0.1:9/mcp", "headers": [header]}
    tools = {"servers": [{"toolServer": "notes", "allow": ["search_notes"]}], "agents": [{"pool": "writers"}]}
    with platform.client() as client:
        early = client.put("/api/v1/agenttemplates/researcher", json=template(name="researcher", tools=tools)).json()
    assert early["warnings"] == [
        "spec.tools.servers[0].toolServer: ToolServer 'notes' does not exist yet; attempts fail until it does",
        "spec.tools.agents[0].pool: AgentPool 'writers' does not exist yet",
    ]
    platform.apply(tool_server("notes", secret_free), pool("research", "researcher"))

    async def welcome() -> dict[str, Any]:
        async with RawAgent(platform.grpc_address, platform.agent_token, "research", slots=1) as agent:
            spec: dict[str, Any] = orjson.loads((await agent.connect()).template_json)
            return spec

    spec = asyncio.run(welcome())
    assert spec["tools"] == {
        "servers": [{"toolServer": "notes", "allow": ["search_notes"], "requireApproval": []}],
        "agents": [{"pool": "writers", "description": "", "inputSchema": {"type": "object"}, "requireApproval": False}],
    }
    assert spec["toolServers"]["notes"]["url"] == "http://127.0.0.1:9/mcp"
    assert spec["toolServers"]["notes"]["headers"] == [{"name": "Authorization", "valueFrom": {"env": "NOTES_BEARER"}}]
    described = cli(platform, "describe", "at", "researcher")
    assert "Tools:         ToolServer notes [search_notes]; pool writers" in described


def test_a_pool_called_as_a_tool_is_a_durable_delegation(platform: Platform, tmp_path: Path) -> None:
    code = {"pythonPath": [str(REPO)]}
    researcher = template(name="researcher", handler=HANDLERS + "research", retry={"limit": 2, "backoff": "50ms"})
    researcher["spec"]["runtime"].update(code)
    writer = template(name="writer", handler=HANDLERS + "write", concurrency=2)
    writer["spec"]["runtime"].update(code)
    platform.apply(researcher, writer, pool("research", "researcher"), pool("writers", "writer"))
    platform.start_agent("research")
    platform.start_agent("writers")
    platform.wait_for_agents(2)
    log = tmp_path / "drafts.log"
    with platform.client() as client:
        payload = {"topic": "tides", "log": str(log), "fail_first_attempt": True}
        task_id = client.post("/api/v1/tasks", json={"pool": "research", "input": payload}).json()["id"]
    task = platform.wait_task(task_id, timeout=60)
    assert task["state"] == "succeeded", task
    output = task["output"]
    assert output["attempt"] == 2
    assert output["tools"] == [
        {
            "name": "write_draft",
            "description": "Have a writer draft a paragraph on a topic.",
            "schema": {"type": "object", "properties": {"topic": {"type": "string"}}, "required": ["topic"]},
        }
    ]
    assert output["drafted_ok"] and json.loads(output["draft"]) == {"draft": "A short paragraph on tides."}
    assert output["refused"]["is_error"] and "no topic given" in output["refused"]["content"]
    # Two attempts of the researcher, one draft written: the retry found the child its first attempt made.
    assert len(log.read_text().splitlines()) == 1
    with platform.client() as client:
        children = client.get("/api/v1/tasks", params={"pool": "writers"}).json()["items"]
    # The draft that succeeded was found again; the refused one was asked for again (the delegation
    # machinery replaces a failed child) and failed again.
    assert sorted(child["state"] for child in children) == ["failed", "failed", "succeeded"]
    assert all(child["parentId"] == task_id for child in children)


class ResourceOnly:
    """The Kubernetes API as the operator's ToolServer reconcile uses it: one resource, its status patches."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body
        self.patches: list[dict[str, Any]] = []

    async def get(self, api_version: str, kind: str, name: str, namespace: str | None) -> dict[str, Any] | None:
        return self.body

    async def patch_status(
        self, api_version: str, kind: str, name: str, namespace: str, status: dict[str, Any]
    ) -> None:
        self.patches.append(status)
        merged = {**(self.body.get("status") or {}), **status}
        self.body["status"] = {key: value for key, value in merged.items() if value is not None}


def test_the_operator_mirrors_a_tool_server_and_copies_the_listing_to_its_status(
    platform: Platform, tmp_path: Path
) -> None:
    resource = {**tool_server("local-notes", stdio_spec(tmp_path / "stdio.log")), "metadata": {
        "name": "local-notes", "namespace": "default", "generation": 3,
    }}  # fmt: skip
    kube = ResourceOnly(resource)

    async def reconcile() -> dict[str, Any]:
        sync = ManagerSync(platform.url, platform.admin_token)
        try:
            ctx = Context(kube=kube, config=OperatorConfig(), manager=sync)  # type: ignore[arg-type]
            await reconcile_tool_server(ctx, "default", "local-notes")
        finally:
            await sync.close()
        return dict(resource.get("status") or {})

    def listed() -> dict[str, Any] | None:
        status = asyncio.run(reconcile())
        return status if status.get("toolCount") else None

    status = eventually(listed, timeout=30, what="the operator to copy the manager's listing")
    assert sorted(tool["name"] for tool in status["tools"]) == ["append_note", "search_notes"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"], ready["observedGeneration"]) == ("True", "ToolsListed", 3)
    assert status_of(platform, "local-notes")["toolCount"] == 2  # registered with the manager by the operator
    patches = len(kube.patches)
    asyncio.run(reconcile())
    assert len(kube.patches) == patches, "a pass that changes nothing patches nothing"
