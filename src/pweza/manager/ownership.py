"""Which runs the workflow engine drives: every running run (one manager alone), or those this
replica owns (`runs.owner`) when several share one PostgreSQL database.

With several replicas every save happens under a lock on the run's row and only while this
replica still owns it, so a step is advanced once even when task results and timers reach
different replicas; a replica whose save is refused drops its copy of the run. A command for a
run driven elsewhere takes it over (`take`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from pweza.domain.runs import Run, RunEvent, StepRun
from pweza.domain.tasks import Attempt, Task
from pweza.manager.sequences import SequenceAllocator
from pweza.store.postgres import ReplicaDatabase
from pweza.store.protocol import Store

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class RunWrite:
    """What one save of a run writes, in one transaction: the run (None if unchanged), its
    changed steps, new events and new tasks."""

    run_id: str
    run: Run | None
    steps: Sequence[StepRun]
    events: Sequence[RunEvent]
    new_tasks: Sequence[Task]
    new_attempts: Sequence[Attempt] = ()  # of new tasks handed out already (one manager alone)


class RunOwnership(Protocol):
    @property
    def owner(self) -> str | None:
        """What `runs.owner` says of the runs driven here (None for one manager alone)."""

    async def start(self, resume: Callable[[Run], Awaitable[Any]]) -> SequenceAllocator:
        """Resume the runs that are this process's from the start; the numbers new runs get."""

    def drives(self, run: Run) -> bool:
        """Whether a running run read from the store is this process's to drive."""

    async def take(self, run_id: str) -> bool:
        """Drive a run that is not driven here, for a command; whether it is ours now."""

    async def save(self, write: RunWrite) -> bool:
        """Save a run's changes in one transaction; False if another replica drives it now."""

    def lost_track(self) -> None:
        """A call that may have changed what this process drives failed with its outcome unknown."""


class SoleOwnership:
    """One manager alone: it drives every running run."""

    owner = None

    def __init__(self, store: Store) -> None:
        self._store = store

    async def start(self, resume: Callable[[Run], Awaitable[Any]]) -> SequenceAllocator:
        numbers = SequenceAllocator(await self._store.max_run_seq() + 1)
        runs = await self._store.load_active_runs()
        for run in runs:
            await resume(run)
        log.info("workflow engine recovered", runs=len(runs))
        return numbers

    def drives(self, run: Run) -> bool:
        return True

    async def take(self, run_id: str) -> bool:
        return False  # a running run not in memory is being loaded again just now

    async def save(self, write: RunWrite) -> bool:
        await self._store.save_run(write.run, write.steps, write.events, write.new_tasks, write.new_attempts)
        return True

    def lost_track(self) -> None:
        pass  # the store's picture is reloaded anyway; nobody else could have taken a run


class LeasedOwnership:
    """One of several replicas: it drives the runs whose `owner` is this replica."""

    def __init__(self, database: ReplicaDatabase, replica: str) -> None:
        self._database = database
        self._replica = replica
        # Set when a call that may have changed who drives a run failed with its outcome unknown;
        # the replica then asks the database which runs are ours and loads the missing ones.
        self.unsure = False

    @property
    def owner(self) -> str:
        return self._replica

    async def start(self, resume: Callable[[Run], Awaitable[Any]]) -> SequenceAllocator:
        # Runs are adopted from the database by the singleton duty, not all loaded here.
        database = self._database
        return SequenceAllocator(fetch_block=lambda size: database.next_block("runs", size))

    def drives(self, run: Run) -> bool:
        return run.owner == self._replica

    async def take(self, run_id: str) -> bool:
        try:
            return await self._database.take_run(run_id, self._replica)
        except Exception:
            self.unsure = True  # it may be ours now without our knowing: checked after a heartbeat
            raise

    async def save(self, write: RunWrite) -> bool:
        if write.new_attempts:
            raise ValueError("replicas claim new tasks from the database; none is handed out as it is created")
        return await self._database.save_run(
            self._replica, write.run_id, write.run, write.steps, write.events, write.new_tasks
        )

    def lost_track(self) -> None:
        self.unsure = True
