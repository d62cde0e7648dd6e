"""The dispatcher's work queue when several manager replicas share one PostgreSQL database.

Pending tasks wait in the database: a replica whose agents have room claims tasks of their pool
(when a ``NOTIFY`` says there is work) and owns them from then on. Task state is written only
for rows this replica still owns (those it lost are forgotten), work it cannot run is handed
back, the attempts of an agent that moved here and the tasks of a replica that died are adopted,
and tasks finished or cancelled elsewhere are heard of and caught up on after a missed
notification. The dispatcher holds one `SharedQueue`; `SharedReplicas` calls the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import structlog

from pweza.domain.errors import Conflict, NotFound
from pweza.domain.records import TaskFilter
from pweza.domain.tasks import ACTIVE_STATES, Attempt, ErrorType, Task, TaskError, TaskState
from pweza.manager.config import Settings
from pweza.manager.metrics import Metrics
from pweza.manager.queues import PoolKey
from pweza.manager.sequences import SequenceAllocator
from pweza.manager.sessions import AgentSession, Lease
from pweza.store.postgres import ReplicaDatabase

if TYPE_CHECKING:
    from pweza.manager.dispatching import Dispatcher

log = structlog.get_logger(__name__)
_CLAIM_LIMIT = 512
_RECENT = 8192


class SharedQueue:
    """Pending tasks in the shared database; the tasks this replica owns in the dispatcher."""

    # A new task is the database's to give to whichever replica claims it, never handed out here
    # before it is stored (the claim is what makes a replica its owner).
    hands_out_new_tasks = False

    def __init__(
        self,
        dispatcher: Dispatcher,
        settings: Settings,
        metrics: Metrics,
        database: ReplicaDatabase,
        replica: str,
        on_sessions_changed: Callable[[], None],
    ) -> None:
        self._dispatcher = dispatcher
        # The dispatcher's own tables (the same objects): the tasks it holds, its pending heaps,
        # leases, connected sessions and waiters.
        self._tasks = dispatcher._tasks
        self._pending = dispatcher._pending
        self._leases = dispatcher._leases
        self._sessions = dispatcher._sessions
        self._pool_sessions = dispatcher._pool_sessions
        self._waiters = dispatcher._waiters
        self._settings = settings
        self._metrics = metrics
        self._database = database
        self._store = database.store
        self.replica = replica
        self._on_sessions_changed = on_sessions_changed
        # Pools that may have unclaimed work, claims in flight, pools told of new work while a
        # claim was in flight, attempts being adopted (results wait for it), and tasks finished
        # here lately (their NOTIFY comes back to us too).
        self._has_work: set[PoolKey] = set()
        self._claiming: set[PoolKey] = set()
        self._renotified: set[PoolKey] = set()
        self._adopting: dict[str, list[Callable[[], None]]] = {}
        self._finished_here: OrderedDict[str, None] = OrderedDict()
        # Held while ownership of tasks changes in the database and here together (claims,
        # adoptions, taking back), so a look at "what the database says we own" sees both agree.
        self.owning = asyncio.Lock()
        # A call that may have changed what we own failed with its outcome unknown: the replica
        # compares the database with memory once the database answers (`take_back_unknown`).
        self.unsure = False
        self._releasing: set[str] | None = None

    # -- the work queue --------------------------------------------------------
    async def start(self) -> SequenceAllocator:
        # Nothing to recover into memory: pending work is claimed from the database, and the
        # attempts of a replica that died are adopted by its agents or by the singleton duty.
        database = self._database
        return SequenceAllocator(fetch_block=lambda size: database.next_block("tasks", size))

    async def write(self, tasks: list[Task], attempts: list[Attempt]) -> set[str]:
        return await self._database.write(self.replica, tasks, attempts)

    async def insert(self, tasks: list[Task], attempts: list[Attempt]) -> None:
        if attempts:
            raise ValueError("replicas claim new tasks from the database; none is handed out as it is created")
        await self._database.insert_tasks(tasks)

    def enqueue(self, tasks: Iterable[Task]) -> None:
        # They wait in the database for whichever replica claims them first (us, if our agents
        # have room: the pump claims; the others heard of them through NOTIFY).
        for pool in {task.pool_key for task in tasks}:
            self.on_pending(pool)

    async def cancel_unheld(self, task_id: str, reason: str) -> Task:
        """Cancel a task this replica does not hold: the database decides who acts."""
        error = TaskError(ErrorType.CANCELLED, reason, False)
        task = await self._database.request_cancel(task_id, error, time.time())
        if task is None:
            raise NotFound(f"task {task_id} not found")
        if task.state.terminal and task.state is not TaskState.CANCELLED:
            raise Conflict(f"task {task_id} is already {task.state.value}")
        if task.state is TaskState.CANCELLED and task.error is None:
            task.error = error
            self._dispatcher.count_finished(task)
        for child in await self.children(task_id):
            if not child.cancel_requested:
                await self._dispatcher.cancel(child.id, f"parent {task_id} cancelled")
        return task

    async def children(self, task_id: str) -> list[Task]:
        # From the database: they may be held by any replica.
        stored = await self._store.list_tasks(TaskFilter(parent_id=task_id), limit=10_000)
        return [self._dispatcher.live(t.id) or t for t in stored if not t.state.terminal]

    def assigning(self, task: Task) -> None:
        pass  # the claim counted its attempt already

    def never_ran(self, task: Task) -> None:
        task.attempts -= 1  # claimed here but not handed out: the attempt the claim counted never ran

    def retry_later(self, task: Task, delay: float) -> None:
        # Back to the database: any replica with room runs the retry once its backoff is over.
        self._release(task)
        timer = asyncio.get_running_loop().call_later(delay, self.on_pending, task.pool_key)
        self._dispatcher.keep_timer(timer)

    def agent_joined(self, session: AgentSession, unknown: list[tuple[str, int]]) -> int:
        self._has_work.add(session.pool_key)  # work may have been waiting for an agent
        if unknown:
            # Attempts another replica handed out (the agent moved to us): take them over, if
            # the database says they went to this agent id, of this pool.
            for task_id, _ in unknown:
                self._adopting.setdefault(task_id, [])
            self._dispatcher.spawn(self._adopt(session, unknown))
        return len(unknown)

    def pool_left(self, pool: PoolKey) -> None:
        # Claimed work we can no longer hand out goes back for the other replicas.
        for task in self._dispatcher.take_pending(pool):
            self.never_ran(task)
            self._release(task)

    def room_left(self, pool: PoolKey, ready: list[AgentSession]) -> None:
        if pool in self._has_work and pool not in self._claiming:
            free = sum(session.credits for session in ready)
            if free > 0:
                self._claiming.add(pool)
                self._dispatcher.spawn(self._claim(pool, min(free, _CLAIM_LIMIT)))

    def written(self, finished: list[Task], refused: set[str]) -> None:
        for task_id in refused:
            self._lose(task_id)
        for task in finished:
            self._finished_here[task.id] = None
            if len(self._finished_here) > _RECENT:
                self._finished_here.popitem(last=False)

    def sessions_changed(self) -> None:
        self._on_sessions_changed()

    def holds_results_of(self, task_id: str) -> bool:
        """Whether a message about the task must wait: its attempt is being adopted."""
        return task_id in self._adopting

    def hold_back(self, task_id: str, replay: Callable[[], None]) -> None:
        self._adopting[task_id].append(replay)

    # -- ownership -------------------------------------------------------------
    def _release(self, task: Task) -> None:
        """Hand a pending task back to the database, for whichever replica claims it next."""
        task.state = TaskState.PENDING
        task.owner = None
        if self._releasing is not None:
            self._releasing.add(task.id)
        self._dispatcher.writes.task(task)
        if self._tasks.get(task.id) is task:
            del self._tasks[task.id]

    def _lose(self, task_id: str) -> None:
        """Another replica owns the task now: forget it, whatever we were doing with it."""
        self._tasks.pop(task_id, None)
        lease = self._leases.pop(task_id, None)
        if lease is not None:
            log.info("task taken over by another replica", task=task_id, attempt=lease.attempt.number)
        if self._dispatcher.waits_for(task_id):
            # Its new owner announces its end; while it was ours that announcement was passed
            # over (we meant to announce it ourselves), so read the task back for whoever waits.
            self._dispatcher.spawn(self._deliver_remote([task_id]))

    def on_pending(self, pool: PoolKey) -> None:
        """The pool may have work nobody claimed yet."""
        self._has_work.add(pool)
        if pool in self._claiming:
            self._renotified.add(pool)
        if self._pool_sessions.get(pool):
            self._dispatcher.request_pump(pool)

    async def _claim(self, pool: PoolKey, limit: int) -> None:
        self._renotified.discard(pool)
        failed = False
        try:
            async with self.owning:
                claimed = await self._database.claim(self.replica, pool[0], pool[1], limit)
                self._take_claimed(claimed)
        except Exception as error:  # noqa: BLE001 - the database is away: try again in a second
            message = str(error) or type(error).__name__
            log.warning("claiming tasks failed; trying again shortly", pool=f"{pool[0]}/{pool[1]}", error=message)
            # The claim may have been committed with its answer lost: those tasks are ours in the
            # database only. The replica takes them back once the database answers.
            self.unsure = True
            claimed, failed = [], True
        finally:
            self._claiming.discard(pool)
        if not failed and len(claimed) < limit and pool not in self._renotified:
            self._has_work.discard(pool)  # drained, until the next NOTIFY
        if failed:
            timer = asyncio.get_running_loop().call_later(1.0, self._dispatcher.request_pump, pool)
            self._dispatcher.keep_timer(timer)
        else:
            self._dispatcher.request_pump(pool)

    def _take_claimed(self, claimed: list[Task]) -> None:
        """Claimed tasks (their attempt already counted) wait here for one of our agents."""
        for task in claimed:
            self._tasks[task.id] = task
            task.state = TaskState.PENDING  # ours, not yet handed to an agent
            if task.cancel_requested:
                self.never_ran(task)
                self._dispatcher.finish(
                    task, TaskState.CANCELLED, error=TaskError(ErrorType.CANCELLED, "cancelled", False)
                )
                continue
            heapq.heappush(self._pending[(task.namespace, task.pool)], (-task.priority, task.seq, task.id))

    async def take_back_unknown(self) -> int:
        """Take back the tasks the database says this replica owns but this process does not know
        of: claims and adoptions whose answer was lost when the database went away. Returns how
        many. A claimed task never handed out is handed out now; any other is adopted like a dead
        replica's (its agent may still report it, else it fails as lost and is retried)."""
        async with self.owning:
            # A change not yet written (a task handed back, say) may not show in what we read.
            skip = self._dispatcher.writes.unwritten()
            self._releasing = set()
            try:
                owned = await self._database.owned_tasks(self.replica)
            finally:
                skip |= self._releasing
                self._releasing = None
            unknown = [task for task in owned if task.id not in self._tasks and task.id not in skip]
            handed_out = [t for t in unknown if t.state is not TaskState.ASSIGNED or t.agent_id is not None]
            self._take_claimed([t for t in unknown if t.state is TaskState.ASSIGNED and t.agent_id is None])
            self.adopt_orphans(handed_out)
        for pool in {(task.namespace, task.pool) for task in unknown}:
            self._dispatcher.request_pump(pool)
        if unknown:
            log.warning("took back tasks the database says are ours", tasks=len(unknown))
        return len(unknown)

    async def _adopt(self, session: AgentSession, refs: list[tuple[str, int]]) -> None:
        delay = 0.5
        given_up: set[str] = set()
        while True:
            try:
                async with self.owning:
                    adopted = await self._database.adopt(
                        self.replica, refs, agent_id=session.id, namespace=session.namespace, pool=session.pool
                    )
                    given_up = self._take_adopted(session, refs, adopted)
                break
            except Exception as error:  # noqa: BLE001 - the database is away: ask again (adopting is idempotent)
                self.unsure = True
                if self._sessions.get(session.id) is not session:
                    for task_id, _ in refs:  # the agent left; it reports these again wherever it reconnects
                        self._adopting.pop(task_id, None)
                    return
                log.warning("adopting an agent's attempts failed; trying again", agent=session.id, error=str(error))
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
        for task_id, _ in refs:  # results that arrived meanwhile
            for replay in self._adopting.pop(task_id, []):
                replay()
        if given_up:
            await self._explain_refused(session, [ref for ref in refs if ref[0] in given_up])

    async def _explain_refused(self, session: AgentSession, refs: list[tuple[str, int]]) -> None:
        """Count the attempts a hello listed that were not adopted: stale ones (given up on
        already) quietly, those handed to another agent or of another pool as refusals."""
        try:
            found = {task.id: task for task in await self._store.get_tasks([task_id for task_id, _ in refs])}
        except Exception as error:  # noqa: BLE001 - only the count and the log line are missed
            log.warning("reading attempts an agent was refused failed", agent=session.id, error=str(error))
            return
        for task_id, number in refs:
            task = found.get(task_id)
            if task is None or task.state not in ACTIVE_STATES or task.attempts != number:
                reason = "stale"
            elif task.pool_key != session.pool_key:
                reason = "other_pool"
            else:
                reason = "not_holder"
            self._metrics.agent_refusals.labels(message="in_flight", reason=reason).inc()
            if reason != "stale":
                log.warning(
                    "agent message refused: the session does not hold the attempt",
                    message="in_flight",
                    reason=reason,
                    task=task_id,
                    agent=session.id,
                    pool=f"{session.namespace}/{session.pool}",
                    holder=task.agent_id if task is not None else None,
                )

    def _take_adopted(self, session: AgentSession, refs: list[tuple[str, int]], adopted: list[Task]) -> set[str]:
        """Leases for the attempts adopted; returns the ids of those that were not."""
        now = time.time()
        taken = {task.id for task in adopted}
        for task in adopted:
            self._tasks[task.id] = task
            started = task.started_at or now
            timeout = task.timeout_seconds or 0.0
            attempt = Attempt(task.id, task.attempts, session.id, started)
            self._leases[task.id] = Lease(
                attempt, now + self._settings.lease_seconds, started + timeout if timeout else None, holder=session
            )
            session.running.add(task.id)
        given_up = [task_id for task_id, _ in refs if task_id not in taken]
        if given_up:
            # Those attempts were already failed and retried elsewhere: free the agent's slots.
            session.link.send_cancel(given_up, "attempt given up by the platform")
        log.info(
            "adopted attempts of a reconnected agent", agent=session.id, adopted=len(taken), given_up=len(given_up)
        )
        return set(given_up)

    def adopt_orphans(self, orphans: list[Task]) -> None:
        """Tasks of a replica that died, now ours. An attempt in flight gets a short lease: its
        agent, reconnecting here, keeps it; otherwise it fails as lost and the retry policy decides."""
        now = time.time()
        grace = now + max(2.0, self._settings.heartbeat_seconds)
        for task in orphans:
            self._tasks[task.id] = task
            if task.state in ACTIVE_STATES and task.attempts > 0:
                # Handed out or about to be (the agent's id may not have been written): wait for
                # the agent to come back with it, else it fails as lost and is retried.
                attempt = Attempt(task.id, task.attempts, task.agent_id or "", task.started_at or now)
                # If that agent is connected here (a claim whose answer was lost, taken back), its
                # stream holds the attempt; otherwise the agent claims it when it reconnects.
                session = self._sessions.get(task.agent_id or "")
                holder = session if session is not None and session.pool_key == task.pool_key else None
                self._leases[task.id] = Lease(attempt, grace, None, holder=holder)
                if holder is not None:
                    holder.running.add(task.id)
            else:
                self._release(task)

    def on_remote_done(self, task_ids: list[str]) -> None:
        """Tasks finished on some replica (NOTIFY): wake whoever here waits for them."""
        wanted = [
            task_id
            for task_id in task_ids
            if task_id not in self._finished_here and self._dispatcher.waits_for(task_id)
        ]
        if wanted:
            self._dispatcher.spawn(self._deliver_remote(wanted))

    async def _deliver_remote(self, task_ids: list[str]) -> None:
        try:
            found = await self._store.get_tasks(task_ids)
        except Exception as error:  # noqa: BLE001 - caught up on by the resync after the next heartbeat
            log.warning("reading tasks finished elsewhere failed", tasks=len(task_ids), error=str(error))
            self.unsure = True
            return
        for task in found:
            if not task.state.terminal or task.id in self._tasks:
                continue
            self._dispatcher.announce(task)

    def on_remote_drain(self, items: list[str]) -> None:
        """A drain asked through another replica (items are `agent-id grace-seconds`)."""
        for item in items:
            agent_id, _, grace = item.partition(" ")
            if agent_id in self._sessions:
                self._dispatcher.drain(agent_id, float(grace or 30.0))
                log.info("agent drained at another replica's request", agent=agent_id)

    def on_remote_cancel(self, task_ids: list[str]) -> None:
        for task_id in task_ids:
            task = self._tasks.get(task_id)
            if task is not None and not task.state.terminal:
                self._dispatcher.spawn(self._cancel_quietly(task_id))

    async def _cancel_quietly(self, task_id: str) -> None:
        with contextlib.suppress(Conflict, NotFound):
            await self._dispatcher.cancel(task_id, "cancelled by request")

    async def resync(self) -> None:
        """Catch up after notifications may have been missed (the listening connection was lost)."""
        for pool, sessions in self._pool_sessions.items():
            if sessions:
                self.on_pending(pool)
        watched = list(self._waiters) + list(self._leases)
        if not watched:
            return
        for task in await self._store.get_tasks(watched):
            if task.state.terminal and task.id not in self._tasks:
                self._dispatcher.wake(task)
            elif task.cancel_requested and task.id in self._leases:
                await self._cancel_quietly(task.id)
