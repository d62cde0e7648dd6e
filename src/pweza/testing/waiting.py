"""Waiting on a condition with a bound, instead of sleeping and hoping it is true by then."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")


def eventually(
    check: Callable[[], T], timeout: float = 10.0, what: str = "the condition", *, interval: float = 0.05
) -> T:
    """Call `check` until it gives something true, and return that; AssertionError after
    `timeout` seconds, naming `what` and the last value seen."""
    deadline = time.monotonic() + timeout
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what} (last: {last!r})")
        time.sleep(interval)


@overload
async def eventually_async(
    check: Callable[[], Awaitable[T]], *, timeout: float = ..., what: str = ..., interval: float = ...
) -> T: ...


@overload
async def eventually_async(
    check: Callable[[], T], *, timeout: float = ..., what: str = ..., interval: float = ...
) -> T: ...


async def eventually_async(
    check: Callable[[], Any], *, timeout: float = 10.0, what: str = "the condition", interval: float = 0.02
) -> Any:
    """`eventually` on the event loop: `check` may be a coroutine function; the loop runs meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        last = check()
        if inspect.isawaitable(last):
            last = await last
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what} (last: {last!r})")
        await asyncio.sleep(interval)
