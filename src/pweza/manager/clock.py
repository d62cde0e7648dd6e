"""Where the manager's parts read the time and wait for it.

The dispatcher, the workflow engine and housekeeping take a `Clock` (the system's by default),
so a test can run leases, backoffs and deadlines on `pweza.testing.FakeClock` and move time on
by hand instead of waiting for it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Wall-clock seconds since the epoch: what is stored (created_at, deadlines)."""

    def monotonic(self) -> float:
        """Seconds that never go back: for measuring how long something lasted."""

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` of this clock's time."""

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> asyncio.TimerHandle:
        """Call `callback(*args)` on the running loop once `delay` seconds of this clock passed."""


class SystemClock:
    """The real time, and the running event loop's timers."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> asyncio.TimerHandle:
        return asyncio.get_running_loop().call_later(delay, callback, *args)


SYSTEM_CLOCK: Clock = SystemClock()
