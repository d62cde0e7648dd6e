"""A store whose database server goes away: readiness says so quickly, writes fail rather than hang,
and everything works again once the server is back, without reopening the store.

Only meaningful for backends with a server, so it runs on PostgreSQL alone.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from pweza.api.app import create_app
from pweza.domain.errors import Unavailable
from pweza.domain.roles import Role
from pweza.domain.tasks import Task
from pweza.manager.config import Settings
from pweza.manager.service import Manager
from pweza.store.postgres import PostgresStore
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
        # Failing, not hanging, and as "unavailable" (HTTP 503 / gRPC UNAVAILABLE: try again).
        assert all(isinstance(result, Unavailable) for result in outcome), outcome
    finally:
        database_server.start()
    assert await store.check_ready()
    await store.insert_tasks([make_task(3)])
    assert [task.id for task in await store.load_unfinished_tasks()] == ["task-0001", "task-0003"]


async def test_the_api_answers_503_while_the_database_is_away(
    postgres_database: str, postgres_server: PostgresServer
) -> None:
    settings = Settings(database_url=postgres_database, replica_id="api-test")
    manager = Manager(PostgresStore(postgres_database, pool_size=2, max_overflow=0), settings)
    await manager.start()
    try:
        _, secret = await manager.create_token(None, "reader", Role.VIEWER)
        transport = httpx.ASGITransport(app=create_app(manager))
        headers = {"Authorization": f"Bearer {secret}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://manager", headers=headers) as client:
            assert (await client.get("/api/v1/tasks")).status_code == 200
            postgres_server.stop()
            try:
                response = await client.get("/api/v1/tasks")
            finally:
                postgres_server.start()
            assert response.status_code == 503, response.text
            assert response.json()["title"] == "Service unavailable"
            assert "unreachable" in response.json()["detail"]
            assert (await client.get("/api/v1/tasks")).status_code == 200
    finally:
        await manager.stop()
