"""requireApproval on the real local model and the example's real MCP notes server: a tool call
the template marks waits for a person before it runs, is shown on the task with its arguments,
and runs once approved; a rejected one never runs and the model is told who rejected it and
why. The request is durable: a manager SIGKILLed while a call waits does not lose it or ask
twice, and the decision made after the restart is the one the call gets."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from pweza.testing.local_model import LocalModel
from pweza.testing.platform import Platform
from tests.llm.test_durable_loop import noter, notes_appended, submit

pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]


def approving_noter(platform: Platform, local_model: LocalModel, log: Path) -> None:
    noter(platform, local_model, log, require_approval=True)


def a_call_waiting(platform: Platform, local_model: LocalModel, tmp_path: Path) -> tuple[Path, str, dict[str, Any]]:
    """A noter whose append_note needs approval, asked to append a note: its log, the task and
    the approval it waits for."""
    log = tmp_path / "notes.log"
    approving_noter(platform, local_model, log)
    platform.start_agent("notes")
    platform.wait_for_agents(1)
    task_id = submit(platform)
    return log, task_id, wait_for_approval_request(platform, task_id)


def task_view(platform: Platform, task_id: str) -> dict[str, Any]:
    with platform.client() as http:
        response = http.get(f"/api/v1/tasks/{task_id}")
        response.raise_for_status()
        view: dict[str, Any] = response.json()
    return view


def wait_for_approval_request(platform: Platform, task_id: str, timeout: float = 200.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    view: dict[str, Any] = {}
    while time.monotonic() < deadline:
        view = task_view(platform, task_id)
        pending = [a for a in view.get("toolApprovals") or [] if a["state"] == "pending"]
        if pending:
            return pending[0]
        assert view["state"] in ("pending", "running"), view
        time.sleep(0.2)
    raise TimeoutError(f"task {task_id} asked for no approval within {timeout}s: {view}")


def decide(platform: Platform, task_id: str, key: str, verdict: str, comment: str) -> Any:
    with platform.client() as http:
        return http.post(f"/api/v1/tasks/{task_id}/approvals/{key}/{verdict}", json={"comment": comment})


def test_a_tool_call_that_needs_approval_waits_and_runs_once_approved(
    platform: Platform, local_model: LocalModel, tmp_path: Path
) -> None:
    log, task_id, waiting = a_call_waiting(platform, local_model, tmp_path)
    assert waiting["tool"] == "append_note" and waiting["key"] == "approval-append_note-1", waiting
    assert isinstance(waiting["arguments"], dict) and waiting["arguments"], waiting
    time.sleep(1.5)  # long enough for a call that did not wait to have run
    assert notes_appended(log) == 0, "append_note ran before it was approved"
    assert task_view(platform, task_id)["state"] == "running"

    assert decide(platform, task_id, "approval-append_note-9", "approve", "").status_code == 404
    approved = decide(platform, task_id, waiting["key"], "approve", "fine")
    assert approved.status_code == 200, approved.text
    assert approved.json()["state"] == "approved" and approved.json()["decidedBy"], approved.json()
    again = decide(platform, task_id, waiting["key"], "reject", "too late")
    assert again.status_code == 409, again.text

    task = platform.wait_task(task_id, timeout=300)
    assert task["state"] == "succeeded", task.get("error")
    assert notes_appended(log) == 1
    view = task_view(platform, task_id)
    tools = [c for c in view["journal"] if c["kind"] == "tool"]
    assert [(c["tool"], c["isError"]) for c in tools] == [("append_note", False)], view["journal"]
    assert [(a["key"], a["state"], a["comment"]) for a in view["toolApprovals"]] == [
        (waiting["key"], "approved", "fine")
    ]


def test_a_waiting_call_survives_a_manager_kill_and_a_rejection_never_runs(
    platform: Platform, local_model: LocalModel, tmp_path: Path
) -> None:
    log, task_id, waiting = a_call_waiting(platform, local_model, tmp_path)
    platform.kill_manager()
    platform.start_manager()
    platform.wait_for_agents(1)
    rejected = decide(platform, task_id, waiting["key"], "reject", "not today")
    assert rejected.status_code == 200, rejected.text

    task = platform.wait_task(task_id, timeout=300)
    assert task["state"] == "succeeded", task.get("error")
    assert notes_appended(log) == 0, "a rejected call ran"
    view = task_view(platform, task_id)
    assert [(a["key"], a["state"]) for a in view["toolApprovals"]] == [(waiting["key"], "rejected")], (
        "the request was lost or asked for twice across the restart"
    )
    tools = [c for c in view["journal"] if c["kind"] == "tool" and not c["replayed"]]
    assert tools and all(c["isError"] for c in tools), view["journal"]
    told = tools[-1]["response"]["content"]
    assert "rejected by" in told and "not today" in told, told
