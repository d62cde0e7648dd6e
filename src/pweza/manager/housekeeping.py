"""Background duties: retention everywhere; with several replicas, liveness and the singleton duties.

With several replicas on one PostgreSQL database each replica renews its liveness every third
of `replica_ttl_seconds`. Duties that must run once (adopting the tasks and runs of replicas
that stopped heartbeating, waking pools whose retries are due, retention) run on the replica
holding the `duties` lease; when it dies, the lease expires and another replica takes it.
After losing the database, a replica waits one TTL of healthy heartbeats before adopting
anything, so that replicas that were merely cut off too have had time to say they are alive.

Notifications sent while a replica was not listening are lost, so after every connect of the
listening connection (the first one too) the replica reads back what it waits for. A call that
changes who owns a task or a run can fail with its outcome unknown (the database went away
after committing it but before answering). The dispatcher and the engine then say they are
`unsure`, and after the next good heartbeat this replica reads what the database says it owns
and takes back whatever it had lost track of.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from typing import Any, Final

import structlog

from pweza.manager import retention
from pweza.manager.clock import SYSTEM_CLOCK, Clock
from pweza.manager.config import Settings
from pweza.manager.dispatching import Dispatcher
from pweza.manager.metrics import Metrics
from pweza.manager.workflows import WorkflowEngine
from pweza.store.postgres import (
    CANCEL_CHANNEL,
    DONE_CHANNEL,
    DRAIN_CHANNEL,
    PENDING_CHANNEL,
    Coordination,
    Listener,
)
from pweza.store.protocol import Store

log = structlog.get_logger(__name__)
DUTIES_LEASE: Final = "duties"
_ORPHAN_BATCH: Final = 500
_RUN_BATCH: Final = 100


def replica_name(settings: Settings) -> str:
    if settings.replica_id:
        return settings.replica_id
    host = socket.gethostname().split(".")[0][:40]
    return f"{host}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Housekeeping:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        metrics: Metrics,
        dispatcher: Dispatcher,
        engine: WorkflowEngine,
        coordination: Coordination | None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._store = store
        self._clock = clock
        self._settings = settings
        self._metrics = metrics
        self._dispatcher = dispatcher
        self._engine = engine
        self._shared = coordination
        self._loops: list[asyncio.Task[None]] = []
        self._listener: Listener | None = None
        self._healthy_since: float | None = None
        self._next_prune = 0.0
        self._holding = False
        self._connected_before = False
        self._catching_up: asyncio.Task[None] | None = None
        self._publishing: asyncio.Task[None] | None = None
        self._publish_again = False

    @property
    def replica(self) -> str:
        return self._dispatcher.replica

    async def start(self) -> None:
        if self._shared is not None:
            await self._shared.heartbeat(self.replica, self._settings.replica_ttl_seconds)
            self._healthy_since = self._clock.monotonic()
            # Restarted under the same name: what the previous process held is ours to finish.
            async with self._dispatcher.owning:
                tasks, runs = await self._shared.left_behind(self.replica)
                self._dispatcher.adopt_orphans(tasks)
            if tasks or runs:
                log.info("taking back what this replica held before it restarted", tasks=len(tasks), runs=len(runs))
                await self._engine.adopt(runs)
            self._dispatcher.on_sessions_changed = self._publish_agents_soon
            self._listener = self._shared.listener(self._on_message, self._on_connect)
            self._listener.start()
            self._loops.append(asyncio.create_task(self._heartbeats(), name="replica-heartbeat"))
            log.info("replica joined", replica=self.replica, ttl=self._settings.replica_ttl_seconds)
        self._loops.append(asyncio.create_task(self._duties(), name="duties"))

    async def stop(self) -> None:
        self._dispatcher.on_sessions_changed = lambda: None  # agents leaving now are not published
        loops = [*self._loops, *(task for task in (self._catching_up, self._publishing) if task is not None)]
        for loop in loops:
            loop.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        if self._listener is not None:
            await self._listener.stop()
        if self._shared is not None:
            # Leave at once rather than after a TTL: another replica takes over our duties now.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._shared.retire(self.replica), 5.0)

    async def replicas(self) -> list[dict[str, Any]]:
        """The live replicas sharing the database, with the one holding the singleton duties."""
        if self._shared is None:
            return []
        holder = await self._shared.holder(DUTIES_LEASE)
        return [
            {"id": name, "expiresInSeconds": round(left, 1), "holdsDuties": name == holder}
            for name, left in sorted(await self._shared.replicas())
        ]

    # -- notifications ---------------------------------------------------------
    def _on_message(self, channel: str, payload: str) -> None:
        items = payload.split("\n")
        if channel == PENDING_CHANNEL:
            for item in items:
                namespace, _, pool = item.partition("/")
                self._dispatcher.on_pending((namespace, pool))
        elif channel == DONE_CHANNEL:
            self._dispatcher.on_remote_done(items)
        elif channel == CANCEL_CHANNEL:
            self._dispatcher.on_remote_cancel(items)
        elif channel == DRAIN_CHANNEL:
            self._dispatcher.on_remote_drain(items)

    async def _on_connect(self) -> None:
        # Whatever was announced while nobody here listened (before the first connect, too: runs
        # taken back at start were read before it) is read back from the tables.
        if self._connected_before:
            self._unsure()  # the connection was lost: so may have been answers to other calls
        self._connected_before = True
        self._catch_up_soon()

    # -- loops -----------------------------------------------------------------
    async def _heartbeats(self) -> None:
        assert self._shared is not None
        ttl = self._settings.replica_ttl_seconds
        while True:
            await asyncio.sleep(ttl / 3)
            try:
                await asyncio.wait_for(self._shared.heartbeat(self.replica, ttl), ttl / 3)
            except Exception as error:  # noqa: BLE001 - the database is away; keep trying
                if self._healthy_since is not None:
                    log.warning("replica heartbeat failed", error=str(error) or type(error).__name__)
                self._healthy_since = None
            else:
                if self._healthy_since is None:
                    log.info("replica heartbeat restored")
                    self._healthy_since = self._clock.monotonic()
                if self._dispatcher.unsure or self._engine.unsure:
                    self._catch_up_soon()
                self._publish_agents_soon()

    def _publish_agents_soon(self) -> None:
        """Publish this replica's agents (their slots and tasks change all the time, so also on
        every heartbeat), one publication at a time; a change meanwhile is published right after."""
        if self._shared is None:
            return
        if self._publishing is not None:
            self._publish_again = True
            return
        self._publishing = asyncio.create_task(self._publish_agents(), name="publish-agents")

    async def _publish_agents(self) -> None:
        assert self._shared is not None
        try:
            await asyncio.sleep(0.1)  # agents often come and go together: one publication for them
            agents = [session.describe() for session in self._dispatcher.sessions()]
            await self._shared.publish_agents(self.replica, agents)
        except Exception as error:  # noqa: BLE001 - the directory catches up on the next heartbeat
            log.warning("publishing the agent directory failed", error=str(error) or repr(error))
        finally:
            self._publishing = None
        if self._publish_again:
            self._publish_again = False
            self._publish_agents_soon()

    def _catch_up_soon(self) -> None:
        # Beside the heartbeats, never in their way: they must keep this replica alive.
        if self._catching_up is None:
            self._catching_up = asyncio.create_task(self._catch_up(), name="catch-up")

    def _unsure(self) -> None:
        self._dispatcher.unsure = self._engine.unsure = True

    async def _catch_up(self) -> None:
        """Read back what finished or was announced while nobody here listened; and if a call may
        have changed what this replica owns without its knowing, take back what the database says
        is ours and we had lost track of."""
        assert self._shared is not None
        unsure = self._dispatcher.unsure or self._engine.unsure
        self._dispatcher.unsure = self._engine.unsure = False
        try:
            if unsure:
                await self._dispatcher.take_back_unknown()
                await self._engine.adopt(await self._shared.owned_runs(self.replica))
            await self._dispatcher.resync()
            await self._engine.resync()
        except Exception as error:  # noqa: BLE001 - the database went away again: after the next heartbeat
            log.warning("catching up with the database failed; will retry", error=str(error) or repr(error))
            self._unsure()
        finally:
            self._catching_up = None

    async def _duties(self) -> None:
        interval = max(self._settings.reaper_interval_seconds, 0.5)
        if self._shared is not None:
            interval = min(interval * 2, self._settings.replica_ttl_seconds / 3)
        while True:
            await self._clock.sleep(interval)
            try:
                await self._run_duties()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - logged; the next tick tries again
                log.warning("housekeeping failed; will retry", error=str(error) or type(error).__name__)

    async def _run_duties(self) -> None:
        if self._shared is not None:
            ttl = self._settings.replica_ttl_seconds
            healthy = self._healthy_since is not None and self._clock.monotonic() - self._healthy_since >= ttl
            held = await self._shared.hold(DUTIES_LEASE, self.replica, ttl)
            if held != self._holding:
                log.info("singleton duties " + ("taken" if held else "released"), replica=self.replica)
                self._holding = held
            if not held:
                return
            if healthy:
                try:
                    async with self._dispatcher.owning:
                        orphans = await self._shared.orphans(self.replica, _ORPHAN_BATCH)
                        self._dispatcher.adopt_orphans(orphans)
                    if orphans:
                        log.info("took over tasks of a stopped replica", tasks=len(orphans))
                    runs = await self._shared.orphan_runs(self.replica, _RUN_BATCH)
                    if runs:
                        log.info("took over runs of a stopped replica", runs=runs[:20], count=len(runs))
                    await self._engine.adopt(runs)
                except Exception:
                    self._unsure()  # some may be ours now without our knowing
                    raise
            await self._shared.announce_due()
        now = self._clock.time()
        if now >= self._next_prune:
            self._next_prune = now + self._settings.retention_interval_seconds
            await retention.prune(self._store, self._settings, now, metrics=self._metrics)
