"""ModelConfigs' limits as the store keeps them for every agent and replica (`take_model_slots`).

Every backend: a model's concurrency and requests per minute, slots freed by release or by
time, all-or-none takes, and a release by anyone but the holder changing nothing. PostgreSQL:
two stores on one database (two manager replicas) taking at once never exceed the limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid

from pweza.domain.model_slots import CALL, START, SlotClaim
from pweza.store.postgres import PostgresStore
from pweza.store.protocol import Store

T0 = 1_000_000.0


def claim(
    now: float = T0, *, holder: str = "agent-a", concurrency: int | None = None, per_minute: int | None = None
) -> SlotClaim:
    return SlotClaim(
        namespace="default", model="smol", lease=uuid.uuid4().hex, holder=holder,
        concurrency=concurrency, per_minute=per_minute, hold_until=now + 90, now=now,
    )  # fmt: skip


async def test_concurrency_slots_are_held_until_released_or_past_their_time(store: Store) -> None:
    first, second = claim(concurrency=2), claim(concurrency=2)
    assert await store.take_model_slots(first) and await store.take_model_slots(second)
    assert not await store.take_model_slots(claim(concurrency=2)), "a third request while two are in flight"
    await store.release_model_slots(first.holder, [first.lease], [CALL], T0 + 1)
    assert await store.take_model_slots(claim(T0 + 1, concurrency=2)), "the released slot is free again"
    assert not await store.take_model_slots(claim(T0 + 2, concurrency=2))
    # Nobody released the others: past hold_until (a dead agent's call) they free themselves.
    assert await store.take_model_slots(claim(T0 + 91.5, concurrency=2))


async def test_another_holder_cannot_release_a_slot(store: Store) -> None:
    held = claim(concurrency=1)
    assert await store.take_model_slots(held)
    await store.release_model_slots("mallory", [held.lease], [CALL, START], T0 + 1)
    assert not await store.take_model_slots(claim(T0 + 1, concurrency=1)), "released by someone else"


async def test_requests_per_minute_count_starts_in_the_last_minute(store: Store) -> None:
    for _ in range(2):
        taken = claim(per_minute=2)
        assert await store.take_model_slots(taken)
        # The request ending does not give its start back: the minute counts starts.
        await store.release_model_slots(taken.holder, [taken.lease], [CALL], T0 + 0.5)
    assert not await store.take_model_slots(claim(T0 + 59, per_minute=2)), "a third start within the minute"
    assert await store.take_model_slots(claim(T0 + 60.5, per_minute=2)), "a minute after the first starts"


async def test_a_take_that_finds_one_limit_full_takes_nothing(store: Store) -> None:
    limits = {"concurrency": 1, "per_minute": 5}
    running = claim(**limits)
    assert await store.take_model_slots(running)
    assert not await store.take_model_slots(claim(T0 + 1, **limits)), "the one call slot is held"
    await store.release_model_slots(running.holder, [running.lease], [CALL], T0 + 2)
    # The refused take used no start: four more fit in the minute, then the fifth start is the last.
    for second in range(4):
        taken = claim(T0 + 3 + second, **limits)
        assert await store.take_model_slots(taken), f"start {second + 2} of 5"
        await store.release_model_slots(taken.holder, [taken.lease], [CALL], T0 + 3.5 + second)
    assert not await store.take_model_slots(claim(T0 + 10, **limits))


async def test_replicas_taking_at_once_never_exceed_the_limit(postgres_database: str) -> None:
    async with contextlib.AsyncExitStack() as stack:
        replicas: list[PostgresStore] = []
        for _ in range(2):
            replica = PostgresStore(postgres_database, pool_size=8, max_overflow=4)
            await replica.open()
            stack.push_async_callback(replica.close)
            replicas.append(replica)
        for round_number in range(3):  # a few rounds: one alone could be lucky
            now = T0 + 1000 * round_number
            asks = [
                replicas[number % 2].take_model_slots(claim(now, holder=f"agent-{number}", concurrency=3, per_minute=5))
                for number in range(20)
            ]
            taken = await asyncio.gather(*asks)
            assert sum(taken) == 3, f"round {round_number}: {sum(taken)} of 20 requests got one of 3 slots"
