"""Where the dispatcher's pending tasks wait, and which tasks are this process's to run.

The dispatcher does the same for every task wherever it waits (leases, results, retries); what
differs between one manager and many replicas is only what this protocol holds. `LocalQueue` is
the one manager's: every unfinished task is in memory, pending ones in the dispatcher's heaps.
`pweza.manager.sharing.SharedQueue` is the replicas': pending tasks wait in the database until
a replica with room claims them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Protocol

import structlog

from pweza.domain.tasks import Attempt, Task
from pweza.manager.sequences import SequenceAllocator
from pweza.manager.sessions import AgentSession
from pweza.store.protocol import Store

if TYPE_CHECKING:
    from pweza.manager.dispatching import Dispatcher

log = structlog.get_logger(__name__)
PoolKey = tuple[str, str]


class WorkQueue(Protocol):
    # Whether new tasks may be handed to this process's agents as they are created, their
    # attempts written with them (see Dispatcher.hand_out).
    hands_out_new_tasks: bool

    async def start(self) -> SequenceAllocator:
        """Ready the queue; the numbers new tasks get."""

    async def write(self, tasks: list[Task], attempts: list[Attempt]) -> set[str]:
        """Write task state (the write-behind's writer); the ids of tasks no longer ours."""

    async def insert(self, tasks: list[Task], attempts: list[Attempt]) -> None:
        """Store new tasks durably, with the attempts of those handed out as they were created."""

    def enqueue(self, tasks: Iterable[Task]) -> None:
        """Durable new tasks, ready to run."""

    async def cancel_unheld(self, task_id: str, reason: str) -> Task:
        """Cancel a task this process does not hold."""

    async def children(self, task_id: str) -> list[Task]:
        """Unfinished tasks delegated by `task_id`."""

    def assigning(self, task: Task) -> None:
        """`task` is being handed to an agent: its attempt is counted (if not already)."""

    def never_ran(self, task: Task) -> None:
        """A pending task of ours ends without having been handed out."""

    def retry_later(self, task: Task, delay: float) -> None:
        """A failed attempt is to be retried once `delay` is over (`task.not_before`)."""

    def agent_joined(self, session: AgentSession, unknown: list[tuple[str, int]]) -> int:
        """An agent connected, listing attempts this process knows nothing of; returns how many
        of its slots those take."""

    def pool_left(self, pool: PoolKey) -> None:
        """The last agent of a pool left."""

    def room_left(self, pool: PoolKey, ready: list[AgentSession]) -> None:
        """The pool's heap is dealt out; `ready` agents still have free slots."""

    def written(self, finished: list[Task], refused: set[str]) -> None:
        """A write went through: `finished` tasks are durable, `refused` ones are not ours."""

    def sessions_changed(self) -> None:
        """An agent connected, left, or began draining."""

    def holds_results_of(self, task_id: str) -> bool:
        """Whether messages about the task must wait (its attempt is being taken over)."""

    def hold_back(self, task_id: str, replay: Callable[[], None]) -> None:
        """Replay a message about the task once it may be handled."""


class LocalQueue:
    """One manager alone on its database: every unfinished task is held in memory here."""

    hands_out_new_tasks = True  # nobody else could run them

    def __init__(self, dispatcher: Dispatcher, store: Store) -> None:
        self._dispatcher = dispatcher
        self._store = store

    async def start(self) -> SequenceAllocator:
        numbers = SequenceAllocator(await self._store.max_task_seq() + 1)
        self._dispatcher.recover(await self._store.load_unfinished_tasks())
        return numbers

    async def write(self, tasks: list[Task], attempts: list[Attempt]) -> set[str]:
        pending = []
        if tasks:
            pending.append(self._store.update_tasks(tasks))
        if attempts:
            pending.append(self._store.save_attempts(attempts))
        await asyncio.gather(*pending)
        return set()  # every change is written

    async def insert(self, tasks: list[Task], attempts: list[Attempt]) -> None:
        await self._store.insert_tasks(tasks, attempts)

    def enqueue(self, tasks: Iterable[Task]) -> None:
        self._dispatcher.queue_here(tasks)

    async def cancel_unheld(self, task_id: str, reason: str) -> Task:
        return await self._dispatcher.cancel_here(task_id, reason)

    async def children(self, task_id: str) -> list[Task]:
        return self._dispatcher.held_children(task_id)

    def assigning(self, task: Task) -> None:
        task.attempts += 1

    def never_ran(self, task: Task) -> None:
        pass  # its attempt is counted only when it is handed out

    def retry_later(self, task: Task, delay: float) -> None:
        self._dispatcher.writes.task(task)
        self._dispatcher.queue_at(task, task.not_before)

    def agent_joined(self, session: AgentSession, unknown: list[tuple[str, int]]) -> int:
        return 0  # attempts nobody here knows of were given up on already

    def pool_left(self, pool: PoolKey) -> None:
        pass  # its pending tasks wait here for the next agent of the pool

    def room_left(self, pool: PoolKey, ready: list[AgentSession]) -> None:
        pass  # every pending task is in the heap already

    def written(self, finished: list[Task], refused: set[str]) -> None:
        pass  # (nothing is refused: every row is ours)

    def sessions_changed(self) -> None:
        pass  # nobody else lists this manager's agents

    def holds_results_of(self, task_id: str) -> bool:
        return False  # nothing is ever taken over from elsewhere

    def hold_back(self, task_id: str, replay: Callable[[], None]) -> None:
        replay()
