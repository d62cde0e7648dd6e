"""One manager alone on its database, or one of several replicas sharing it: a strategy.

The store says which (`Store.replica_database`): the embedded SQLite file serves one manager;
PostgreSQL may be shared by any number of replicas. `replicas_for` picks the `Replicas` to
match, and every part of the manager that differs between the two asks it for its piece: the
dispatcher its work queue, the workflow engine its run ownership, housekeeping the replica's
liveness and singleton duties, the Manager the agents and drains of other replicas. Nothing
outside these objects asks which of the two it is.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from pweza.domain.errors import NotFound
from pweza.manager.config import Settings
from pweza.manager.metrics import Metrics
from pweza.manager.ownership import RunOwnership, SoleOwnership
from pweza.manager.queues import LocalQueue, WorkQueue
from pweza.manager.replica_set import SharedReplicas
from pweza.store.protocol import Store

if TYPE_CHECKING:
    from pweza.manager.dispatching import Dispatcher
    from pweza.manager.workflows import WorkflowEngine


class Replicas(Protocol):
    @property
    def name(self) -> str | None:
        """This replica's name; None for one manager alone."""

    def work_queue(self, dispatcher: Dispatcher, settings: Settings, metrics: Metrics) -> WorkQueue: ...

    def run_ownership(self) -> RunOwnership: ...

    async def join(self, dispatcher: Dispatcher, engine: WorkflowEngine) -> None:
        """Start working with the other replicas (the dispatcher and the engine have started)."""

    async def leave(self) -> None: ...

    def duty_interval(self, interval: float) -> float:
        """How often housekeeping runs, given the single manager's interval."""

    async def hold_duties(self) -> bool:
        """Run this replica's share of the singleton duties; whether it holds them (and so also
        runs retention)."""

    async def directory(self) -> list[dict[str, Any]]:
        """The live replicas sharing the database, with the one holding the singleton duties."""

    async def agents_elsewhere(self) -> list[tuple[str, dict[str, Any]]]:
        """The agents other replicas have published, with the replica each is connected to."""

    async def drain_elsewhere(self, agent_id: str, grace_seconds: float) -> tuple[str, dict[str, Any]]:
        """Ask the replica the agent is connected to to drain it (NotFound if none has it)."""

    def relay_to(self, followed: Callable[[list[str]], None], pieces: Callable[[list[str]], None]) -> None:
        """Where what other replicas tell about live replies goes (`pweza.manager.live_replies`):
        `followed` gets "replica run-id" lines, `pieces` JSON lines. One manager alone gets none."""

    async def tell_followed(self, lines: list[str]) -> None:
        """Tell the other replicas which runs are read live here ("replica run-id" lines)."""

    async def tell_pieces(self, lines: list[str]) -> None:
        """Send reply pieces (JSON lines, each at most `replica_set.RELAY_LINE_BYTES`) to the other replicas."""


class SingleManager:
    """One manager alone on its database: nobody to share tasks, runs or duties with."""

    name = None

    def __init__(self, store: Store) -> None:
        self._store = store

    def work_queue(self, dispatcher: Dispatcher, settings: Settings, metrics: Metrics) -> WorkQueue:
        return LocalQueue(dispatcher, self._store)

    def run_ownership(self) -> RunOwnership:
        return SoleOwnership(self._store)

    async def join(self, dispatcher: Dispatcher, engine: WorkflowEngine) -> None:
        pass

    async def leave(self) -> None:
        pass

    def duty_interval(self, interval: float) -> float:
        return interval

    async def hold_duties(self) -> bool:
        return True

    async def directory(self) -> list[dict[str, Any]]:
        return []

    async def agents_elsewhere(self) -> list[tuple[str, dict[str, Any]]]:
        return []

    async def drain_elsewhere(self, agent_id: str, grace_seconds: float) -> tuple[str, dict[str, Any]]:
        raise NotFound(f"agent {agent_id} is not connected")

    def relay_to(self, followed: Callable[[list[str]], None], pieces: Callable[[list[str]], None]) -> None:
        pass  # no other replica to hear from

    async def tell_followed(self, lines: list[str]) -> None:
        pass

    async def tell_pieces(self, lines: list[str]) -> None:
        pass


def replica_name(settings: Settings) -> str:
    if settings.replica_id:
        return settings.replica_id
    host = socket.gethostname().split(".")[0][:40]
    return f"{host}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def replicas_for(store: Store, settings: Settings) -> Replicas:
    """The strategy the store's database calls for."""
    database = store.replica_database()
    if database is None:
        return SingleManager(store)
    return SharedReplicas(database, replica_name(settings), settings)
