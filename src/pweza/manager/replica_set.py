"""One of several manager replicas sharing one PostgreSQL database.

Each replica renews its liveness every third of `replica_ttl_seconds`. Duties that must run
once (adopting the tasks and runs of replicas that stopped heartbeating, waking pools whose
retries are due, retention) run on the replica holding the `duties` lease; when it dies, the
lease expires and another replica takes it. After losing the database, a replica waits one TTL
of healthy heartbeats before adopting anything, so that replicas that were merely cut off too
have had time to say they are alive.

Notifications sent while a replica was not listening are lost, so after every connect of the
listening connection (the first one too) the replica reads back what it waits for. A call that
changes who owns a task or a run can fail with its outcome unknown (the database went away
after committing it but before answering). The work queue and the run ownership then say they
are `unsure`, and after the next good heartbeat this replica reads what the database says it
owns and takes back whatever it had lost track of.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

import structlog

from pweza.domain.errors import NotFound
from pweza.manager.config import Settings
from pweza.manager.metrics import Metrics
from pweza.manager.ownership import LeasedOwnership
from pweza.manager.sharing import SharedQueue
from pweza.store.postgres import (
    CANCEL_CHANNEL,
    DONE_CHANNEL,
    DRAIN_CHANNEL,
    FOLLOW_CHANNEL,
    LINE_LIMIT,
    PENDING_CHANNEL,
    REPLY_CHANNEL,
    Listener,
    ReplicaDatabase,
)

if TYPE_CHECKING:
    from pweza.manager.dispatching import Dispatcher
    from pweza.manager.workflows import WorkflowEngine

log = structlog.get_logger(__name__)
DUTIES_LEASE: Final = "duties"
# The longest reply-piece line relayed to other replicas (one NOTIFY payload).
RELAY_LINE_BYTES: Final = LINE_LIMIT
_ORPHAN_BATCH: Final = 500
_RUN_BATCH: Final = 100


class SharedReplicas:
    def __init__(self, database: ReplicaDatabase, name: str, settings: Settings) -> None:
        self.database = database
        self._name = name
        self._settings = settings
        self._ownership = LeasedOwnership(database, name)
        self._queue: SharedQueue | None = None
        self._dispatcher: Dispatcher | None = None
        self._engine: WorkflowEngine | None = None
        self._loops: list[asyncio.Task[None]] = []
        self._listener: Listener | None = None
        self._healthy_since: float | None = None
        self._holding = False
        self._connected_before = False
        self._catching_up: asyncio.Task[None] | None = None
        self._publishing: asyncio.Task[None] | None = None
        self._publish_again = False
        self._relay: dict[str, Callable[[list[str]], None]] = {}

    @property
    def name(self) -> str:
        return self._name

    # -- the pieces ------------------------------------------------------------
    def work_queue(self, dispatcher: Dispatcher, settings: Settings, metrics: Metrics) -> SharedQueue:
        self._queue = SharedQueue(dispatcher, settings, metrics, self.database, self._name, self._publish_agents_soon)
        return self._queue

    def run_ownership(self) -> LeasedOwnership:
        return self._ownership

    def _joined(self) -> tuple[SharedQueue, WorkflowEngine]:
        assert self._queue is not None and self._engine is not None, "join() comes first"
        return self._queue, self._engine

    # -- joining and leaving ---------------------------------------------------
    async def join(self, dispatcher: Dispatcher, engine: WorkflowEngine) -> None:
        queue = self._queue
        assert queue is not None, "the dispatcher is built first"
        await self.database.heartbeat(self._name, self._settings.replica_ttl_seconds)
        self._healthy_since = time.monotonic()
        # Restarted under the same name: what the previous process held is ours to finish.
        async with queue.owning:
            tasks, runs = await self.database.left_behind(self._name)
            queue.adopt_orphans(tasks)
        if tasks or runs:
            log.info("taking back what this replica held before it restarted", tasks=len(tasks), runs=len(runs))
            await engine.recovery.adopt(runs)
        self._dispatcher, self._engine = dispatcher, engine  # from now on its agents are published
        self._listener = self.database.listener(self._on_message, self._on_connect)
        self._listener.start()
        self._loops.append(asyncio.create_task(self._heartbeats(), name="replica-heartbeat"))
        log.info("replica joined", replica=self._name, ttl=self._settings.replica_ttl_seconds)

    async def leave(self) -> None:
        self._dispatcher = None  # agents leaving now are not published
        loops = [*self._loops, *(task for task in (self._catching_up, self._publishing) if task is not None)]
        for loop in loops:
            loop.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        if self._listener is not None:
            await self._listener.stop()
        # Leave at once rather than after a TTL: another replica takes over our duties now.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.database.retire(self._name), 5.0)

    # -- what the Manager asks -------------------------------------------------
    async def directory(self) -> list[dict[str, Any]]:
        holder = await self.database.holder(DUTIES_LEASE)
        return [
            {"id": name, "expiresInSeconds": round(left, 1), "holdsDuties": name == holder}
            for name, left in sorted(await self.database.replicas())
        ]

    async def agents_elsewhere(self) -> list[tuple[str, dict[str, Any]]]:
        return [(replica, agent) for replica, agent in await self.database.agents() if replica != self._name]

    async def drain_elsewhere(self, agent_id: str, grace_seconds: float) -> tuple[str, dict[str, Any]]:
        found = await self.database.request_drain(agent_id, grace_seconds)
        if found is None:
            raise NotFound(f"agent {agent_id} is not connected to any replica")
        return found

    # -- notifications ---------------------------------------------------------
    def relay_to(self, followed: Callable[[list[str]], None], pieces: Callable[[list[str]], None]) -> None:
        self._relay = {FOLLOW_CHANNEL: followed, REPLY_CHANNEL: pieces}

    async def tell_followed(self, lines: list[str]) -> None:
        await self.database.tell(FOLLOW_CHANNEL, lines)

    async def tell_pieces(self, lines: list[str]) -> None:
        await self.database.tell(REPLY_CHANNEL, lines)

    def _on_message(self, channel: str, payload: str) -> None:
        items = payload.split("\n")
        relay = self._relay.get(channel)
        if relay is not None:
            relay(items)
            return
        queue, _ = self._joined()
        if channel == PENDING_CHANNEL:
            for item in items:
                namespace, _, pool = item.partition("/")
                queue.on_pending((namespace, pool))
        elif channel == DONE_CHANNEL:
            queue.on_remote_done(items)
        elif channel == CANCEL_CHANNEL:
            queue.on_remote_cancel(items)
        elif channel == DRAIN_CHANNEL:
            queue.on_remote_drain(items)

    async def _on_connect(self) -> None:
        # Whatever was announced while nobody here listened (before the first connect, too: runs
        # taken back at start were read before it) is read back from the tables.
        if self._connected_before:
            self._unsure()  # the connection was lost: so may have been answers to other calls
        self._connected_before = True
        self._catch_up_soon()

    # -- loops -----------------------------------------------------------------
    async def _heartbeats(self) -> None:
        ttl = self._settings.replica_ttl_seconds
        while True:
            await asyncio.sleep(ttl / 3)
            try:
                await asyncio.wait_for(self.database.heartbeat(self._name, ttl), ttl / 3)
            except Exception as error:  # noqa: BLE001 - the database is away; keep trying
                if self._healthy_since is not None:
                    log.warning("replica heartbeat failed", error=str(error) or type(error).__name__)
                self._healthy_since = None
            else:
                if self._healthy_since is None:
                    log.info("replica heartbeat restored")
                    self._healthy_since = time.monotonic()
                if self._is_unsure():
                    self._catch_up_soon()
                self._publish_agents_soon()

    def _publish_agents_soon(self) -> None:
        """Publish this replica's agents (their slots and tasks change all the time, so also on
        every heartbeat), one publication at a time; a change meanwhile is published right after."""
        if self._dispatcher is None:
            return  # not joined yet, or left
        if self._publishing is not None:
            self._publish_again = True
            return
        self._publishing = asyncio.create_task(self._publish_agents(), name="publish-agents")

    async def _publish_agents(self) -> None:
        try:
            await asyncio.sleep(0.1)  # agents often come and go together: one publication for them
            dispatcher = self._dispatcher
            agents = [session.describe() for session in dispatcher.sessions()] if dispatcher is not None else []
            await self.database.publish_agents(self._name, agents)
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

    def _is_unsure(self) -> bool:
        queue, _ = self._joined()
        return queue.unsure or self._ownership.unsure

    def _unsure(self) -> None:
        queue, _ = self._joined()
        queue.unsure = self._ownership.unsure = True

    async def _catch_up(self) -> None:
        """Read back what finished or was announced while nobody here listened; and if a call may
        have changed what this replica owns without its knowing, take back what the database says
        is ours and we had lost track of."""
        queue, engine = self._joined()
        unsure = self._is_unsure()
        queue.unsure = self._ownership.unsure = False
        try:
            if unsure:
                await queue.take_back_unknown()
                await engine.recovery.adopt(await self.database.owned_runs(self._name))
            await queue.resync()
            await engine.recovery.resync()
        except Exception as error:  # noqa: BLE001 - the database went away again: after the next heartbeat
            log.warning("catching up with the database failed; will retry", error=str(error) or repr(error))
            self._unsure()
        finally:
            self._catching_up = None

    # -- the singleton duties --------------------------------------------------
    def duty_interval(self, interval: float) -> float:
        return min(interval * 2, self._settings.replica_ttl_seconds / 3)

    async def hold_duties(self) -> bool:
        queue, engine = self._joined()
        ttl = self._settings.replica_ttl_seconds
        healthy = self._healthy_since is not None and time.monotonic() - self._healthy_since >= ttl
        held = await self.database.hold(DUTIES_LEASE, self._name, ttl)
        if held != self._holding:
            log.info("singleton duties " + ("taken" if held else "released"), replica=self._name)
            self._holding = held
        if not held:
            return False
        if healthy:
            try:
                async with queue.owning:
                    orphans = await self.database.orphans(self._name, _ORPHAN_BATCH)
                    queue.adopt_orphans(orphans)
                if orphans:
                    log.info("took over tasks of a stopped replica", tasks=len(orphans))
                runs = await self.database.orphan_runs(self._name, _RUN_BATCH)
                if runs:
                    log.info("took over runs of a stopped replica", runs=runs[:20], count=len(runs))
                await engine.recovery.adopt(runs)
            except Exception:
                self._unsure()  # some may be ours now without our knowing
                raise
        await self.database.announce_due()
        return True
