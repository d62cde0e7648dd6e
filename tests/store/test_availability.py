"""A store whose database server goes away: readiness says so quickly, writes fail rather than hang,
and everything works again once the server is back, without reopening the store.

Only meaningful for backends with a server, so it runs on PostgreSQL alone.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from pweza.domain.tasks import Task
from pweza.store.protocol import Store
from pweza.testing.postgres import PostgresServer
from tests.store.test_contract import make_task


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_readiness_and_writes_follow_the_database_server(store: Store, database_server: PostgresServer) -> None:
    await store.insert_tasks([make_task(1)])
    assert await store.check_ready()
    database_server.stop()
    try:
        started = time.monotonic()
        assert not await store.check_ready()
        assert time.monotonic() - started < 5.0
        outcome: list[Task | BaseException | None] = await asyncio.gather(
            asyncio.wait_for(store.insert_tasks([make_task(2)]), timeout=15.0),
            asyncio.wait_for(store.get_task("task-0001"), timeout=15.0),
            return_exceptions=True,
        )
        assert all(isinstance(result, Exception) and not isinstance(result, TimeoutError) for result in outcome)
    finally:
        database_server.start()
    assert await store.check_ready()
    await store.insert_tasks([make_task(3)])
    assert [task.id for task in await store.load_unfinished_tasks()] == ["task-0001", "task-0003"]
