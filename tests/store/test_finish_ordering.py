"""A finished task is announced to the dispatcher's listeners (the workflow engine, delegation)
only once its own write is durable, on the embedded store and with replicas on PostgreSQL alike:
whatever a listener reads or writes because of it comes after it.

The write of the finished state is held back until the test lets it go, so a listener told
before it was written reads the task back unfinished.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from pweza.domain.kinds import parse_manifest
from pweza.domain.tasks import Task, TaskState
from pweza.manager.config import Settings
from pweza.manager.replica_set import SharedReplicas
from pweza.manager.service import Manager
from pweza.manager.sessions import TaskRequest
from tests.conftest import pool, template
from tests.integration.test_lost_answers import ScriptedAgent
from tests.store.conftest import BACKENDS

_WAIT = 20.0


class HeldFinish:
    """Wraps a write so that one carrying a finished task waits for `release`."""

    def __init__(self) -> None:
        self.holding = asyncio.Event()
        self.released = asyncio.Event()

    def wrap(
        self, real: Callable[..., Awaitable[Any]], tasks_of: Callable[..., Sequence[Task]]
    ) -> Callable[..., Awaitable[Any]]:
        async def write(*args: Any) -> Any:
            if any(task.state.terminal for task in tasks_of(*args)):
                self.holding.set()
                await self.released.wait()
            return await real(*args)

        return write


@pytest.fixture
async def manager(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Manager]:
    store = BACKENDS[backend](request, tmp_path)
    settings = Settings(replica_id="replica-a", replica_ttl_seconds=1.5)
    instance = Manager(store, settings)
    await instance.start()
    for document in (template("worker"), pool("work", "worker")):
        await instance.registry.apply(parse_manifest(document))
    yield instance
    await instance.stop()


def _hold_finished_writes(manager: Manager) -> HeldFinish:
    held = HeldFinish()
    if isinstance(manager.replicas, SharedReplicas):
        database = manager.replicas.database
        database.write = held.wrap(database.write, lambda owner, tasks, attempts: tasks)  # type: ignore[method-assign]
    else:
        store = manager.store
        store.update_tasks = held.wrap(store.update_tasks, lambda tasks: tasks)  # type: ignore[method-assign]
    return held


async def test_listeners_hear_of_a_finished_task_only_once_it_is_written(manager: Manager) -> None:
    reads: list[asyncio.Future[Task | None]] = []

    def read_back(task: Task) -> None:
        reads.append(asyncio.ensure_future(manager.store.get_task(task.id)))

    manager.dispatcher.add_listener(read_back)
    held = _hold_finished_writes(manager)
    ScriptedAgent(manager, "agent-a").connect()
    [task] = await manager.dispatcher.submit([TaskRequest(namespace="default", pool="work", input={"n": 1})])

    async with asyncio.timeout(_WAIT):
        await held.holding.wait()  # the agent's result is in; its write waits
    held.released.set()
    finished = await manager.dispatcher.wait(task.id, _WAIT)
    assert finished.state is TaskState.SUCCEEDED

    async with asyncio.timeout(_WAIT):
        [stored] = await asyncio.gather(*reads)
    assert stored is not None and stored.state is TaskState.SUCCEEDED, "the listener ran before the write"
