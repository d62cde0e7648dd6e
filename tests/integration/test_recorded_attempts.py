"""Every delivery of a task to an agent is a recorded attempt with a number of its own.

An assignment is written before it is sent, so a manager killed right after handing a task out
has it on record: the manager that recovers never hands the same attempt number out again,
and GET /api/v1/tasks/{id} shows every attempt that ran (docs/workflows.md, "Attempts").
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from pweza.domain.kinds import parse_manifest
from pweza.domain.tasks import Attempt, Task
from pweza.manager.service import Manager
from pweza.manager.sessions import AgentSession, AssignmentMessage, DelegatedResult, TaskRequest
from pweza.testing.platform import Platform
from tests.conftest import pool, template

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def executions(log: Path) -> list[str]:
    """The idempotency keys (task/attempt) of every execution the handler began."""
    text = log.read_text() if log.exists() else ""
    return [line.split()[1] for line in text.splitlines() if line.startswith("start ")]


def test_a_manager_killed_right_after_an_assignment_never_hands_that_attempt_out_again(
    platform: Platform, tmp_path: Path
) -> None:
    platform.apply(template("slow", "pweza.testing.handlers:record_runs", concurrency=1), pool("slow", "slow"))
    for name in ("first", "second"):
        platform.start_agent("slow", agent_id=name)
    platform.wait_for_agents(2)
    runs = tmp_path / "runs.log"
    with platform.client() as client:
        body = {"pool": "slow", "input": {"log": str(runs), "seconds": 3}}
        task_id = client.post("/api/v1/tasks", json=body).json()["id"]
    deadline = time.monotonic() + 30
    while not executions(runs):  # the handler has begun: kill the manager at once
        assert time.monotonic() < deadline, "the task never started"
        time.sleep(0.001)
    platform.kill_manager()
    platform.start_manager()
    finished = platform.wait_task(task_id, timeout=60)
    assert finished["state"] == "succeeded"
    time.sleep(1.0)  # an execution started elsewhere would have logged its start by now
    with platform.client() as client:
        history = client.get(f"/api/v1/tasks/{task_id}").json()["attemptHistory"]
    ran = executions(runs)
    assert len(ran) == len(set(ran)), f"one attempt number ran twice: {ran}"
    assert sorted(ran) == sorted(attempt["idempotencyKey"] for attempt in history), (ran, history)
    assert [attempt["number"] for attempt in history] == list(range(1, len(history) + 1))


class Recorder:
    """An agent link that only records what it is sent."""

    def __init__(self) -> None:
        self.sent: list[AssignmentMessage] = []
        self.got = asyncio.Event()

    def send_assignments(self, items: list[AssignmentMessage]) -> None:
        self.sent.extend(items)
        self.got.set()

    def send_cancel(self, task_ids: list[str], reason: str) -> None:
        pass

    def send_drain(self, grace_seconds: float) -> None:
        pass

    def send_delegate_result(self, request_id: str, task: DelegatedResult) -> None:
        pass

    def send_results_ack(self, attempts: list[tuple[str, int]]) -> None:
        pass

    def close(self) -> None:
        pass


class HeldWrites:
    """Attempt writes wait until `release` (a disk that is slow just now), whether an attempt is
    written alone or with the new task it was handed out with; `arrived` is set once the first
    of them is waiting."""

    def __init__(self, manager: Manager) -> None:
        self.arrived = asyncio.Event()
        self._open = asyncio.Event()
        self._save_attempts = manager.store.save_attempts
        self._insert_tasks = manager.store.insert_tasks
        manager.store.save_attempts = self._slow_attempts  # type: ignore[method-assign]
        manager.store.insert_tasks = self._slow_insert  # type: ignore[method-assign]

    async def _slow_attempts(self, attempts: list[Attempt]) -> None:
        await self._slow_disk()
        await self._save_attempts(attempts)

    async def _slow_insert(self, tasks: list[Task], attempts: Sequence[Attempt] = ()) -> None:
        if attempts:
            await self._slow_disk()
        await self._insert_tasks(tasks, attempts)

    async def _slow_disk(self) -> None:
        self.arrived.set()
        await self._open.wait()

    def release(self) -> None:
        self._open.set()


async def test_an_assignment_leaves_only_once_its_attempt_is_written(manager: Manager) -> None:
    for document in (template(), pool()):
        await manager.registry.apply(parse_manifest(document))
    writes = HeldWrites(manager)
    link = Recorder()
    session = AgentSession("agent", "default", "echo", "echoer", [], 1, link)
    manager.dispatcher.connect(session, [])
    submitted = asyncio.ensure_future(manager.dispatcher.submit([TaskRequest("default", "echo", "x")]))
    await asyncio.wait_for(writes.arrived.wait(), 5)
    [handed_out] = session.running
    assert link.sent == []  # handed out in memory, not yet on record: not sent
    assert [a.number for a in await manager.store.list_attempts(handed_out)] == []
    writes.release()
    [task] = await asyncio.wait_for(submitted, 5)
    await asyncio.wait_for(link.got.wait(), 5)
    assert [(item.task_id, item.attempt) for item in link.sent] == [(task.id, 1)]
    assert [a.number for a in await manager.store.list_attempts(task.id)] == [1]


async def test_an_attempt_with_a_timeout_is_sent_and_its_timeout_counts_from_then(manager: Manager) -> None:
    for document in (template(), pool()):
        await manager.registry.apply(parse_manifest(document))
    link = Recorder()
    session = AgentSession("agent", "default", "echo", "echoer", [], 1, link)
    manager.dispatcher.connect(session, [])
    before = time.time()
    [task] = await manager.dispatcher.submit([TaskRequest("default", "echo", "x", timeout_seconds=30.0)])
    await asyncio.wait_for(link.got.wait(), 5)
    [item] = link.sent
    assert (item.task_id, item.attempt, item.timeout_seconds) == (task.id, 1, 30.0)
    lease = manager.dispatcher._leases[task.id]
    assert lease.holder is session and lease.deadline is not None and lease.deadline >= before + 30.0
    manager.dispatcher.on_result(session, task.id, 1, "done", None)
    assert (await manager.dispatcher.wait(task.id, 5)).output == "done"


async def test_a_task_cancelled_before_its_assignment_left_is_not_sent(manager: Manager) -> None:
    for document in (template(), pool()):
        await manager.registry.apply(parse_manifest(document))
    writes = HeldWrites(manager)
    link = Recorder()
    session = AgentSession("agent", "default", "echo", "echoer", [], 1, link)
    manager.dispatcher.connect(session, [])
    submitted = asyncio.ensure_future(
        manager.dispatcher.submit([TaskRequest("default", "echo", "first"), TaskRequest("default", "echo", "second")])
    )
    await asyncio.wait_for(writes.arrived.wait(), 5)  # the first is handed out, its attempt on its way
    [handed_out] = session.running
    await manager.dispatcher.cancel(handed_out)
    writes.release()
    [first, second] = await asyncio.wait_for(submitted, 5)
    assert first.id == handed_out
    assert (await manager.dispatcher.wait(first.id, 5)).state.value == "cancelled"
    # Its slot came back: the next task goes to the agent, and only that one was ever sent.
    await asyncio.wait_for(link.got.wait(), 5)
    assert [(item.task_id, item.attempt) for item in link.sent] == [(second.id, 1)]
    assert session.running == {second.id}
