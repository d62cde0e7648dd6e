"""Per-endpoint limits: how many requests are in flight at once and how many start per minute.

`Limiter` holds them within one agent process. Under a manager they hold across every agent
and manager replica instead: the journal gives the chat client a `SharedRoom`, which asks the
manager for room before each request (`pweza.agent.journaling`).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from pweza.agent.chat.endpoints import Endpoint

WINDOW_SECONDS = 60.0


class SharedRoom(Protocol):
    def slot(self, endpoint: Endpoint, timeout: float, *, wait: bool) -> AbstractAsyncContextManager[None]:
        """Room for one request to `endpoint` within its limits wherever they are kept; waits at
        most `timeout` seconds (none when not `wait`), else raises TimeoutError."""
        ...


class Limiter:
    """A concurrency limit and a sliding one-minute window of request starts; None: no limit.

    `slot(timeout)` waits for both, at most `timeout` seconds, else raises TimeoutError (the
    client then tries the next fallback, as it would on a 429); `slot(timeout, wait=False)`
    raises at once when there is no room now. The clock and sleep are parameters so tests can
    move time by hand.
    """

    def __init__(
        self,
        concurrency: int | None = None,
        per_minute: int | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._slots = asyncio.Semaphore(concurrency) if concurrency else None
        self._per_minute = per_minute
        self._starts: deque[float] = deque()
        self._clock = clock
        self._sleep = sleep
        self.in_flight = 0

    def _rate_wait(self) -> float:
        """Seconds until another request may start (0: now), forgetting starts older than the window."""
        if self._per_minute is None:
            return 0.0
        now = self._clock()
        while self._starts and self._starts[0] <= now - WINDOW_SECONDS:
            self._starts.popleft()
        if len(self._starts) < self._per_minute:
            return 0.0
        return self._starts[0] + WINDOW_SECONDS - now

    async def _acquire(self, deadline: float, wait: bool) -> None:
        if not wait:
            if self._slots is not None and self._slots.locked():
                raise TimeoutError(f"all {self.in_flight} request slots are busy")
            if self._rate_wait() > 0:
                raise TimeoutError(f"the rate limit of {self._per_minute} requests per minute is reached")
        if self._slots is not None:
            await asyncio.wait_for(self._slots.acquire(), max(0.0, deadline - self._clock()))
        try:
            while (pause := self._rate_wait()) > 0:
                if self._clock() + pause > deadline:
                    raise TimeoutError(f"the rate limit of {self._per_minute} requests per minute is reached")
                await self._sleep(pause)
        except BaseException:
            if self._slots is not None:
                self._slots.release()
            raise
        if self._per_minute is not None:
            self._starts.append(self._clock())

    @asynccontextmanager
    async def slot(self, timeout: float, *, wait: bool = True) -> AsyncIterator[None]:
        try:
            await self._acquire(self._clock() + timeout, wait)
        except TimeoutError as error:
            reason = str(error) or f"all {self.in_flight} request slots stayed busy for {timeout:g}s"
            raise TimeoutError(reason) from None
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1
            if self._slots is not None:
                self._slots.release()
