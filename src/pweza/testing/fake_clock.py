"""A clock that moves only when a test says so, for the manager's leases, backoffs and deadlines.

Give it to `Manager(..., clock=clock)` (`WorkflowEnvironment` does), then `await clock.advance(30)`
instead of waiting 30 s: every timer and sleep due within those 30 s fires in order, at its own
moment, and what each sets off runs (a reaper tick, a heartbeat, a retry handed out) before the
clock moves on to the next one.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Any

# Loop iterations given to what a timer set off before the clock moves on: enough for a chain
# of callbacks and task wake-ups (a reaper tick failing an attempt, the retry being queued).
_SETTLE_ROUNDS = 20
# What a `busy` check may hold the clock for, in real seconds (a write to the store, say).
_BUSY_LIMIT = 5.0


class FakeClock:
    """Time starts at `start` (seconds since the epoch) and stands still until `advance`."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._start = start
        self._now = start
        self._order = itertools.count()
        self._due: list[tuple[float, int, asyncio.TimerHandle, Callable[..., Any], tuple[Any, ...]]] = []
        self._busy: list[Callable[[], bool]] = []

    def hold_while(self, busy: Callable[[], bool]) -> None:
        """Before moving on, wait (in real time) while `busy()` is true: for work a timer set
        off that leaves the event loop, such as a write to the store."""
        self._busy.append(busy)

    def time(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._now - self._start

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> asyncio.TimerHandle:
        loop = asyncio.get_running_loop()
        when = self._now + max(0.0, delay)
        # A real handle, never put on the loop: whoever holds it cancels it as any other.
        handle = asyncio.TimerHandle(when, callback, args, loop)
        heapq.heappush(self._due, (when, next(self._order), handle, callback, args))
        return handle

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        handle = self.call_later(seconds, _wake, woken)
        try:
            await woken
        finally:
            handle.cancel()

    @property
    def next_due(self) -> float | None:
        """When the earliest timer or sleep still waiting is due (None: nothing waits)."""
        self._drop_cancelled()
        return self._due[0][0] if self._due else None

    async def advance(self, seconds: float) -> None:
        """Move time on by `seconds`, firing what falls due on the way, earliest first."""
        if seconds < 0:
            raise ValueError("time does not go back")
        target = self._now + seconds
        await self._settle()
        while (when := self.next_due) is not None and when <= target:
            self._now = max(self._now, when)
            _, _, handle, callback, args = heapq.heappop(self._due)
            asyncio.get_running_loop().call_soon(_fire, handle, callback, args)
            await self._settle()
        self._now = target
        await self._settle()

    def _drop_cancelled(self) -> None:
        while self._due and self._due[0][2].cancelled():
            heapq.heappop(self._due)

    async def _settle(self) -> None:
        deadline = time.monotonic() + _BUSY_LIMIT
        while True:
            for _ in range(_SETTLE_ROUNDS):
                await asyncio.sleep(0)
            if not any(busy() for busy in self._busy) or time.monotonic() > deadline:
                return
            await asyncio.sleep(0.001)  # the store answers from another thread


def _fire(handle: asyncio.TimerHandle, callback: Callable[..., Any], args: tuple[Any, ...]) -> None:
    if not handle.cancelled():  # its holder may cancel it up to the moment it runs
        callback(*args)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
