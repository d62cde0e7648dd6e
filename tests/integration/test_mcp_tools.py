"""The MCP tools provider against the llm-research example's server, a real `mcp` SDK server,
over streamable HTTP and over stdio: listing, calling, the allow-list, tool errors, and what an
unreachable server says."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pweza.agent import TaskContext
from pweza.agent.template import TemplateError
from pweza.agent.tools import (
    AgentTools,
    CombinedTools,
    McpTools,
    ToolNameClash,
    ToolServerUnavailable,
    read_tool_server,
    tools_for_attempt,
)
from pweza.testing.processes import free_port
from tests.integration.notes_servers import notes_over_http, stdio_spec

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "appended.log"


@pytest.fixture(scope="module")
def http_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with notes_over_http(tmp_path_factory.mktemp("http") / "appended.log") as url:
        yield url


@pytest.fixture(params=["http", "stdio"])
def notes(request: pytest.FixtureRequest, log: Path) -> dict[str, object]:
    if request.param == "http":
        return {"transport": "http", "url": request.getfixturevalue("http_url")}
    return stdio_spec(log)


async def test_the_tools_are_listed_with_their_schemas_and_a_call_answers(notes: dict[str, object]) -> None:
    tools = McpTools(read_tool_server("notes", notes))
    try:
        listed = {tool.name: tool for tool in await tools.list_tools()}
        assert set(listed) == {"search_notes", "append_note"}
        assert "every word" in listed["search_notes"].description
        assert listed["search_notes"].input_schema["properties"]["query"]["type"] == "string"
        outcome = await tools.call_tool("search_notes", {"query": "spring tides"})
        assert not outcome.is_error
        assert json.loads(outcome.content)["notes"] == [
            "Spring tides come at new and full moon, when Sun and Moon pull in line."
        ]
    finally:
        await tools.aclose()


async def test_a_tool_outside_the_allow_list_is_neither_listed_nor_run(log: Path) -> None:
    tools = McpTools(read_tool_server("notes", stdio_spec(log)), allow=["search_notes"])
    try:
        assert [tool.name for tool in await tools.list_tools()] == ["search_notes"]
        outcome = await tools.call_tool("append_note", {"text": "should not be written"})
        assert outcome.is_error
        assert "no tool 'append_note'" in outcome.content
        assert not log.exists()
    finally:
        await tools.aclose()


async def test_a_side_effect_runs_once_per_call(log: Path) -> None:
    tools = McpTools(read_tool_server("notes", stdio_spec(log)))
    try:
        for text in ("first", "second"):
            outcome = await tools.call_tool("append_note", {"text": text})
            assert not outcome.is_error, outcome.content
    finally:
        await tools.aclose()
    assert [json.loads(line)["text"] for line in log.read_text().splitlines()] == ["first", "second"]


async def test_a_failing_tool_is_an_error_outcome_the_model_can_read(notes: dict[str, object]) -> None:
    tools = McpTools(read_tool_server("notes", notes))
    try:
        failed = await tools.call_tool("search_notes", {"query": "   "})
        assert failed.is_error
        assert "the query is empty" in failed.content
        unknown = await tools.call_tool("no_such_tool", {})
        assert unknown.is_error
        # The connection survives both: the next call works.
        assert not (await tools.call_tool("search_notes", {"query": "octopuses"})).is_error
    finally:
        await tools.aclose()


async def test_an_unreachable_http_server_raises_naming_the_server_and_url() -> None:
    url = f"http://127.0.0.1:{free_port()}/mcp"
    tools = McpTools(read_tool_server("gone", {"transport": "http", "url": url, "connectTimeout": "5s"}))
    with pytest.raises(ToolServerUnavailable, match=rf"ToolServer gone: .*{url}.*ConnectError"):
        await tools.list_tools()
    await tools.aclose()


async def test_a_stdio_command_that_is_not_an_mcp_server_raises() -> None:
    spec = {"transport": "stdio", "command": [sys.executable, "-c", "print('hello')"], "connectTimeout": "5s"}
    tools = McpTools(read_tool_server("silent", spec))
    with pytest.raises(ToolServerUnavailable, match="ToolServer silent"):
        await tools.list_tools()
    await tools.aclose()


async def test_a_header_from_the_environment_reaches_the_server_and_no_message(tmp_path: Path) -> None:
    secret = "s3cret-token-value"
    spec = {
        "transport": "http",
        "headers": [{"name": "Authorization", "valueFrom": {"env": "NOTES_BEARER"}}],
        "connectTimeout": "5s",
    }
    with notes_over_http(tmp_path / "appended.log", token=secret) as url:
        allowed = McpTools(
            read_tool_server("notes", {**spec, "url": url}), environ={"NOTES_BEARER": f"Bearer {secret}"}
        )
        try:
            assert len(await allowed.list_tools()) == 2
        finally:
            await allowed.aclose()
        refused = McpTools(read_tool_server("notes", {**spec, "url": url}), environ={"NOTES_BEARER": "Bearer wrong"})
        with pytest.raises(ToolServerUnavailable) as raised:
            await refused.list_tools()
        await refused.aclose()
        assert "wrong" not in str(raised.value) and secret not in str(raised.value)
        unset = McpTools(read_tool_server("notes", {**spec, "url": url}), environ={})
        with pytest.raises(ToolServerUnavailable, match="NOTES_BEARER is not set"):
            await unset.list_tools()
        await unset.aclose()


async def test_combined_servers_show_every_tool_and_a_clash_names_both(http_url: str, log: Path) -> None:
    over_http = McpTools(read_tool_server("notes-http", {"transport": "http", "url": http_url}), allow=["search_notes"])
    over_stdio = McpTools(read_tool_server("notes-stdio", stdio_spec(log)), allow=["append_note"])
    combined = CombinedTools({"ToolServer notes-http": over_http, "ToolServer notes-stdio": over_stdio})
    try:
        assert sorted(tool.name for tool in await combined.list_tools()) == ["append_note", "search_notes"]
        assert not (await combined.call_tool("append_note", {"text": "combined"})).is_error
        assert log.read_text().count("\n") == 1
    finally:
        await combined.aclose()
    clashing = CombinedTools(
        {
            "ToolServer a": McpTools(read_tool_server("a", {"transport": "http", "url": http_url})),
            "ToolServer b": McpTools(
                read_tool_server("b", {"transport": "http", "url": http_url}), allow=["append_note"]
            ),
        }
    )
    try:
        with pytest.raises(ToolNameClash, match="'append_note' is offered by both ToolServer a and ToolServer b"):
            await clashing.list_tools()
    finally:
        await clashing.aclose()


async def test_an_attempts_tools_come_from_the_welcomes_spec(log: Path) -> None:
    delegated: list[tuple[str, object, str | None]] = []

    async def delegator(pool: str, payload: object, key: str | None) -> object:
        delegated.append((pool, payload, key))
        return {"draft": "ok"}

    spec = {
        "tools": {
            "servers": [
                {"toolServer": "notes", "allow": ["search_notes", "append_note"], "requireApproval": ["append_note"]}
            ],
            "agents": [{"pool": "writers", "name": "write_draft", "requireApproval": True}],
        },
        "toolServers": {"notes": stdio_spec(log)},
    }
    tools = tools_for_attempt(spec, TaskContext({}, task_id="t1", delegator=delegator))
    try:
        assert sorted(tool.name for tool in await tools.list_tools()) == ["append_note", "search_notes", "write_draft"]
        assert [name for name in ("search_notes", "append_note", "write_draft") if tools.requires_approval(name)] == [
            "append_note",
            "write_draft",
        ]
        assert not (await tools.call_tool("write_draft", {"topic": "tides"})).is_error
        assert not (await tools.call_tool("write_draft", {"topic": "reefs"})).is_error
    finally:
        await tools.aclose()
    assert delegated == [
        ("writers", {"topic": "tides"}, "tool-write_draft-1"),
        ("writers", {"topic": "reefs"}, "tool-write_draft-2"),
    ]


def test_a_template_naming_a_missing_tool_server_is_refused() -> None:
    spec = {"tools": {"servers": [{"toolServer": "absent"}]}, "toolServers": {}}
    with pytest.raises(TemplateError, match="ToolServer 'absent' does not exist"):
        tools_for_attempt(spec, TaskContext({}))


async def test_a_server_back_after_a_restart_is_reconnected_to(tmp_path: Path) -> None:
    port = free_port()
    with notes_over_http(tmp_path / "first.log", port=port) as url:
        tools = McpTools(read_tool_server("notes", {"transport": "http", "url": url, "connectTimeout": "5s"}))
        assert not (await tools.call_tool("append_note", {"text": "before"})).is_error
    with pytest.raises(ToolServerUnavailable, match="ToolServer notes"):
        await tools.call_tool("append_note", {"text": "while it is away"})
    with notes_over_http(tmp_path / "second.log", port=port):
        try:
            assert not (await tools.call_tool("append_note", {"text": "after"})).is_error
        finally:
            await tools.aclose()
    assert (tmp_path / "second.log").read_text().count("\n") == 1


def test_credentials_in_a_url_stay_out_of_messages() -> None:
    config = read_tool_server("notes", {"transport": "http", "url": "http://user:pa55@127.0.0.1:1/mcp?key=k"})
    assert config.target == "http://127.0.0.1:1/mcp"


async def test_attempts_of_one_agent_share_its_sessions_and_one_closing_leaves_the_other_working(log: Path) -> None:
    spec = {"tools": {"servers": [{"toolServer": "notes"}]}, "toolServers": {"notes": stdio_spec(log)}}
    agent_tools = AgentTools(spec)
    first = agent_tools.for_attempt(TaskContext({}, task_id="t1"))
    second = agent_tools.for_attempt(TaskContext({}, task_id="t2"))
    try:
        results = await asyncio.gather(
            first.call_tool("append_note", {"text": "from t1"}), second.call_tool("append_note", {"text": "from t2"})
        )
        assert not any(result.is_error for result in results), results
        await first.aclose()
        assert not (await second.call_tool("append_note", {"text": "t2 again"})).is_error
    finally:
        await agent_tools.aclose()
    assert sorted(json.loads(line)["text"] for line in log.read_text().splitlines()) == [
        "from t1",
        "from t2",
        "t2 again",
    ]
