"""GET /runs/{id} reads the store a bounded number of times however many steps and delegated
tasks the run has: the run, its steps, and one read per level of its task tree."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from pweza.api.app import create_app
from pweza.domain.roles import Role
from pweza.domain.runs import Run, RunState, StepRun, StepState
from pweza.domain.tasks import Task, TaskState
from pweza.manager.config import Settings
from pweza.manager.service import Manager
from pweza.store.protocol import Store
from pweza.store.sqlite import SqliteStore

STEPS = 12
CHILDREN = 3  # of each step's task, and again of each child
LEVELS = 4  # how deep a run's view follows delegations


class CountingReads:
    """The store, counting the calls of its read methods."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.reads: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._store, name)
        if name.startswith(("get_", "list_")):
            self.reads[name] += 1
        return found


@pytest.fixture
async def counted(tmp_path: Path) -> AsyncIterator[tuple[CountingReads, httpx.AsyncClient]]:
    store = CountingReads(SqliteStore(tmp_path / "pweza.db"))
    manager = Manager(cast("Store", store), Settings(database_url=f"sqlite:///{tmp_path / 'pweza.db'}"))
    await manager.start()
    _, secret = await manager.create_token(None, "reader", Role.VIEWER)
    transport = httpx.ASGITransport(app=create_app(manager))
    headers = {"Authorization": f"Bearer {secret}"}
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://manager", headers=headers) as client:
            yield store, client
    finally:
        await manager.stop()


def _task(task_id: str, seq: int, parent: str | None) -> Task:
    return Task(task_id, "default", "echo", None, seq=seq, state=TaskState.SUCCEEDED, parent_id=parent, output=seq)


async def _stored_run(store: Store) -> None:
    """A finished run of STEPS one-task steps, each task with a tree of CHILDREN per task, LEVELS deep."""
    names = [f"s{index}" for index in range(STEPS)]
    spec = {"steps": [{"name": name} for name in names]}
    run = Run("r1", 1, "default", "wf", 1, spec, {}, state=RunState.SUCCEEDED, created_at=1.0)
    steps = [StepRun("r1", name, StepState.SUCCEEDED, attempts=1, started_at=1.0) for name in names]
    tasks: list[Task] = []
    level = [f"r1.{name}.0.0" for name in names]
    tasks += [_task(task_id, len(tasks) + 1, None) for task_id in level]
    for _ in range(LEVELS):
        below = [f"{parent}:{n}" for parent in level for n in range(CHILDREN)]
        tasks += [_task(task_id, len(tasks) + 1, task_id.rsplit(":", 1)[0]) for task_id in below]
        level = below
    await store.save_run(run, steps, (), tasks)


async def test_a_run_view_reads_each_level_of_its_task_tree_once(
    counted: tuple[CountingReads, httpx.AsyncClient],
) -> None:
    store, api = counted
    await _stored_run(cast("Store", store))
    store.reads.clear()
    response = await api.get("/api/v1/runs/r1")
    assert response.status_code == 200, response.text
    reads = dict(store.reads)
    steps = response.json()["steps"]
    assert len(steps) == STEPS
    tree = steps[0]["children"]
    depth = 0
    while tree:
        assert len(tree) == CHILDREN
        assert [child["output"] for child in tree] == sorted(child["output"] for child in tree)
        tree, depth = tree[0]["children"], depth + 1
    assert depth == LEVELS
    # The run, its steps, the steps' call journals in one read, the run's tokens, and the tree a
    # level at a time (not 12 steps x 3^4 children).
    assert reads["list_calls"] == 1
    assert sum(reads.values()) <= 4 + LEVELS, reads
