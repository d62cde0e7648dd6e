"""`FakeClock`: time moves only on `advance`, and what falls due fires in order, at its moment."""

from __future__ import annotations

import asyncio

import pytest

from pweza.testing import FakeClock


async def test_timers_fire_in_order_each_seeing_its_own_moment() -> None:
    clock = FakeClock(start=1000.0)
    seen: list[tuple[str, float]] = []
    clock.call_later(3, lambda: seen.append(("three", clock.time())))
    clock.call_later(1, lambda: seen.append(("one", clock.time())))
    cancelled = clock.call_later(2, lambda: seen.append(("two", clock.time())))
    cancelled.cancel()
    await clock.advance(2.5)
    assert seen == [("one", 1001.0)]
    await clock.advance(0.5)
    assert seen == [("one", 1001.0), ("three", 1003.0)]
    assert clock.time() == 1003.0 and clock.monotonic() == 3.0


async def test_a_sleeper_wakes_only_once_its_time_has_come_and_may_sleep_again_in_the_same_advance() -> None:
    clock = FakeClock()
    ticks: list[float] = []

    async def tick_every_second() -> None:
        while True:
            await clock.sleep(1)
            ticks.append(clock.monotonic())

    ticker = asyncio.create_task(tick_every_second())
    await clock.advance(0.5)
    assert ticks == []
    await clock.advance(3)
    assert ticks == [1.0, 2.0, 3.0]
    ticker.cancel()
    assert clock.next_due is None or clock.next_due > clock.time()


async def test_time_does_not_go_back() -> None:
    with pytest.raises(ValueError, match="does not go back"):
        await FakeClock().advance(-1)
