"""The Temporal workflows of benchmarks/peers/temporal_bench.py, alone in a module since the
worker runs them in its sandbox (which re-imports this module; it imports temporalio only).
Activities are named, not imported: they live in the worker (temporal_bench.py)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow

# A step handed to a worker that then dies is retried once this passes.
ACTIVITY_TIMEOUT = timedelta(seconds=10)


@workflow.defn(name="noop")
class Noop:
    @workflow.run
    async def run(self) -> float:
        result: float = await workflow.execute_activity("stamp", start_to_close_timeout=ACTIVITY_TIMEOUT)
        return result


@workflow.defn(name="chain")
class Chain:
    @workflow.run
    async def run(self, n: int, ms: float, log: str | None) -> int:
        v = 0
        for _ in range(n):
            v = await workflow.execute_activity("step", args=[v, ms, log], start_to_close_timeout=ACTIVITY_TIMEOUT)
        return v


@workflow.defn(name="fan")
class Fan:
    @workflow.run
    async def run(self, n: int) -> int:
        items = [workflow.execute_activity("item", args=[i], start_to_close_timeout=ACTIVITY_TIMEOUT) for i in range(n)]
        return sum(await asyncio.gather(*items))
