"""What every Store backend must do; written against the protocol only."""

from __future__ import annotations

import asyncio
import time

from pweza.domain.manifests import RetryPolicy
from pweza.domain.records import AuditEntry, TaskFilter, TokenRecord
from pweza.domain.roles import Role
from pweza.domain.tasks import Attempt, Task, TaskError, TaskState
from pweza.store.protocol import Store


def make_task(number: int, pool: str = "p", state: TaskState = TaskState.PENDING) -> Task:
    return Task(
        id=f"task-{number:04d}",
        namespace="default",
        pool=pool,
        input={"n": number, "text": "héllo"},
        seq=number,
        state=state,
        created_at=time.time(),
        labels={"k": "v"},
    )


async def test_ready_after_open(store: Store) -> None:
    assert await store.check_ready()


async def test_objects_generation_grows_only_on_change(store: Store) -> None:
    body = {"spec": {"a": 1}, "metadata": {"name": "x"}}
    first = await store.put_object("AgentPool", "default", "x", body)
    same = await store.put_object("AgentPool", "default", "x", body)
    changed = await store.put_object("AgentPool", "default", "x", {**body, "spec": {"a": 2}})
    assert (first.generation, same.generation, changed.generation) == (1, 1, 2)
    fetched = await store.get_object("AgentPool", "default", "x")
    assert fetched is not None and fetched.body["spec"] == {"a": 2}
    assert await store.get_object("AgentTemplate", "default", "x") is None


async def test_object_listing_pages_in_name_order(store: Store) -> None:
    for name in ["c", "a", "b", "d"]:
        await store.put_object("AgentPool", "default", name, {"n": name})
    await store.put_object("AgentPool", "other", "a", {"n": "other-a"})
    page1 = await store.list_objects("AgentPool", "default", limit=2)
    page2 = await store.list_objects("AgentPool", "default", limit=2, after="default/b")
    assert [o.name for o in page1] == ["a", "b"]
    assert [o.name for o in page2] == ["c", "d"]
    assert len(await store.list_objects("AgentPool", None, limit=10)) == 5


async def test_delete_object_reports_whether_it_existed(store: Store) -> None:
    await store.put_object("AgentTemplate", "default", "t", {})
    assert await store.delete_object("AgentTemplate", "default", "t")
    assert not await store.delete_object("AgentTemplate", "default", "t")


async def test_tasks_round_trip_with_all_fields(store: Store) -> None:
    task = make_task(1)
    await store.insert_tasks([task])
    task.state = TaskState.FAILED
    task.attempts = 2
    task.error = TaskError("Boom", "it broke", retryable=False)
    task.output = [1, 2]
    task.finished_at = 123.5
    task.agent_id = "agent-1"
    await store.update_tasks([task])
    loaded = await store.get_task(task.id)
    assert loaded is not None
    assert (loaded.state, loaded.attempts, loaded.output, loaded.agent_id) == (
        TaskState.FAILED,
        2,
        [1, 2],
        "agent-1",
    )
    assert loaded.error == TaskError("Boom", "it broke", retryable=False)
    assert loaded.input == {"n": 1, "text": "héllo"} and loaded.labels == {"k": "v"}


async def test_task_listing_filters_and_pages_newest_first(store: Store) -> None:
    await store.insert_tasks([make_task(n, pool="a" if n % 2 else "b") for n in range(1, 11)])
    newest = await store.list_tasks(TaskFilter(), limit=3)
    assert [t.seq for t in newest] == [10, 9, 8]
    after = await store.list_tasks(TaskFilter(), limit=3, after_seq=8)
    assert [t.seq for t in after] == [7, 6, 5]
    only_a = await store.list_tasks(TaskFilter(pool="a"), limit=100)
    assert {t.pool for t in only_a} == {"a"} and len(only_a) == 5


async def test_unfinished_tasks_exclude_terminal_states(store: Store) -> None:
    states = [
        TaskState.PENDING,
        TaskState.RUNNING,
        TaskState.SUCCEEDED,
        TaskState.CANCELLED,
        TaskState.ASSIGNED,
    ]
    await store.insert_tasks([make_task(n, state=s) for n, s in enumerate(states, start=1)])
    unfinished = await store.load_unfinished_tasks()
    assert [t.state for t in unfinished] == [TaskState.PENDING, TaskState.RUNNING, TaskState.ASSIGNED]
    assert await store.max_task_seq() == 5


async def test_attempts_upsert_by_task_and_number(store: Store) -> None:
    attempt = Attempt("task-0001", 1, "agent-a", started_at=1.0)
    await store.save_attempts([attempt])
    attempt.state = TaskState.FAILED
    attempt.error = TaskError("AgentLost", "gone")
    await store.save_attempts([attempt, Attempt("task-0001", 2, "agent-b", started_at=2.0)])
    attempts = await store.list_attempts("task-0001")
    assert [(a.number, a.agent_id, a.state) for a in attempts] == [
        (1, "agent-a", TaskState.FAILED),
        (2, "agent-b", TaskState.RUNNING),
    ]
    assert attempts[0].idempotency_key == "task-0001/1"


async def test_tasks_handed_out_as_created_land_with_their_attempts(store: Store) -> None:
    handed = make_task(1, state=TaskState.ASSIGNED)
    handed.agent_id, handed.attempts = "agent-a", 1
    await store.insert_tasks([handed, make_task(2)], [Attempt(handed.id, 1, "agent-a", started_at=1.0)])
    [loaded] = await store.get_tasks([handed.id])
    assert (loaded.state, loaded.agent_id, loaded.attempts) == (TaskState.ASSIGNED, "agent-a", 1)
    assert [(a.number, a.agent_id) for a in await store.list_attempts(handed.id)] == [(1, "agent-a")]
    assert await store.get_task("task-0002") is not None


async def test_a_failed_insert_leaves_no_attempt_behind(store: Store) -> None:
    await store.insert_tasks([make_task(1)])
    # The batch holds a duplicate id, so it fails as a whole: neither task 2 nor its attempt land.
    [result] = await asyncio.gather(
        store.insert_tasks([make_task(2), make_task(1)], [Attempt("task-0002", 1, "agent-a", started_at=1.0)]),
        return_exceptions=True,
    )
    assert isinstance(result, Exception)  # each backend names the integrity error its own way
    assert await store.get_task("task-0002") is None
    assert await store.list_attempts("task-0002") == []


async def test_a_failing_write_does_not_undo_concurrent_ones(store: Store) -> None:
    await store.insert_tasks([make_task(1)])
    results = await asyncio.gather(
        store.insert_tasks([make_task(1)]),  # duplicate id: must fail alone
        store.insert_tasks([make_task(2)]),
        store.insert_tasks([make_task(3)]),
        return_exceptions=True,
    )
    assert isinstance(results[0], Exception)
    assert results[1:] == [None, None]
    assert await store.get_task("task-0003") is not None


async def test_many_concurrent_writes_all_land(store: Store) -> None:
    await asyncio.gather(*(store.insert_tasks([make_task(n)]) for n in range(1, 501)))
    assert len(await store.load_unfinished_tasks()) == 500


async def test_tokens_are_found_by_hash_and_revocable(store: Store) -> None:
    token = TokenRecord("t1", "ci", Role.OPERATOR, "ab" * 32, created_at=1.0)
    await store.insert_token(token)
    found = await store.find_token("ab" * 32)
    assert found is not None and found.role is Role.OPERATOR and found.revoked_at is None
    assert await store.revoke_token("t1", at=2.0)
    assert not await store.revoke_token("t1", at=3.0)
    revoked = await store.find_token("ab" * 32)
    assert revoked is not None and revoked.revoked_at == 2.0
    assert [t.id for t in await store.list_tokens()] == ["t1"]


async def test_tokens_keep_their_pool_and_expiry(store: Store) -> None:
    await store.insert_token(
        TokenRecord("t2", "agents", Role.AGENT, "cd" * 32, 1.0, pool="team-a/writers", expires_at=99.5)
    )
    await store.insert_token(TokenRecord("t3", "admin", Role.ADMIN, "ef" * 32, 2.0))
    bound = await store.find_token("cd" * 32)
    assert bound is not None and bound.pool == "team-a/writers" and bound.expires_at == 99.5
    unbound = await store.find_token("ef" * 32)
    assert unbound is not None and unbound.pool is None and unbound.expires_at is None
    assert [(t.id, t.pool, t.expires_at) for t in await store.list_tokens()] == [
        ("t2", "team-a/writers", 99.5),
        ("t3", None, None),
    ]


async def test_audit_log_is_newest_first_and_pages(store: Store) -> None:
    for n in range(5):
        await store.append_audit(AuditEntry(float(n), "alice", "pool.apply", f"default/p{n}", {"n": n}))
    entries = await store.list_audit(limit=2)
    assert [e.target for e in entries] == ["default/p4", "default/p3"]
    assert entries[-1].id is not None
    older = await store.list_audit(limit=10, before_id=entries[-1].id)
    assert [e.detail["n"] for e in older] == [2, 1, 0]


async def test_object_pages_follow_namespace_then_name_across_namespaces(store: Store) -> None:
    # "a-b" sorts after "a" but "a-b/y" before "a/x": a page key compared as one string would skip it.
    for namespace, name in [("b", "z"), ("a-b", "y"), ("a", "x")]:
        await store.put_object("AgentPool", namespace, name, {})
    seen: list[str] = []
    after: str | None = None
    for _ in range(5):
        page = await store.list_objects("AgentPool", None, limit=1, after=after)
        if not page:
            break
        after = f"{page[0].namespace}/{page[0].name}"
        seen.append(after)
    assert seen == ["a/x", "a-b/y", "b/z"]


async def test_get_tasks_returns_each_existing_task_once(store: Store) -> None:
    await store.insert_tasks([make_task(1), make_task(2)])
    # Repeats far apart land in different IN (...) lists.
    ids = ["task-0001", *(f"missing-{n}" for n in range(600)), "task-0001", "task-0002", "task-0002"]
    assert sorted(task.id for task in await store.get_tasks(ids)) == ["task-0001", "task-0002"]


async def test_children_of_several_parents_come_newest_first_up_to_the_limit(store: Store) -> None:
    tasks = [make_task(n) for n in range(1, 8)]
    for task in tasks[2:]:
        task.parent_id = "task-0001" if task.seq % 2 else "task-0002"
    await store.insert_tasks(tasks)
    # The parents are far apart in the list, so they land in different IN (...) lists.
    parents = ["task-0001", *(f"missing-{n}" for n in range(600)), "task-0002"]
    assert [task.seq for task in await store.list_children(parents, limit=10)] == [7, 6, 5, 4, 3]
    assert [task.seq for task in await store.list_children(parents, limit=2)] == [7, 6]
    assert [task.seq for task in await store.list_children(["task-0002"], limit=10)] == [6, 4]
    assert await store.list_children([], limit=10) == []


async def test_a_task_keeps_its_retry_policy(store: Store) -> None:
    task = make_task(1)
    task.retry = RetryPolicy(limit=5, backoff="2s", max_backoff="1m", non_retryable=["Bad"])
    await store.insert_tasks([task, make_task(2)])
    loaded = {found.id: found for found in await store.get_tasks(["task-0001", "task-0002"])}
    assert loaded["task-0001"].retry == task.retry
    assert loaded["task-0002"].retry is None


async def test_empty_batches_write_nothing_and_need_no_database(store: Store) -> None:
    await store.insert_tasks([make_task(1)])
    await store.close()
    # Nothing to write is no write at all: not even a closed store is asked.
    await store.insert_tasks([])
    await store.update_tasks([])
    await store.save_attempts([])
    await store.save_run(None)
    assert await store.get_tasks([]) == []
    assert await store.list_children([], limit=10) == []
    await store.open()
    assert [task.id for task in await store.load_unfinished_tasks()] == ["task-0001"]
    assert await store.list_attempts("task-0001") == []
