"""The agent runtime and the model client against a real language model (SmolLM2-135M on
llama.cpp's server, temperature 0, few tokens). Its judgement is poor and its structure
reliable: these tests assert structure, not wisdom."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from pweza.agent.chat import ChatChunk, ChatClient, ChatResult, Endpoint
from pweza.agent.model_loop import AgentLoop, LoopSettings
from pweza.testing.local_model import LocalModel
from pweza.testing.platform import Platform
from tests.conftest import pool
from tests.integration.notes_servers import notes_over_http
from tests.model_providers import failing_provider
from tests.tool_stand_ins import StandInTools

# Generous: a tool call takes 10-15 s on a loaded 2-core machine.
pytestmark = pytest.mark.timeout(180)
ANSWER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 40}, "sunny": {"type": "boolean"}},
    "required": ["city", "sunny"],
    "additionalProperties": False,
}


def model_config(name: str, base_url: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "pweza.ai/v1",
        "kind": "ModelConfig",
        "metadata": {"name": name},
        "spec": {"baseUrl": base_url, "model": LocalModel.model, "temperature": 0, "timeout": "120s", **spec},
    }


def agent_template(name: str, model_ref: str, **runtime: Any) -> dict[str, Any]:
    return {
        "apiVersion": "pweza.ai/v1",
        "kind": "AgentTemplate",
        "metadata": {"name": name},
        "spec": {
            "runtime": {"kind": "agent", "modelRef": model_ref, "maxTokens": 24, **runtime},
            "retry": {"limit": 0},
            "timeout": "150s",
        },
    }


@pytest.fixture
async def client(local_model: LocalModel) -> AsyncIterator[ChatClient]:
    chat = ChatClient([Endpoint(name="local", base_url=local_model.base_url, model=local_model.model, temperature=0)])
    yield chat
    await chat.aclose()


def pweza_cli(platform: Platform, *args: str) -> str:
    env = {**os.environ, "PWEZA_URL": platform.url, "PWEZA_TOKEN": platform.admin_token}
    done = subprocess.run([sys.executable, "-m", "pweza", *args], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def answer_task(platform: Platform, pool_name: str, text: str) -> dict[str, Any]:
    with platform.client() as http:
        task_id = http.post("/api/v1/tasks", json={"pool": pool_name, "input": text}).json()["id"]
    return platform.wait_task(task_id, timeout=150)


@pytest.mark.integration
def test_an_agent_pool_chats_with_the_local_model(platform: Platform, local_model: LocalModel) -> None:
    platform.apply(
        model_config("local", local_model.base_url),
        agent_template("chatter", "local", systemPrompt="Answer in one short sentence."),
        pool("chat", "chatter"),
    )
    platform.start_agent("chat")
    platform.wait_for_agents(1)
    task = answer_task(platform, "chat", "Say hello.")
    assert task["state"] == "succeeded", task.get("error")
    output = task["output"]
    assert isinstance(output["answer"], str) and output["answer"].strip()
    assert [call["kind"] for call in output["calls"]] == ["model"]
    usage = output["usage"]
    assert usage["promptTokens"] > 0 and 0 < usage["completionTokens"] <= 24
    assert usage == {**usage, "modelCalls": 1, "toolCalls": 0}
    assert output["calls"][0]["usage"] == {
        "promptTokens": usage["promptTokens"],
        "completionTokens": usage["completionTokens"],
    }


@pytest.mark.integration
def test_a_failing_first_model_falls_back_to_the_second(platform: Platform, local_model: LocalModel) -> None:
    with failing_provider(503) as flaky:
        platform.apply(
            model_config("flaky", flaky.base_url, fallbacks=["local"]),
            model_config("local", local_model.base_url),
            agent_template("resilient", "flaky"),
            pool("resilient", "resilient"),
        )
        platform.start_agent("resilient")
        platform.wait_for_agents(1)
        task = answer_task(platform, "resilient", "Name a colour.")
        with platform.client() as http:
            listed = {o["metadata"]["name"]: o["status"] for o in http.get("/api/v1/modelconfigs").json()["items"]}
        shown = pweza_cli(platform, "get", "mc", "-o", "wide")
        described = pweza_cli(platform, "describe", "mc", "flaky")
    rows = {line.split()[1]: line.split() for line in shown.splitlines()[1:]}
    assert rows["local"][2:5] == [LocalModel.model, local_model.base_url, "yes"]
    assert rows["flaky"][4] == "no" and "local" in rows["flaky"], "unreachable, falling back to local"
    fields = {line.split(":", 1)[0]: line.split(":", 1)[1].strip() for line in described.splitlines() if ":" in line}
    assert (fields["Fallbacks"], fields["Reachable"], fields["API key"]) == ("local", "no", "<none>")
    assert "503" in fields["Last error"] and described.rstrip().endswith("resilient"), "used by the template"
    assert listed["local"]["reachable"] is True and listed["local"]["models"] == [LocalModel.model]
    assert listed["flaky"]["reachable"] is False and "503" in listed["flaky"]["lastError"]
    assert task["state"] == "succeeded", task.get("error")
    call = task["output"]["calls"][0]["response"]
    assert call["endpoint"] == "local"
    assert [f["endpoint"] for f in call["failures"]] == ["flaky"] and "503" in call["failures"][0]["error"]
    chats = [r for r in flaky.requests if r["path"].endswith("/chat/completions")]
    assert len(chats) == 1 and chats[0]["body"]["model"] == LocalModel.model


@pytest.mark.integration
@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_an_agent_pool_calls_a_tool_of_an_mcp_tool_server(
    platform: Platform, local_model: LocalModel, tmp_path: Path, transport: str
) -> None:
    # The example's notes server: over stdio, started by the agent from the ToolServer's command;
    # over streamable HTTP, a server of its own on a loopback port that the agent connects to.
    log = tmp_path / "appended.log"
    server = Path(__file__).parents[2] / "examples" / "llm-research" / "notes_server.py"
    with contextlib.ExitStack() as stack:
        if transport == "http":
            spec: dict[str, Any] = {"transport": "http", "url": stack.enter_context(notes_over_http(log))}
        else:
            spec = {"transport": "stdio", "command": [sys.executable, str(server), "--stdio"],
                    "env": [{"name": "NOTES_LOG", "value": str(log)}]}  # fmt: skip
        tool_server = {
            "apiVersion": "pweza.ai/v1",
            "kind": "ToolServer",
            "metadata": {"name": "notes"},
            "spec": {**spec, "timeout": "60s"},
        }
        template = agent_template("noter", "local", systemPrompt="Use the tools.", maxTurns=2, maxTokens=48)
        template["spec"]["tools"] = {"servers": [{"toolServer": "notes", "allow": ["append_note"]}]}
        platform.apply(model_config("local", local_model.base_url), tool_server, template, pool("notes", "noter"))
        platform.start_agent("notes")
        platform.wait_for_agents(1)
        task = answer_task(platform, "notes", "Append the note: the sky is blue.")
    assert task["state"] == "succeeded", task.get("error")
    kinds = [call["kind"] for call in task["output"]["calls"]]
    assert kinds == ["model", "tool", "model"], task["output"]
    tool_call = task["output"]["calls"][1]
    assert tool_call["response"]["name"] == "append_note" and not tool_call["response"]["isError"], tool_call
    assert len(log.read_text().splitlines()) == 1  # the side effect happened once, in the MCP server


async def test_the_client_streams_the_reply_token_by_token(client: ChatClient) -> None:
    request = {"messages": [{"role": "user", "content": "Count from one to five."}], "max_tokens": 16}
    events = [event async for event in client.stream(request)]
    chunks, final = events[:-1], events[-1]
    assert isinstance(final, ChatResult) and all(isinstance(c, ChatChunk) for c in chunks)
    assert len(chunks) > 1, "more than one piece"
    assert "".join(c.content for c in chunks) == final.content
    assert 0 < final.usage.completion_tokens <= 16 and final.usage.prompt_tokens > 0


async def test_a_tool_call_round_trip_through_the_loop(client: ChatClient) -> None:
    tools = StandInTools()
    settings = LoopSettings(system_prompt="Use the tools.", max_turns=2, max_tokens=48, temperature=0)
    output = await AgentLoop(client, tools, settings).run("What is the weather in Paris?")
    assert len(tools.calls) == 1
    name, arguments = tools.calls[0]
    assert name == "get_weather" and isinstance(arguments.get("city"), str)
    assert [c["kind"] for c in output["calls"]] == ["model", "tool", "model"]
    assert output["calls"][1]["response"]["content"].startswith("sunny and 21 C")
    assert isinstance(output["answer"], str)
    assert output["usage"]["modelCalls"] == 2 and output["usage"]["toolCalls"] == 1


async def test_a_structured_answer_follows_the_schema(client: ChatClient) -> None:
    settings = LoopSettings(max_tokens=40, temperature=0, output_schema=ANSWER_SCHEMA)
    output = await AgentLoop(client, None, settings).run("Paris is sunny today. Describe it as JSON.")
    answer = output["answer"]
    assert list(Draft202012Validator(ANSWER_SCHEMA).iter_errors(answer)) == []
    assert set(answer) == {"city", "sunny"}
