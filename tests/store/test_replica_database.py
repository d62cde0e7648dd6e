"""What manager replicas sharing one PostgreSQL database rely on from `ReplicaDatabase`.

PostgreSQL only (SQLite serves one manager): every test gets a fresh database on the
session's throwaway server, and two `ReplicaDatabase`s over two `PostgresStore`s on it, so the
two "replicas" commit in separate transactions as real ones do.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Callable

import pytest
from sqlalchemy import text

from pweza.domain.runs import Run, RunEvent, RunState, StepRun, StepState
from pweza.domain.tasks import Attempt, ErrorType, Task, TaskError, TaskState
from pweza.store.postgres import (
    CANCEL_CHANNEL,
    DONE_CHANNEL,
    DRAIN_CHANNEL,
    PENDING_CHANNEL,
    PostgresStore,
    ReplicaDatabase,
)
from pweza.testing import eventually_async

_WAIT = 5.0  # the bound on every wait for something another connection does
_CANCELLED = TaskError(ErrorType.CANCELLED, "cancelled by a test", retryable=False)

Replicas = tuple[ReplicaDatabase, ReplicaDatabase]


@pytest.fixture
async def replicas(postgres_database: str) -> AsyncIterator[Replicas]:
    async with contextlib.AsyncExitStack() as stack:
        pair: list[ReplicaDatabase] = []
        for _ in range(2):
            store = PostgresStore(postgres_database, pool_size=4, max_overflow=2)
            await store.open()
            stack.push_async_callback(store.close)
            pair.append(ReplicaDatabase(store))
        yield pair[0], pair[1]


def make_task(
    number: int,
    *,
    pool: str = "p",
    priority: int = 0,
    state: TaskState = TaskState.PENDING,
    owner: str | None = None,
    attempts: int = 0,
    not_before: float = 0.0,
) -> Task:
    return Task(
        id=f"task-{number:04d}",
        namespace="default",
        pool=pool,
        input={"n": number},
        priority=priority,
        seq=number,
        state=state,
        attempts=attempts,
        created_at=time.time(),
        not_before=not_before,
        owner=owner,
    )


def make_run(number: int, *, owner: str | None, state: RunState = RunState.RUNNING) -> Run:
    return Run(
        id=f"run-{number:03d}",
        seq=number,
        namespace="default",
        workflow="wf",
        generation=1,
        spec={"steps": [{"name": "a"}]},
        inputs={"n": number},
        state=state,
        created_at=time.time(),
        finished_at=None if state is RunState.RUNNING else time.time(),
        owner=owner,
    )


async def stored(database: ReplicaDatabase, task_id: str) -> Task:
    task = await database.store.get_task(task_id)
    assert task is not None
    return task


class Inbox:
    """A Listener's callbacks: every item notified (a payload is newline-separated items), every
    raw payload, and how often it connected."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, str]] = []
        self.payloads: list[str] = []
        self.connects = 0
        self._changed = asyncio.Event()

    def on_message(self, channel: str, payload: str) -> None:
        self.payloads.append(payload)
        self.messages.extend((channel, item) for item in payload.split("\n"))
        self._changed.set()

    async def on_connect(self) -> None:
        self.connects += 1
        self._changed.set()

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        async with asyncio.timeout(_WAIT):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    async def receive(self, channel: str, payload: str) -> None:
        await self.wait_until(lambda: (channel, payload) in self.messages)


@contextlib.asynccontextmanager
async def listening(database: ReplicaDatabase) -> AsyncIterator[Inbox]:
    inbox = Inbox()
    listener = database.listener(inbox.on_message, inbox.on_connect)
    listener.start()
    try:
        await inbox.wait_until(lambda: inbox.connects > 0)
        yield inbox
    finally:
        await listener.stop()


# -- claims ---------------------------------------------------------------------
async def test_concurrent_claims_split_the_pending_tasks_without_overlap(replicas: Replicas) -> None:
    a, b = replicas
    await a.insert_tasks([make_task(n) for n in range(1, 201)])
    async with asyncio.timeout(30):
        mine, theirs = await asyncio.gather(a.claim("a", "default", "p", 150), b.claim("b", "default", "p", 150))
    assert len(mine) <= 150 and len(theirs) <= 150
    assert {t.id for t in mine}.isdisjoint({t.id for t in theirs})
    assert {t.id for t in mine} | {t.id for t in theirs} == {make_task(n).id for n in range(1, 201)}
    for owner, claimed in (("a", mine), ("b", theirs)):
        for task in claimed:
            assert (task.owner, task.state, task.attempts) == (owner, TaskState.ASSIGNED, 1)
        rows = await a.store.get_tasks([task.id for task in claimed])
        assert {(row.owner, row.state, row.attempts) for row in rows} == {(owner, TaskState.ASSIGNED, 1)}
    assert await a.claim("a", "default", "p", 10) == []


async def test_claim_takes_highest_priority_then_oldest_and_skips_tasks_not_yet_due(replicas: Replicas) -> None:
    a, _ = replicas
    later = time.time() + 3600
    await a.insert_tasks(
        [
            make_task(1, priority=0),
            make_task(2, priority=5),
            make_task(3, priority=0),
            make_task(4, priority=5),
            make_task(5, priority=9, not_before=later),
            make_task(6, priority=1),
            make_task(7, priority=9, pool="other"),
        ]
    )
    first = await a.claim("a", "default", "p", 3)
    assert [t.id for t in first] == ["task-0002", "task-0004", "task-0006"]
    rest = await a.claim("a", "default", "p", 10)
    assert [t.id for t in rest] == ["task-0001", "task-0003"]
    assert (await stored(a, "task-0005")).state is TaskState.PENDING
    assert (await stored(a, "task-0005")).owner is None


async def test_a_claim_counts_the_next_attempt_on_top_of_earlier_ones(replicas: Replicas) -> None:
    a, _ = replicas
    await a.insert_tasks([make_task(1, attempts=2)])
    [task] = await a.claim("a", "default", "p", 1)
    assert task.attempts == 3 and (await stored(a, task.id)).attempts == 3


# -- writes of task state ----------------------------------------------------------
async def test_a_write_by_a_replica_that_does_not_own_the_task_is_refused(replicas: Replicas) -> None:
    a, b = replicas
    await a.insert_tasks([make_task(1)])
    await a.claim("a", "default", "p", 1)
    stale = make_task(1, state=TaskState.SUCCEEDED, owner="b", attempts=7)
    stale.output = {"from": "b"}
    attempt = Attempt(stale.id, 7, "agent-b", time.time(), TaskState.SUCCEEDED, time.time())
    assert await b.write("b", [stale], [attempt]) == {stale.id}
    # An attempt alone, for a task the writer does not own, is refused too.
    assert await b.write("b", [], [Attempt(stale.id, 1, "agent-b", time.time())]) == {stale.id}
    row = await stored(a, stale.id)
    assert (row.state, row.owner, row.attempts, row.output) == (TaskState.ASSIGNED, "a", 1, None)
    assert await a.store.list_attempts(stale.id) == []


async def test_a_write_by_the_owner_applies_state_and_attempts(replicas: Replicas) -> None:
    a, _ = replicas
    await a.insert_tasks([make_task(1), make_task(2)])
    [task, other] = await a.claim("a", "default", "p", 2)
    now = time.time()
    task.state, task.agent_id, task.started_at = TaskState.RUNNING, "agent-1", now
    attempt = Attempt(task.id, task.attempts, "agent-1", now)
    assert await a.write("a", [task], [attempt]) == set()
    row = await stored(a, task.id)
    assert (row.state, row.agent_id, row.started_at, row.owner) == (TaskState.RUNNING, "agent-1", now, "a")
    assert [(x.number, x.agent_id, x.state) for x in await a.store.list_attempts(task.id)] == [
        (1, "agent-1", TaskState.RUNNING)
    ]
    # A write naming owned and foreign tasks applies the owned ones and names the others.
    task.state, task.output, task.finished_at = TaskState.SUCCEEDED, {"ok": True}, now + 1
    attempt.state, attempt.finished_at = TaskState.SUCCEEDED, now + 1
    foreign = make_task(99, owner="a")
    assert await a.write("a", [task, foreign], [attempt]) == {foreign.id}
    row = await stored(a, task.id)
    assert (row.state, row.output) == (TaskState.SUCCEEDED, {"ok": True})
    assert [x.state for x in await a.store.list_attempts(task.id)] == [TaskState.SUCCEEDED]
    assert (await stored(a, other.id)).state is TaskState.ASSIGNED


async def test_a_write_of_the_owners_older_copy_does_not_undo_a_cancel_request(replicas: Replicas) -> None:
    a, b = replicas
    await a.insert_tasks([make_task(1)])
    [task] = await a.claim("a", "default", "p", 1)
    requested = await b.request_cancel(task.id, _CANCELLED, time.time())
    assert requested is not None and requested.cancel_requested and requested.state is TaskState.ASSIGNED
    assert task.cancel_requested is False
    task.state, task.agent_id = TaskState.RUNNING, "agent-1"
    assert await a.write("a", [task], []) == set()
    row = await stored(a, task.id)
    assert (row.state, row.agent_id, row.cancel_requested) == (TaskState.RUNNING, "agent-1", True)


async def test_a_released_task_can_be_claimed_by_another_replica(replicas: Replicas) -> None:
    a, b = replicas
    await a.insert_tasks([make_task(1)])
    [task] = await a.claim("a", "default", "p", 1)
    task.state, task.owner, task.attempts = TaskState.PENDING, None, task.attempts - 1
    assert await a.write("a", [task], []) == set()
    [taken] = await b.claim("b", "default", "p", 1)
    assert (taken.id, taken.owner, taken.attempts) == (task.id, "b", 1)
    assert await a.write("a", [task], []) == {task.id}


# -- adoption and orphans ---------------------------------------------------------
async def test_adopt_moves_only_active_attempts_with_the_same_number(replicas: Replicas) -> None:
    a, b = replicas
    held = [
        make_task(1, state=TaskState.RUNNING, owner="a", attempts=1),
        make_task(2, state=TaskState.ASSIGNED, owner="a", attempts=1),
        make_task(3, state=TaskState.RUNNING, owner="a", attempts=2),  # retried since
        make_task(4, state=TaskState.FAILED, owner="a", attempts=1),
        make_task(5, state=TaskState.PENDING, owner=None, attempts=1),  # given up on, released
        make_task(6, state=TaskState.RUNNING, owner="a", attempts=1),  # handed to another agent
        make_task(7, state=TaskState.RUNNING, owner="a", attempts=1, pool="other"),  # of another pool
        make_task(8, state=TaskState.ASSIGNED, owner="a", attempts=1),  # handed to no agent yet
    ]
    for task in held[:5]:
        task.agent_id = "mover"
    held[5].agent_id = "someone-else"
    held[6].agent_id = "mover"
    await a.store.insert_tasks(held)
    refs = [(make_task(n).id, 1) for n in range(1, 9)] + [("task-missing", 1)]
    adopted = await b.adopt("b", refs, agent_id="mover", namespace="default", pool="p")
    assert sorted(t.id for t in adopted) == ["task-0001", "task-0002"]
    assert all(t.owner == "b" for t in adopted)
    owners = {t.id: t.owner for t in await a.store.get_tasks([make_task(n).id for n in range(1, 9)])}
    assert owners == {
        "task-0001": "b",
        "task-0002": "b",
        "task-0003": "a",
        "task-0004": "a",
        "task-0005": None,
        "task-0006": "a",
        "task-0007": "a",
        "task-0008": "a",
    }
    assert await b.adopt("b", [], agent_id="mover", namespace="default", pool="p") == []


async def test_orphans_are_tasks_of_replicas_whose_liveness_expired(replicas: Replicas) -> None:
    a, b = replicas
    await b.heartbeat("b", 60)
    await a.heartbeat("a", 0.5)
    await a.store.insert_tasks(
        [
            make_task(1, state=TaskState.RUNNING, owner="a", attempts=1),
            make_task(2, state=TaskState.ASSIGNED, owner="a", attempts=1),
            make_task(3, state=TaskState.SUCCEEDED, owner="a", attempts=1),
            make_task(4, state=TaskState.RUNNING, owner="b", attempts=1),
        ]
    )
    assert await b.orphans("b", 10) == []
    assert "a" in dict(await b.replicas())

    async def a_presumed_dead() -> bool:
        return "a" not in dict(await b.replicas())

    await eventually_async(a_presumed_dead, what="a's liveness of 0.5 s to expire")
    taken = await b.orphans("b", 10)
    assert sorted(t.id for t in taken) == ["task-0001", "task-0002"]
    assert {t.owner for t in taken} == {"b"}
    assert (await stored(a, "task-0003")).owner == "a"
    # Taken once: the next look finds nothing, and the late replica's writes are refused.
    assert await b.orphans("b", 10) == []
    assert await a.write("a", [make_task(1, state=TaskState.SUCCEEDED, owner="a")], []) == {"task-0001"}


async def test_tasks_of_a_retired_replica_are_orphans_at_once(replicas: Replicas) -> None:
    a, b = replicas
    await a.heartbeat("a", 60)
    assert await a.hold("duties", "a", 60)
    await a.store.insert_tasks([make_task(1, state=TaskState.RUNNING, owner="a", attempts=1)])
    assert await b.orphans("b", 10) == []
    await a.retire("a")
    assert [t.id for t in await b.orphans("b", 10)] == ["task-0001"]
    assert await b.hold("duties", "b", 60)
    assert "a" not in dict(await b.replicas())


async def test_replicas_lists_the_live_ones_with_the_time_they_have_left(replicas: Replicas) -> None:
    a, b = replicas
    await a.heartbeat("a", 30)
    await b.heartbeat("b", 60)
    assert await a.hold("duties", "a", 60)  # a lease, not a replica
    left = dict(await b.replicas())
    assert sorted(left) == ["a", "b"]
    assert 0 < left["a"] <= 30 and 30 < left["b"] <= 60


# -- the agent directory -------------------------------------------------------------
def _agent(agent_id: str, pool: str = "p", **described: object) -> dict[str, object]:
    return {"id": agent_id, "pool": pool, **described}


async def test_every_replica_sees_the_agents_each_live_replica_published(replicas: Replicas) -> None:
    a, b = replicas
    await a.heartbeat("a", 0.5)
    await b.heartbeat("b", 60)
    await a.publish_agents("a", [_agent("x1"), _agent("x2", state="busy")])
    await b.publish_agents("b", [_agent("y1", pool="q")])
    assert await b.agents() == [
        ("a", {"id": "x1", "pool": "p"}),
        ("a", {"id": "x2", "pool": "p", "state": "busy"}),
        ("b", {"id": "y1", "pool": "q"}),
    ]
    # A publication replaces the replica's earlier one (x1 left; x2 moved to b).
    await a.publish_agents("a", [_agent("x3")])
    await b.publish_agents("b", [_agent("y1", pool="q"), _agent("x2")])
    assert [(replica, agent["id"]) for replica, agent in await a.agents()] == [("b", "x2"), ("a", "x3"), ("b", "y1")]
    # A replica whose liveness expired is not listed, and its rows go with the next publication.

    async def only_bs_listed() -> bool:
        return [agent["id"] for _, agent in await a.agents()] == ["x2", "y1"]

    await eventually_async(only_bs_listed, what="a's agents to go with its liveness of 0.5 s")
    await b.publish_agents("b", [])
    await a.heartbeat("a", 60)
    assert await a.agents() == []


async def test_a_retired_replicas_agents_are_gone_at_once(replicas: Replicas) -> None:
    a, b = replicas
    await a.heartbeat("a", 60)
    await a.publish_agents("a", [_agent("x1")])
    await a.retire("a")
    await a.heartbeat("a", 60)  # back under the same name: its old agents are not resurrected
    assert await b.agents() == []


async def test_a_drain_is_forwarded_to_the_replica_the_agent_is_connected_to(replicas: Replicas) -> None:
    a, b = replicas
    await a.heartbeat("a", 60)
    await a.publish_agents("a", [_agent("x1")])
    async with listening(a) as inbox:
        found = await b.request_drain("x1", 12.5)
        assert found is not None and found[0] == "a"
        await inbox.receive(DRAIN_CHANNEL, "x1 12.5")
        assert await b.request_drain("nobody", 12.5) is None


# -- leases ------------------------------------------------------------------------
async def test_a_lease_is_held_by_one_replica_until_its_ttl_passes(replicas: Replicas) -> None:
    a, b = replicas
    assert await a.hold("duties", "a", 0.5)
    assert not await b.hold("duties", "b", 0.5)
    assert await a.hold("duties", "a", 0.5)  # renewing
    assert not await b.hold("duties", "b", 0.5)
    await eventually_async(lambda: b.hold("duties", "b", 60), what="a's lease of 0.5 s to pass, for b to take it")
    assert not await a.hold("duties", "a", 60)
    assert await a.hold("other-duty", "a", 60)  # leases are independent


# -- sequence blocks -----------------------------------------------------------------
async def test_sequence_blocks_never_overlap_and_start_above_existing_numbers(replicas: Replicas) -> None:
    a, b = replicas
    await a.store.insert_tasks([make_task(n) for n in (3, 500, 41)])
    async with asyncio.timeout(30):
        starts = await asyncio.gather(*(database.next_block("tasks", 100) for _ in range(10) for database in (a, b)))
    blocks = sorted((range(start, start + 100) for start in starts), key=lambda block: block.start)
    assert blocks[0].start == 501
    for earlier, later in itertools.pairwise(blocks):
        assert earlier.stop <= later.start
    # Runs count apart from tasks.
    await a.store.save_run(make_run(7, owner=None), [], [])
    assert await b.next_block("runs", 10) == 8
    assert await a.next_block("runs", 10) == 18


# -- runs -------------------------------------------------------------------------
async def test_save_run_is_refused_while_another_replica_drives_the_run(replicas: Replicas) -> None:
    a, b = replicas
    run = make_run(1, owner="a")
    assert await a.save_run("a", run.id, run, [StepRun(run.id, "a")], [RunEvent(run.id, 1.0, "RunStarted")], [])
    stale = make_run(1, owner="b", state=RunState.FAILED)
    step = StepRun(run.id, "a", state=StepState.FAILED)
    task = make_task(1)
    assert not await b.save_run("b", run.id, stale, [step], [RunEvent(run.id, 2.0, "RunFailed")], [task])
    loaded = await a.store.get_run(run.id)
    assert loaded is not None and (loaded.state, loaded.owner) == (RunState.RUNNING, "a")
    assert [s.state for s in await a.store.get_steps(run.id)] == [StepState.PENDING]
    assert [e.type for e in await a.store.list_events(run.id)] == ["RunStarted"]
    assert await a.store.get_tasks([task.id]) == []
    # The owner goes on.
    run.state, run.finished_at = RunState.SUCCEEDED, time.time()
    assert await a.save_run("a", run.id, run, [], [RunEvent(run.id, 3.0, "RunSucceeded")], [])
    # Finished: anyone may write it (a late command's events), and becomes its owner.
    assert await b.save_run("b", run.id, None, [], [RunEvent(run.id, 4.0, "Noted")], [])
    loaded = await a.store.get_run(run.id)
    assert loaded is not None and (loaded.state, loaded.owner) == (RunState.SUCCEEDED, "b")
    assert [e.type for e in await a.store.list_events(run.id)] == ["RunStarted", "RunSucceeded", "Noted"]


async def test_save_run_of_an_undriven_run_makes_the_saver_its_owner(replicas: Replicas) -> None:
    a, b = replicas
    run = make_run(1, owner=None)
    await a.store.save_run(run, [], [])
    task = make_task(1)
    assert await b.save_run("b", run.id, None, [StepRun(run.id, "a", state=StepState.RUNNING)], [], [task])
    loaded = await a.store.get_run(run.id)
    assert loaded is not None and loaded.owner == "b"
    assert [t.id for t in await a.store.get_tasks([task.id])] == [task.id]


async def test_take_run_moves_a_running_run_only(replicas: Replicas) -> None:
    a, b = replicas
    running, finished = make_run(1, owner="a"), make_run(2, owner="a", state=RunState.CANCELLED)
    await a.store.save_run(running, [], [])
    await a.store.save_run(finished, [], [])
    assert await b.take_run(running.id, "b")
    assert not await b.take_run(finished.id, "b")
    assert not await b.take_run("run-missing", "b")
    owners = {
        run.id: run.owner for run in [await a.store.get_run(running.id), await a.store.get_run(finished.id)] if run
    }
    assert owners == {running.id: "b", finished.id: "a"}
    # b drives it now: a's saves are refused.
    assert not await a.save_run("a", running.id, running, [], [], [])


async def test_orphan_runs_are_running_runs_of_dead_replicas_or_of_nobody(replicas: Replicas) -> None:
    a, b = replicas
    await a.heartbeat("a", 60)
    await b.heartbeat("b", 60)
    for run in (
        make_run(1, owner="a"),
        make_run(2, owner="dead"),
        make_run(3, owner=None),
        make_run(4, owner="dead", state=RunState.SUCCEEDED),
        make_run(5, owner="dead"),
    ):
        await a.store.save_run(run, [], [])
    assert sorted(await b.orphan_runs("b", 2)) == ["run-002", "run-003"]  # the two oldest
    assert await b.orphan_runs("b", 10) == ["run-005"]
    assert await b.orphan_runs("b", 10) == []
    owners = {run.id: run.owner for run in await a.store.load_active_runs()}
    assert owners == {"run-001": "a", "run-002": "b", "run-003": "b", "run-005": "b"}


# -- cancellation and notifications -----------------------------------------------------
async def test_cancelling_a_pending_unowned_task_finishes_it_at_once(replicas: Replicas) -> None:
    a, b = replicas
    await a.insert_tasks([make_task(1, not_before=time.time() + 3600)])
    async with listening(a) as inbox:
        cancelled = await b.request_cancel("task-0001", _CANCELLED, 123.0)
        assert cancelled is not None
        assert (cancelled.state, cancelled.finished_at, cancelled.error) == (TaskState.CANCELLED, 123.0, _CANCELLED)
        await inbox.receive(DONE_CHANNEL, "task-0001")
    row = await stored(a, "task-0001")
    assert (row.state, row.finished_at, row.error, row.cancel_requested) == (
        TaskState.CANCELLED,
        123.0,
        _CANCELLED,
        True,
    )
    # Finished already: returned as it is; unknown: None.
    again = await b.request_cancel("task-0001", TaskError("Other", "no"), 456.0)
    assert again is not None and (again.finished_at, again.error) == (123.0, _CANCELLED)
    assert await b.request_cancel("task-missing", _CANCELLED, 1.0) is None


async def test_cancelling_an_owned_task_asks_its_owner(replicas: Replicas) -> None:
    a, b = replicas
    await a.insert_tasks([make_task(1)])
    [task] = await a.claim("a", "default", "p", 1)
    async with listening(a) as inbox:
        requested = await b.request_cancel(task.id, _CANCELLED, time.time())
        assert requested is not None and requested.state is TaskState.ASSIGNED and requested.cancel_requested
        await inbox.receive(CANCEL_CHANNEL, task.id)
    row = await stored(a, task.id)
    assert (row.state, row.owner, row.cancel_requested, row.finished_at) == (TaskState.ASSIGNED, "a", True, None)


async def test_a_cancel_requested_while_the_owner_releases_the_task_is_not_lost(replicas: Replicas) -> None:
    a, b = replicas
    await a.insert_tasks([make_task(1)])
    [task] = await a.claim("a", "default", "p", 1)
    assert await b.request_cancel(task.id, _CANCELLED, time.time()) is not None
    # The owner hands the task back (its agent left) with its copy from before the request;
    # the pweza_cancel it gets names a task it no longer has, so it does nothing about it.
    task.state, task.owner, task.attempts = TaskState.PENDING, None, task.attempts - 1
    assert await a.write("a", [task], []) == set()
    row = await stored(a, task.id)
    assert (row.state, row.owner, row.cancel_requested) == (TaskState.PENDING, None, True)
    # Nobody owns it, so no orphan sweep finds it: only a claim can, and its claimer finishes
    # it as cancelled (the dispatcher does so for a claimed task with cancel_requested).
    [claimed] = await b.claim("b", "default", "p", 10)
    assert (claimed.id, claimed.owner, claimed.cancel_requested) == (task.id, "b", True)


async def test_the_listener_hears_new_work_finished_tasks_and_released_tasks(replicas: Replicas) -> None:
    a, b = replicas
    async with listening(a) as inbox:
        await b.insert_tasks([make_task(1), make_task(2, pool="q")])
        await inbox.receive(PENDING_CHANNEL, "default/p")
        await inbox.receive(PENDING_CHANNEL, "default/q")
        done, released = await b.claim("b", "default", "p", 1) + await b.claim("b", "default", "q", 1)
        heard_before = len(inbox.messages)
        # A refused write announces nothing; notifications arrive in commit order, so by the
        # time the owner's are heard, a refused one's would have been heard too.
        done.state = TaskState.SUCCEEDED
        assert await a.write("a", [done], []) == {done.id}
        released.state, released.owner = TaskState.PENDING, None
        assert await b.write("b", [done, released], []) == set()
        await inbox.wait_until(lambda: len(inbox.messages) >= heard_before + 2)
        await inbox.receive(DONE_CHANNEL, done.id)
        assert sorted(inbox.messages[heard_before:]) == [(DONE_CHANNEL, done.id), (PENDING_CHANNEL, "default/q")]


async def test_announce_due_notifies_pools_with_due_unowned_pending_tasks(replicas: Replicas) -> None:
    a, b = replicas
    await a.store.insert_tasks(
        [
            make_task(1, pool="due"),
            make_task(2, pool="later", not_before=time.time() + 3600),
            make_task(3, pool="owned", state=TaskState.ASSIGNED, owner="a", attempts=1),
        ]
    )
    async with listening(a) as inbox:
        assert await b.announce_due() == 1
        await inbox.receive(PENDING_CHANNEL, "default/due")
        assert inbox.messages == [(PENDING_CHANNEL, "default/due")]


async def test_a_long_notification_is_split_into_payloads_postgresql_accepts(replicas: Replicas) -> None:
    a, b = replicas
    many = [make_task(n, state=TaskState.RUNNING, owner="b", attempts=1) for n in range(1, 2001)]
    for task in many:
        task.id = f"{task.id}-{'x' * 40}"
    await b.store.insert_tasks(many)
    for task in many:
        task.state = TaskState.SUCCEEDED
    async with listening(a) as inbox:
        assert await b.write("b", many, []) == set()
        await inbox.wait_until(lambda: len(inbox.messages) >= len(many))
    assert sorted(item for _, item in inbox.messages) == sorted(task.id for task in many)
    assert len(inbox.payloads) > 1 and all(len(payload) < 8000 for payload in inbox.payloads)


async def test_the_listener_reconnects_and_calls_on_connect_again(replicas: Replicas) -> None:
    a, b = replicas
    async with listening(a) as inbox:
        # The stores name their connections; the listener's is the only other client. (Not an
        # autovacuum worker the new database may have: once, under a full CI run, one was counted.)
        kill = text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name <> 'pweza-core'"
            " AND backend_type = 'client backend'"
        )
        async with b.store.reader() as connection:
            assert (await connection.execute(kill)).scalar_one() == 1
        await inbox.wait_until(lambda: inbox.connects >= 2)
        await b.insert_tasks([make_task(1)])
        await inbox.receive(PENDING_CHANNEL, "default/p")
