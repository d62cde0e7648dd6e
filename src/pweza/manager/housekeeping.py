"""Background duties: retention, and with several replicas their liveness and singleton duties.

What differs between one manager and several replicas is the `Replicas` strategy's
(`pweza.manager.replicas`, `pweza.manager.replica_set`): joining and leaving the other replicas,
and whether this replica holds the singleton duties now (one manager alone always does).
Retention runs wherever they are held.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from pweza.manager import retention
from pweza.manager.clock import SYSTEM_CLOCK, Clock
from pweza.manager.config import Settings
from pweza.manager.dispatching import Dispatcher
from pweza.manager.metrics import Metrics
from pweza.manager.replicas import Replicas
from pweza.manager.workflows import WorkflowEngine
from pweza.store.protocol import Store

log = structlog.get_logger(__name__)


class Housekeeping:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        metrics: Metrics,
        dispatcher: Dispatcher,
        engine: WorkflowEngine,
        replicas: Replicas,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._store = store
        self._clock = clock
        self._settings = settings
        self._metrics = metrics
        self._dispatcher = dispatcher
        self._engine = engine
        self._replicas = replicas
        self._loops: list[asyncio.Task[None]] = []
        self._next_prune = 0.0

    async def start(self) -> None:
        await self._replicas.join(self._dispatcher, self._engine)
        self._loops.append(asyncio.create_task(self._duties(), name="duties"))

    async def stop(self) -> None:
        for loop in self._loops:
            loop.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        await self._replicas.leave()

    async def replicas(self) -> list[dict[str, Any]]:
        """The live replicas sharing the database, with the one holding the singleton duties."""
        return await self._replicas.directory()

    async def _duties(self) -> None:
        interval = self._replicas.duty_interval(max(self._settings.reaper_interval_seconds, 0.5))
        while True:
            await self._clock.sleep(interval)
            try:
                await self._run_duties()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - logged; the next tick tries again
                log.warning("housekeeping failed; will retry", error=str(error) or type(error).__name__)

    async def _run_duties(self) -> None:
        if not await self._replicas.hold_duties():
            return
        now = self._clock.time()
        if now >= self._next_prune:
            self._next_prune = now + self._settings.retention_interval_seconds
            await retention.prune(self._store, self._settings, now, metrics=self._metrics)
