"""The call-journal part of the Store contract, on every backend: `save_calls`, `list_calls`, pruning,
and the sums budgets read (tokens and cost by currency, per run, pool and namespace)."""

from __future__ import annotations

from pweza.domain.pricing import Spent
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


def paid(task_id: str, position: int, at: float, tokens: int, cost: int | None, currency: str | None = "USD",
         namespace: str = "team-a", pool: str = "chat", run_id: str = "") -> CallEntry:  # fmt: skip
    record = {"index": position, "kind": "model", "requestDigest": "d" * 64, "response": {}}
    return CallEntry(task_id, 1, position, "model", record, at, namespace, pool, run_id, tokens, cost,
                     None if cost is None else currency)  # fmt: skip


async def test_a_calls_cost_is_kept_with_it_and_summed_by_currency_per_run_pool_and_namespace(store: Store) -> None:
    await store.save_calls([
        paid("t-1", 0, 10.0, 100, 2**40, run_id="run-1"),  # past 32 bits: a BIGINT
        paid("t-1", 1, 20.0, 50, 7, run_id="run-1"),
        paid("t-1", 2, 30.0, 40, None, run_id="run-1"),  # no price known: tokens only
        paid("t-2", 0, 30.0, 30, 5, currency="EUR", pool="other"),
        paid("t-3", 0, 30.0, 1000, 999, namespace="team-b"),
    ])  # fmt: skip
    found = await store.list_calls(["t-1"])
    assert [(c.cost_micros, c.currency) for c in found] == [(2**40, "USD"), (7, "USD"), (None, None)]
    assert await store.run_spent("run-1") == Spent(190, {"USD": 2**40 + 7})
    assert await store.run_spent("run-none") == Spent(0, {})
    assert await store.pool_spent("team-a", "chat", 15.0) == Spent(90, {"USD": 7})
    assert await store.namespace_spent("team-a", 15.0) == Spent(120, {"USD": 7, "EUR": 5})
    assert await store.namespace_spent("team-a", 0.0) == Spent(220, {"USD": 2**40 + 7, "EUR": 5})
    await store.save_calls([paid("t-1", 1, 20.0, 50, 9, run_id="run-1")])  # sent again: replaces itself
    assert await store.run_spent("run-1") == Spent(190, {"USD": 2**40 + 9})


async def test_a_call_is_replaced_in_a_state_only_while_it_is_in_that_state(store: Store) -> None:
    def approval(state: str, by: str = "") -> CallEntry:
        return CallEntry("task-1", 0, 0, "approval", {"key": "approval-t-1", "state": state, "by": by}, 9.0)

    await store.save_calls([approval("pending")])
    assert await store.replace_call_in_state(approval("approved", "alice"), "pending")
    assert not await store.replace_call_in_state(approval("rejected", "bob"), "pending"), "no longer pending"
    (kept,) = await store.list_calls(["task-1"])
    assert (kept.record["state"], kept.record["by"]) == ("approved", "alice")
    missing = CallEntry("task-2", 0, 0, "approval", {"state": "approved"}, 9.0)
    assert not await store.replace_call_in_state(missing, "pending"), "nothing stored to replace"
    assert await store.list_calls(["task-2"]) == []
