"""Whether a pending task is due is judged by the database's clock, as leases are: a replica
whose own clock runs ahead does not claim (or announce) a retry before its backoff ends."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from pweza.store.postgres import PostgresStore, replicas
from pweza.store.postgres.replicas import ReplicaDatabase
from tests.store.test_replica_database import make_task

SKEW = 2 * 3600.0  # the replica's clock runs two hours ahead of the database's


class _SkewedTime:
    """The `time` module as a replica with a fast clock sees it."""

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    @staticmethod
    def time() -> float:
        return time.time() + SKEW


@pytest.fixture
async def skewed(postgres_database: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[ReplicaDatabase]:
    store = PostgresStore(postgres_database, pool_size=2, max_overflow=0)
    await store.open()
    monkeypatch.setattr(replicas, "time", _SkewedTime())
    try:
        yield ReplicaDatabase(store)
    finally:
        await store.close()


async def test_a_replica_whose_clock_runs_ahead_claims_only_what_the_database_says_is_due(
    skewed: ReplicaDatabase,
) -> None:
    backing_off = time.time() + 3600  # due in an hour by the database; past by the replica's clock
    await skewed.insert_tasks([make_task(1), make_task(2, not_before=backing_off)])
    assert [task.id for task in await skewed.claim("a", "default", "p", 10)] == ["task-0001"]
    assert await skewed.claim("a", "default", "p", 10) == []
    assert await skewed.announce_due() == 0
