"""A run's model replies stream live, on the real local model and the example's MCP notes server:
its event stream (SSE) carries each piece of each model call as it is generated (`model.delta`:
the tool call the model writes, then the answer's text), the pieces add up to what the journal
stored, and none of them is stored: the run's stored events hold none."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from pweza.testing.local_model import LocalModel
from pweza.testing.platform import Platform
from tests.llm.test_durable_loop import ASK, noter

pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]

WORKFLOW = {
    "apiVersion": "pweza.ai/v1",
    "kind": "Workflow",
    "metadata": {"name": "noting"},
    "spec": {"steps": [{"name": "note", "agent": {"pool": "notes"}, "input": ASK}]},
}


def read_stream(platform: Platform, run_id: str, into: list[tuple[str, dict[str, Any]]]) -> None:
    """Every event of the run's stream until its end, as (type, data)."""
    headers = {"Authorization": f"Bearer {platform.admin_token}"}
    url = f"{platform.url}/api/v1/runs/{run_id}/events"
    timeout = httpx.Timeout(10, read=300)
    with httpx.stream("GET", url, headers=headers, verify=platform.verify, timeout=timeout) as stream:
        kind = ""
        for line in stream.iter_lines():
            if line.startswith("event:"):
                kind = line.partition(":")[2].strip()
                if kind == "end":
                    return
            elif line.startswith("data:"):
                into.append((kind, json.loads(line.partition(":")[2])))


def test_a_runs_event_stream_carries_its_model_replies_as_they_are_generated(
    platform: Platform, local_model: LocalModel, tmp_path: Path
) -> None:
    noter(platform, local_model, tmp_path / "notes.log")
    platform.apply(WORKFLOW)
    with platform.client() as http:
        run_id = http.post("/api/v1/workflows/noting/runs", json={}).json()["id"]
    events: list[tuple[str, dict[str, Any]]] = []
    reader = threading.Thread(target=read_stream, args=(platform, run_id, events), daemon=True)
    reader.start()
    # The agent starts once the stream is open, so no piece is generated before anyone listens.
    with platform.client() as http:
        assert http.get(f"/api/v1/runs/{run_id}").json()["state"] == "running"
    platform.start_agent("notes")
    reader.join(300)
    assert not reader.is_alive(), "the stream did not end with the run"

    with platform.client() as http:
        run = http.get(f"/api/v1/runs/{run_id}").json()
        stored = http.get(f"/api/v1/runs/{run_id}/events", params={"follow": "false"}).json()["items"]
    assert run["state"] == "succeeded", run
    [step] = run["steps"]
    with platform.client() as http:
        task = http.get(f"/api/v1/tasks/{step['taskId']}").json()
    models = [c for c in task["journal"] if c["kind"] == "model"]
    assert len(models) == 2, task["journal"]

    pieces = [data for kind, data in events if kind == "model.delta"]
    assert pieces and all(p["step"] == "note" and p["taskId"] == step["taskId"] for p in pieces)
    first, last = models[0], models[-1]
    # The first call wrote a tool call: its name, then its arguments, piece by piece.
    tool_pieces = [p for p in pieces if p["call"] == first["index"]]
    assert [p["tool"] for p in tool_pieces if p.get("tool")] == ["append_note"], tool_pieces
    written = "".join(p.get("arguments", "") for p in tool_pieces)
    stored_call = first["response"]["message"]["tool_calls"][0]["function"]["arguments"]
    assert json.loads(written) == json.loads(stored_call)
    # The last call wrote the answer, in more than one piece, adding up to the stored answer.
    answer_pieces = [p["text"] for p in pieces if p["call"] == last["index"] and "text" in p]
    assert len(answer_pieces) > 1
    assert "".join(answer_pieces) == last["response"]["message"]["content"] == task["output"]["answer"]
    assert "model.delta" not in {event["type"] for event in stored}, "a reply piece was stored"
    assert any(kind != "model.delta" for kind, _ in events), "the stored events came too"
