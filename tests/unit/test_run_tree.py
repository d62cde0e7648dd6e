"""The live tree of `pweza run`: pending steps say which pool they wait for, and timers move."""

from __future__ import annotations

from typing import Any

import pytest
from rich.console import Console

from pweza.cli import runs
from pweza.cli.runs import RunView, Waiting, render_run

STARTED = 1_000.0


def a_run(*steps: dict[str, Any]) -> dict[str, Any]:
    return {"id": "r1", "workflow": "wordy", "state": "running", "steps": list(steps)}


def text(renderable: Any) -> str:
    console = Console(width=200, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_a_step_whose_task_is_pending_shows_the_pool_it_waits_for_and_its_agents() -> None:
    run = a_run({"name": "count", "state": "running", "startedAt": STARTED, "taskId": "t1"})
    alone = text(render_run(run, {"count": Waiting("counters", 0, 0)}, now=STARTED + 3))
    assert "count  pending  waiting for an agent of pool counters (no agent connected)  3.0s" in alone
    busy = text(render_run(run, {"count": Waiting("counters", 2, 2)}, now=STARTED + 3))
    assert "waiting for an agent of pool counters (2 agents connected, all busy)" in busy
    broken = text(render_run(run, {"count": Waiting("counters", 0, 1)}, now=STARTED + 3))
    assert "(1 connected, 0 ready)" in broken
    taken = text(render_run(run, {}, now=STARTED + 3))
    assert "count  running" in taken and "waiting" not in taken


def test_the_live_view_redraws_its_timer_from_the_clock_without_new_events(monkeypatch: pytest.MonkeyPatch) -> None:
    view = RunView(a_run({"name": "count", "state": "running", "startedAt": STARTED}))
    monkeypatch.setattr(runs.time, "time", lambda: STARTED + 1)
    first = text(view)
    monkeypatch.setattr(runs.time, "time", lambda: STARTED + 7.5)
    later = text(view)
    assert "1.0s" in first and "7.5s" in later


def test_a_tool_call_waiting_for_approval_shows_its_arguments_and_the_command_that_decides() -> None:
    approvals = [
        {"key": "approval-append_note-1", "tool": "append_note", "arguments": {"text": "hi"}, "state": "rejected",
         "decidedBy": "alice"},
        {"key": "approval-append_note-2", "tool": "append_note", "arguments": {"text": "again"}, "state": "pending"},
    ]  # fmt: skip
    run = a_run({"name": "note", "state": "running", "startedAt": STARTED, "taskId": "t1", "toolApprovals": approvals})
    shown = text(render_run(run, {}, now=STARTED + 3))
    assert 'tool append_note({"text": "hi"}) rejected by alice' in shown
    assert (
        'tool append_note({"text": "again"}) waits for approval  → pweza task approve t1 approval-append_note-2'
        in shown
    )


def test_the_live_view_shows_what_a_running_steps_model_is_writing_from_its_reply_pieces() -> None:
    view = RunView(a_run({"name": "note", "state": "running", "startedAt": STARTED, "taskId": "t1"}))
    base = {"step": "note", "taskId": "t1", "attempt": 1}
    view.add_piece({**base, "call": 0, "tool": "append_note"})
    view.add_piece({**base, "call": 0, "arguments": '{"text": '})
    view.add_piece({**base, "call": 0, "arguments": '"sky"}'})
    assert '✎ tool append_note({"text": "sky"}' in text(view)
    view.add_piece({**base, "call": 2, "text": "The note "})
    view.add_piece({**base, "call": 2, "text": "is\nadded."})
    shown = text(view)
    assert "✎ The note is added." in shown and "append_note" not in shown, "a new call starts afresh"
    view.run["steps"][0]["state"] = "succeeded"
    assert "✎" not in text(view), "only running steps show what they write"
