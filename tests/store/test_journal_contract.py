"""The call-journal part of the Store contract, on every backend: `save_calls`, `list_calls`, pruning."""

from __future__ import annotations

from pweza.domain.tasks import CallEntry, TaskState
from pweza.store.protocol import Store
from tests.store.test_retention_contract import finished_task


def entry(task_id: str, attempt: int, position: int, content: str = "ok") -> CallEntry:
    record = {"index": position, "kind": "tool", "requestDigest": "d" * 64, "response": {"content": content}}
    return CallEntry(task_id, attempt, position, "tool", record, 5.0 + position)


async def test_calls_come_back_by_task_attempt_and_position_and_a_repeat_replaces_itself(store: Store) -> None:
    await store.save_calls([entry("task-2", 1, 0), entry("task-1", 2, 0), entry("task-1", 1, 1), entry("task-1", 1, 0)])
    await store.save_calls([entry("task-1", 1, 1, content="sent again")])
    found = await store.list_calls(["task-1", "task-2", "task-missing"])
    assert [(c.task_id, c.attempt, c.position) for c in found] == [
        ("task-1", 1, 0),
        ("task-1", 1, 1),
        ("task-1", 2, 0),
        ("task-2", 1, 0),
    ]
    assert found[1].record["response"] == {"content": "sent again"}
    assert found[1].recorded_at == 6.0 and found[1].kind == "tool"
    assert await store.list_calls([]) == []


async def test_a_pruned_task_takes_its_journal_with_it(store: Store) -> None:
    await store.insert_tasks([finished_task("task-0001", 10.0, TaskState.SUCCEEDED), finished_task("task-0002", 500.0)])
    await store.save_calls([entry("task-0001", 1, 0), entry("task-0002", 1, 0)])
    assert await store.prune_finished(100.0, 10) == 1
    assert [c.task_id for c in await store.list_calls(["task-0001", "task-0002"])] == ["task-0002"]
