"""The agent loop's journal holds under SIGKILL, on the real local model and the example's real
MCP notes server (stdio): whether the agent or the manager dies after `append_note` ran, the
note is appended once, and the task's journal shows the calls an attempt replayed instead of
making them again."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pweza.testing.local_model import LocalModel
from pweza.testing.platform import Platform
from tests.conftest import pool
from tests.llm.test_local_model import agent_template, model_config

pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "llm-research"
ASK = "Append the note: the sky is blue."


def noter(platform: Platform, local_model: LocalModel, log: Path, *, require_approval: bool = False) -> None:
    tool_server = {
        "apiVersion": "pweza.ai/v1",
        "kind": "ToolServer",
        "metadata": {"name": "notes"},
        "spec": {"transport": "stdio", "command": [sys.executable, str(EXAMPLE / "notes_server.py"), "--stdio"],
                 "env": [{"name": "NOTES_LOG", "value": str(log)}], "timeout": "60s"},
    }  # fmt: skip
    template = agent_template("noter", "local", systemPrompt="Use the tools.", maxTurns=2, maxTokens=48)
    server: dict[str, Any] = {"toolServer": "notes", "allow": ["append_note"]}
    if require_approval:
        server["requireApproval"] = ["append_note"]
    template["spec"]["tools"] = {"servers": [server]}
    template["spec"]["retry"] = {"limit": 2, "backoff": "100ms"}
    template["spec"]["timeout"] = "300s"
    platform.apply(model_config("local", local_model.base_url), tool_server, template, pool("notes", "noter"))


def submit(platform: Platform) -> str:
    with platform.client() as http:
        response = http.post("/api/v1/tasks", json={"pool": "notes", "input": ASK})
        response.raise_for_status()
        task_id: str = response.json()["id"]
    return task_id


def journal_of(platform: Platform, task_id: str) -> list[dict[str, Any]]:
    with platform.client() as http:
        calls: list[dict[str, Any]] = http.get(f"/api/v1/tasks/{task_id}").json().get("journal") or []
    return calls


def wait_for_tool_record(platform: Platform, task_id: str, timeout: float = 200.0) -> list[dict[str, Any]]:
    """Until the journal holds the first model call and the tool call: the side effect happened
    and is recorded, the next model call is being made."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        calls = journal_of(platform, task_id)
        if [c["kind"] for c in calls][:2] == ["model", "tool"]:
            return calls
        time.sleep(0.1)
    raise TimeoutError(f"the tool call of {task_id} was not journaled within {timeout}s")


def notes_appended(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_a_retry_after_the_agent_is_killed_replays_the_tool_call(
    platform: Platform, local_model: LocalModel, tmp_path: Path
) -> None:
    log = tmp_path / "notes.log"
    noter(platform, local_model, log)
    first = platform.start_agent("notes")
    platform.wait_for_agents(1)
    task_id = submit(platform)
    recorded = wait_for_tool_record(platform, task_id)
    assert recorded[1]["tool"] == "append_note" and not recorded[1]["isError"], recorded
    assert notes_appended(log) == 1
    first.send_signal(signal.SIGKILL)  # mid-way through the second model call
    first.wait(10)
    platform.start_agent("notes")
    task = platform.wait_task(task_id, timeout=300)
    assert task["state"] == "succeeded", task.get("error")
    assert task["attempts"] == 2
    assert notes_appended(log) == 1, "append_note ran again on the retry"
    calls = journal_of(platform, task_id)
    retried = [(c["index"], c["kind"], c["replayed"]) for c in calls if c["attempt"] == 2]
    assert retried == [(0, "model", True), (1, "tool", True), (2, "model", False)], calls
    usage = task["output"]["usage"]
    assert usage["replayedCalls"] == 2
    # The tokens the retry paid for are its own call's only: the replayed call was paid by attempt 1.
    last = next(c for c in calls if c["attempt"] == 2 and c["index"] == 2)
    assert usage["promptTokens"] == last["usage"]["promptTokens"]


def test_a_manager_killed_mid_loop_loses_no_call_and_repeats_no_tool(
    platform: Platform, local_model: LocalModel, tmp_path: Path
) -> None:
    log = tmp_path / "notes.log"
    noter(platform, local_model, log)
    platform.start_agent("notes")
    platform.wait_for_agents(1)
    task_id = submit(platform)
    wait_for_tool_record(platform, task_id)
    platform.kill_manager()  # SIGKILL while the agent makes its second model call
    platform.start_manager()
    task = platform.wait_task(task_id, timeout=300)
    assert task["state"] == "succeeded", task.get("error")
    assert notes_appended(log) == 1, "append_note ran again after the manager restarted"
    calls = journal_of(platform, task_id)
    tools = [c for c in calls if c["kind"] == "tool"]
    assert all(c["replayed"] for c in tools if c["attempt"] > 1), calls
    assert [c["index"] for c in calls if c["attempt"] == task["attempts"]] == [0, 1, 2], calls
