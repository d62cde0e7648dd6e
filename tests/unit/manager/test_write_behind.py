"""Task changes are written behind, in batches, but nothing is told before it is on record:
a finished task is in the store by the time anyone hears it finished, and an attempt is in
the store before its agent hears of it."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from pweza.domain.tasks import Attempt, Task, TaskState
from pweza.manager.persisting import COALESCE_SECONDS, WriteBehind
from pweza.store.protocol import Store
from pweza.store.sqlite import SqliteStore
from pweza.testing import Hang, Reply, ScriptedAgent, ScriptedTask, WorkflowEnvironment, eventually_async

MANIFESTS = """
apiVersion: pweza.ai/v1
kind: AgentTemplate
metadata: {name: summarizer}
spec:
  runtime: {kind: python, handler: "pweza.testing.handlers:echo"}
  concurrency: 8
---
apiVersion: pweza.ai/v1
kind: AgentPool
metadata: {name: summarizers}
spec: {templateRef: summarizer}
"""


class SlowDisk:
    """Task writes wait while this is entered, and go through when it is left."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._write = store.update_tasks
        self._open = asyncio.Event()
        self.waiting = 0

    def __enter__(self) -> SlowDisk:
        self._store.update_tasks = self._update_tasks  # type: ignore[method-assign]
        return self

    def __exit__(self, *_: object) -> None:
        self._open.set()

    async def _update_tasks(self, tasks: Sequence[Task]) -> None:
        self.waiting += 1
        await self._open.wait()
        await self._write(tasks)


@asynccontextmanager
async def another_reader(database: Path) -> AsyncIterator[SqliteStore]:
    """The database as a second process would see it: its own connection, not the manager's."""
    store = SqliteStore(database)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def test_nobody_hears_a_task_finished_before_the_store_has_it() -> None:
    answer = asyncio.Event()

    async def summarize(task: ScriptedTask) -> dict[str, str]:
        await answer.wait()
        return {"summary": f"about {task.input['topic']}"}

    agent = ScriptedAgent("summarizers", summarize)
    async with WorkflowEnvironment(agent, manifests=MANIFESTS) as env, another_reader(env.database) as store:
        tasks = [await env.submit("summarizers", {"topic": topic}) for topic in ("tides", "moons", "comets")]
        await eventually_async(lambda: len(agent.running) == 3, what="the three attempts to start")
        waiting = [asyncio.create_task(env.task_result(task.id, skip_time=False)) for task in tasks]
        with SlowDisk(env.manager.store) as disk:
            answer.set()  # the three answer; their writes wait for the disk
            await eventually_async(lambda: disk.waiting, what="the results to be on their way to the store")
            assert not any(waiter.done() for waiter in waiting)
        for task, waiter in zip(tasks, waiting, strict=True):
            assert (await waiter).state is TaskState.SUCCEEDED
            stored = await store.get_task(task.id)
            assert stored is not None and stored.state is TaskState.SUCCEEDED
            assert stored.output == {"summary": f"about {task.input['topic']}"}


async def test_a_finished_task_survives_the_manager_restarting() -> None:
    agent = ScriptedAgent("summarizers", [Reply({"summary": "short"})])
    async with WorkflowEnvironment(agent, manifests=MANIFESTS) as env:
        task = await env.submit("summarizers", {"topic": "tides"})
        await env.task_result(task.id)
        await env.restart()
        again = await env.task(task.id)
        assert (again.state, again.output, again.attempts) == (TaskState.SUCCEEDED, {"summary": "short"}, 1)


async def test_an_agent_hears_of_an_attempt_only_once_it_is_on_record() -> None:
    readers: list[SqliteStore] = []
    recorded: list[bool] = []

    async def look_at_the_record(task: ScriptedTask) -> str:
        attempts = await readers[0].list_attempts(task.task_id)
        recorded.append([attempt.number for attempt in attempts] == [task.attempt])
        return "summarized"

    async with WorkflowEnvironment(manifests=MANIFESTS) as env, another_reader(env.database) as store:
        readers.append(store)
        await env.add_agent(ScriptedAgent("summarizers", look_at_the_record))
        tasks = [await env.submit("summarizers", {"topic": str(number)}) for number in range(8)]
        for task in tasks:
            await env.task_result(task.id)
    assert recorded == [True] * 8


class SlowInsert:
    """New tasks are encoded when submitted, as the stores do, but their insert waits while this
    is entered: like an insert still on its way over one database connection while other writes
    go over another."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._insert = store.insert_tasks
        self._open = asyncio.Event()
        self.waiting = 0

    def __enter__(self) -> SlowInsert:
        self._store.insert_tasks = self._insert_tasks  # type: ignore[method-assign]
        return self

    def __exit__(self, *_: object) -> None:
        self._store.insert_tasks = self._insert  # type: ignore[method-assign]
        self._open.set()

    async def _insert_tasks(self, tasks: Sequence[Task], attempts: Sequence[Attempt] = ()) -> None:
        tasks, attempts = copy.deepcopy(list(tasks)), copy.deepcopy(list(attempts))
        self.waiting += 1
        await self._open.wait()
        await self._insert(tasks, attempts)


async def test_a_new_task_whose_agent_left_before_it_was_stored_runs_elsewhere() -> None:
    # An idle agent is given a new task in the task's own insert, and leaves before that insert
    # lands: it is never sent the task, and the attempt ends with its lease, as any lost one.
    lost = ScriptedAgent("summarizers", [Hang()])
    async with WorkflowEnvironment(lost, manifests=MANIFESTS) as env:
        with SlowInsert(env.manager.store) as slow:
            submitted = asyncio.create_task(env.submit("summarizers", {"topic": "tides"}))
            await eventually_async(lambda: slow.waiting, what="the insert to be on its way")
            await lost.disconnect()
        task = await submitted
        assert lost.tasks == []
        stand_in = await env.add_agent(ScriptedAgent("summarizers", [Reply({"summary": "short"})]))
        done = await env.task_result(task.id)
        assert (done.state, done.attempts, done.agent_id) == (TaskState.SUCCEEDED, 2, stand_in.id)
        assert [(a.agent_id, a.state) for a in await env.attempts(task.id)] == [
            (lost.id, TaskState.FAILED),
            (stand_in.id, TaskState.SUCCEEDED),
        ]


def change(task_id: str) -> Task:
    return Task(id=task_id, namespace="default", pool="p", input=None, seq=1, created_at=1.0)


async def test_changes_to_tasks_being_inserted_wait_for_the_insert() -> None:
    batches: list[list[str]] = []

    async def write(tasks: list[Task], attempts: list[Attempt]) -> set[str]:
        batches.append(sorted([task.id for task in tasks] + [f"{a.task_id}/{a.number}" for a in attempts]))
        return set()

    writes = WriteBehind(write, lambda finished, refused: None, lambda: None)
    writes.hold(["new-1", "new-2"])
    writes.task(change("new-1"), finished=True)  # cancelled, say, while its insert is on its way
    writes.task(change("old"))
    await asyncio.sleep(COALESCE_SECONDS * 3)
    assert batches == []  # an update now could overtake the insert and find no row
    writes.release(["new-1"], inserted=True)
    await writes.drain()
    assert batches == [["new-1", "old"]]

    writes.attempt(Attempt("new-2", 1, "agent-a", started_at=1.0))
    writes.task(change("old"))
    writes.release(["new-2"], inserted=False)  # never stored: its changes go nowhere
    await writes.drain()
    assert batches[1:] == [["old"]]
