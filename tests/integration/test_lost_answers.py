"""The database goes away in the middle of a call: before committing it, or after committing it
but before answering. Either way nothing may be lost: a claimed task still runs (once), a run
still finishes, a run taken over for a command is still driven. And a task that two replicas
both believed theirs for a moment (its agent moved) still advances the run waiting for it.

`test_replicas.py` shows the same with the database really stopped, but where the stop lands
is luck; here the fault is placed exactly, by making one call on a real PostgreSQL database (or
SQLite) fail before or after the real work. The agent is an in-process stand-in on the
dispatcher's own agent interface (`ScriptedAgent`): it completes each assignment it gets and
records it, so a run twice or a never run is seen.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import pytest

from pweza.domain.kinds import parse_manifest
from pweza.domain.runs import RunState
from pweza.domain.tasks import TaskState
from pweza.manager.config import Settings
from pweza.manager.replica_set import SharedReplicas
from pweza.manager.service import Manager
from pweza.manager.sessions import AgentSession, AssignmentMessage, DelegatedResult, TaskRequest
from pweza.store.postgres import PostgresStore, ReplicaDatabase
from pweza.store.sqlite import SqliteStore
from tests.conftest import pool, template

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
_WAIT = 20.0  # the bound on every wait here (the take-back comes after a heartbeat: TTL/3)


class LostAnswer(ConnectionResetError):
    """What the caller sees when the database went away in the middle of its call."""


def failing_once(real: Callable[..., Awaitable[Any]], *, commit: bool, when: int = 1) -> Callable[..., Any]:
    """`real`, except that its `when`-th call fails: with the work done (`commit`, the answer lost)
    or without it (the database went away before committing)."""
    calls = itertools.count(1)

    async def call(*args: Any, **kwargs: Any) -> Any:
        if next(calls) != when:
            return await real(*args, **kwargs)
        if commit:
            await real(*args, **kwargs)
        raise LostAnswer("connection reset while waiting for the answer")

    return call


class ScriptedAgent:
    """Stands in for an agent's stream: succeeds every assignment at once, echoing its input
    (or, with `hold`, keeps each one running until told)."""

    def __init__(self, manager: Manager, name: str, slots: int = 4, *, hold: bool = False) -> None:
        self.manager = manager
        self.hold = hold
        self.executed: list[str] = []
        self.held: list[AssignmentMessage] = []
        self.session = AgentSession(name, "default", "work", "worker", [], slots, self)

    def connect(self, in_flight: list[tuple[str, int]] | None = None) -> None:
        self.manager.dispatcher.connect(self.session, in_flight or [])

    def send_assignments(self, items: list[AssignmentMessage]) -> None:
        for item in items:
            self.executed.append(item.idempotency_key)
            if self.hold:
                self.held.append(item)
            else:
                asyncio.get_running_loop().call_soon(self._complete, item)

    def _complete(self, item: AssignmentMessage) -> None:
        dispatcher = self.manager.dispatcher
        dispatcher.on_result(self.session, item.task_id, item.attempt, item.input, None)
        dispatcher.on_credit(self.session, 1)

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


class Start(Protocol):
    async def __call__(self, name: str, **settings: Any) -> Manager: ...


@pytest.fixture
async def start(postgres_database: str) -> AsyncIterator[Start]:
    """Starts a manager replica on the test's PostgreSQL database, with the workload's objects."""
    managers: list[Manager] = []

    async def start_replica(name: str, **overrides: Any) -> Manager:
        settings = Settings(database_url=postgres_database, replica_id=name, replica_ttl_seconds=1.5, **overrides)
        manager = Manager(PostgresStore(postgres_database, pool_size=4, max_overflow=2), settings)
        await manager.start()
        managers.append(manager)
        for document in _objects():
            await manager.registry.apply(parse_manifest(document))
        return manager

    yield start_replica
    for manager in reversed(managers):
        await manager.stop()


def _database(manager: Manager) -> ReplicaDatabase:
    """The shared database the replica coordinates through (the calls to make fail)."""
    assert isinstance(manager.replicas, SharedReplicas)
    return manager.replicas.database


def _objects() -> list[dict[str, Any]]:
    work = {"agent": {"pool": "work"}}
    return [
        template("worker"),
        pool("work", "worker"),
        {
            "apiVersion": "pweza.ai/v1",
            "kind": "Workflow",
            "metadata": {"name": "pair"},
            "spec": {
                "steps": [
                    {"name": "first", **work, "input": {"n": 1}},
                    {"name": "second", **work, "depends": ["first"], "input": {"n": "${{ steps.first.output.n + 1 }}"}},
                ],
                "outputs": {"n": "${{ steps.second.output.n }}"},
            },
        },
        {
            "apiVersion": "pweza.ai/v1",
            "kind": "Workflow",
            "metadata": {"name": "gated"},
            "spec": {
                "steps": [
                    {"name": "review", "approval": {"message": "go?"}},
                    {"name": "after", **work, "depends": ["review"]},
                ]
            },
        },
    ]


async def _run_finished(manager: Manager, run_id: str) -> RunState:
    async with asyncio.timeout(_WAIT):
        while True:
            run = await manager.store.get_run(run_id)
            assert run is not None
            if run.state.terminal:
                return run.state
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("commit", [True, False], ids=["answer-lost", "never-committed"])
async def test_a_claim_that_fails_still_runs_each_task_once(start: Start, commit: bool) -> None:
    manager = await start("replica-a")
    shared = _database(manager)
    shared.claim = failing_once(shared.claim, commit=commit)  # type: ignore[method-assign]
    submitted = await manager.dispatcher.submit(
        [TaskRequest(namespace="default", pool="work", input={"n": n}) for n in range(3)]
    )
    # Connected after the submission, the agent's free slots make the first claim take all three.
    agent = ScriptedAgent(manager, "agent-a")
    agent.connect()
    for task in submitted:
        finished = await manager.dispatcher.wait(task.id, _WAIT)
        assert finished.state is TaskState.SUCCEEDED
    # Each task ran once, as its first attempt: the claim whose answer was lost counted the
    # attempt in the database, and taking the task back hands out that same attempt.
    assert sorted(agent.executed) == sorted(f"{task.id}/1" for task in submitted)
    stored = await manager.store.get_tasks([task.id for task in submitted])
    assert {task.attempts for task in stored} == {1}


@pytest.mark.parametrize("commit", [True, False], ids=["answer-lost", "never-committed"])
async def test_a_run_whose_save_fails_is_reloaded_and_finishes(start: Start, commit: bool) -> None:
    manager = await start("replica-a")
    agent = ScriptedAgent(manager, "agent-a")
    agent.connect()
    shared = _database(manager)
    # The second save is the one that records the first step's result and starts the second.
    shared.save_run = failing_once(shared.save_run, commit=commit, when=2)  # type: ignore[method-assign]
    run = await manager.workflows.start_run("default", "pair", {})
    assert await _run_finished(manager, run.id) is RunState.SUCCEEDED
    stored = await manager.store.get_run(run.id)
    assert stored is not None and stored.outputs == {"n": 2}
    assert len(agent.executed) == len(set(agent.executed)) == 2, agent.executed


async def test_a_run_whose_save_fails_on_sqlite_is_reloaded_and_finishes(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'pweza.db'}")
    manager = Manager(SqliteStore(tmp_path / "pweza.db"), settings)
    await manager.start()
    try:
        for document in _objects():
            await manager.registry.apply(parse_manifest(document))
        ScriptedAgent(manager, "agent-a").connect()
        manager.store.save_run = failing_once(manager.store.save_run, commit=False, when=2)  # type: ignore[method-assign]
        run = await manager.workflows.start_run("default", "pair", {})
        assert await _run_finished(manager, run.id) is RunState.SUCCEEDED
    finally:
        await manager.stop()


async def test_a_run_taken_over_for_a_command_whose_answer_is_lost_is_still_driven(start: Start) -> None:
    first = await start("replica-a")
    second = await start("replica-b")
    ScriptedAgent(second, "agent-b").connect()
    run = await first.workflows.start_run("default", "gated", {})
    shared = _database(second)
    shared.take_run = failing_once(shared.take_run, commit=True)  # type: ignore[method-assign]
    with pytest.raises(LostAnswer):
        await second.workflows.decide(run.id, "review", True, "tester")
    # The database says replica-b drives the run now; replica-b finds that out and drives it.
    async with asyncio.timeout(_WAIT):
        while True:
            if second.workflows.drives(run.id):
                break
            await asyncio.sleep(0.05)
    await second.workflows.decide(run.id, "review", True, "tester")
    assert await _run_finished(second, run.id) is RunState.SUCCEEDED


async def test_a_task_finished_by_the_replica_it_moved_to_still_advances_the_run(start: Start) -> None:
    """Replica A drives a run and holds its step's task; the agent running it moves to replica B,
    which adopts the attempt and records the result while A still has its own copy. A's copy is
    refused when its lease runs out, and the run, driven by A, carries on."""
    a = await start("replica-a", lease_seconds=1.0)
    b = await start("replica-b")
    on_a = ScriptedAgent(a, "agent-1", hold=True)
    on_a.connect()
    run = await a.workflows.start_run("default", "pair", {})
    async with asyncio.timeout(_WAIT):
        while True:
            if on_a.held:
                break
            await asyncio.sleep(0.05)
    [item] = on_a.held
    # The agent's stream moves to B and lists the attempt it runs; A sees its stream end.
    on_b = ScriptedAgent(b, "agent-1")
    on_b.connect([(item.task_id, item.attempt)])
    a.dispatcher.disconnect("agent-1", on_a.session)
    async with asyncio.timeout(_WAIT):
        while True:
            stored = await b.store.get_task(item.task_id)
            if stored is not None and stored.owner == "replica-b":
                break
            await asyncio.sleep(0.05)
    b.dispatcher.on_result(on_b.session, item.task_id, item.attempt, item.input, None)
    assert await _run_finished(a, run.id) is RunState.SUCCEEDED
    assert on_a.executed == [f"{item.task_id}/1"], "the first step ran once"
    assert [key.split(".")[1] for key in on_b.executed] == ["second"]
