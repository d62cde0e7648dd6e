"""Task changes are written behind, in batches, but nothing is told before it is on record:
a finished task is in the store by the time anyone hears it finished, and an attempt is in
the store before its agent hears of it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from pweza.domain.tasks import Task, TaskState
from pweza.store.protocol import Store
from pweza.store.sqlite import SqliteStore
from pweza.testing import Reply, ScriptedAgent, ScriptedTask, WorkflowEnvironment, eventually_async

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
