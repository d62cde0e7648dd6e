"""Room for a request to a model within its ModelConfig's limits, shared by every agent and replica.

A model's limits are numbered slots kept in the store: `concurrency` slots of kind "call", one
held per request in flight until it ends, and `requestsPerMinute` slots of kind "start", one
taken per request and held for a minute after it starts. A request may go when it gets one of
each it needs; a slot is free again once its `until` has passed, so one held by an agent or a
replica that died frees itself when the request could no longer be running.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass

CALL = "call"
START = "start"
RATE_WINDOW_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class SlotClaim:
    namespace: str
    model: str
    lease: str  # names the slots taken, for their release
    holder: str  # the agent session asking: only it may release them
    concurrency: int | None
    per_minute: int | None
    hold_until: float  # when a call slot frees itself if never released
    now: float

    def wanted(self) -> list[tuple[str, int, float]]:
        """(kind, limit, until) of each slot the request needs."""
        wanted: list[tuple[str, int, float]] = []
        if self.per_minute is not None:
            wanted.append((START, self.per_minute, self.now + RATE_WINDOW_SECONDS))
        if self.concurrency is not None:
            wanted.append((CALL, self.concurrency, self.hold_until))
        return wanted


def free_numbers(limit: int, taken: Iterable[int]) -> list[int]:
    """The slot numbers below `limit` not taken, in random order: replicas asking at once try
    different ones first, so they rarely queue on the same row."""
    busy = set(taken)
    free = [number for number in range(limit) if number not in busy]
    random.shuffle(free)
    return free
