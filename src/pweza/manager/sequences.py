"""Sequence numbers for tasks and runs: a local counter, or blocks from the shared database."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

BLOCK = 1000


class SequenceAllocator:
    """Hands out increasing numbers. With `fetch_block` (several replicas on one database) the
    numbers come in blocks no other replica gets; `reserve` must then be awaited before `next`
    is called that many times (with no await in between)."""

    def __init__(self, start: int = 1, fetch_block: Callable[[int], Awaitable[int]] | None = None) -> None:
        self._next = start
        self._left = 0 if fetch_block is not None else -1  # -1: unbounded local counter
        self._fetch_block = fetch_block

    async def reserve(self, count: int) -> None:
        if self._fetch_block is None:
            return
        while self._left < count:
            size = max(count, BLOCK)
            start = await self._fetch_block(size)
            self._next, self._left = start, size

    def next(self) -> int:
        if self._left == 0:
            raise RuntimeError("sequence numbers were not reserved")
        value = self._next
        self._next += 1
        if self._left > 0:
            self._left -= 1
        return value
