from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pweza.domain.tasks import Task, TaskState
from pweza.manager.config import Settings
from pweza.manager.metrics import Metrics
from pweza.manager.retention import prune
from pweza.store.sqlite import SqliteStore

NOW = 1_000.0


def old_task(number: int, finished_at: float = 10.0) -> Task:
    return Task(
        id=f"task-{number:04d}",
        namespace="default",
        pool="p",
        input={},
        seq=number,
        state=TaskState.SUCCEEDED,
        finished_at=finished_at,
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    instance = SqliteStore(tmp_path / "retention.db")
    await instance.open()
    yield instance
    await instance.close()


async def test_pruning_stops_after_max_batches_and_the_next_call_takes_the_rest(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.insert_tasks([old_task(n) for n in range(1, 8)])
    limits: list[int] = []
    prune_finished = store.prune_finished

    async def counted(before: float, limit: int) -> int:
        limits.append(limit)
        return await prune_finished(before, limit)

    monkeypatch.setattr(store, "prune_finished", counted)
    settings = Settings(retention_seconds=100, retention_batch_size=2)
    metrics = Metrics()

    assert await prune(store, settings, NOW, max_batches=2, metrics=metrics) == 4
    assert limits == [2, 2]
    assert await prune(store, settings, NOW, metrics=metrics) == 3
    assert limits == [2, 2, 2, 2]  # the second call stopped at a batch smaller than the batch size
    assert metrics.registry.get_sample_value("pweza_pruned_total") == 7


async def test_only_what_finished_retention_seconds_before_now_is_pruned(store: SqliteStore) -> None:
    await store.insert_tasks([old_task(1, finished_at=NOW - 101), old_task(2, finished_at=NOW - 99)])

    assert await prune(store, Settings(retention_seconds=100), NOW) == 1
    assert [task.id for task in await store.get_tasks(["task-0001", "task-0002"])] == ["task-0002"]


async def test_zero_retention_seconds_keeps_everything(store: SqliteStore) -> None:
    await store.insert_tasks([old_task(1, finished_at=0.0)])

    assert await prune(store, Settings(retention_seconds=0), NOW) == 0
    assert await store.get_task("task-0001") is not None
