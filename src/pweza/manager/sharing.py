"""The dispatcher's side of sharing one PostgreSQL database with other manager replicas.

`Dispatcher` inherits these methods; they run only when it was given a `Coordination`. What
they do: claim pending tasks of pools our agents have room for (when a ``NOTIFY`` says there is
work), write task state only for rows this replica still owns (forgetting those it lost), hand
work back, adopt the attempts of an agent that moved here and the tasks of a replica that died,
hear of tasks finished or cancelled elsewhere, and catch up after notifications were missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

from pweza.domain.errors import Conflict, NotFound
from pweza.domain.tasks import ACTIVE_STATES, Attempt, ErrorType, Task, TaskError, TaskState
from pweza.manager.config import Settings
from pweza.manager.metrics import Metrics
from pweza.manager.persisting import WriteBehind
from pweza.manager.sessions import AgentSession, Lease
from pweza.store.postgres import Coordination
from pweza.store.protocol import Store

log = structlog.get_logger(__name__)
PoolKey = tuple[str, str]
FinishListener = Callable[[Task], None]
# Whether a listener waits for the task with this id (tasks finished on other replicas).
Interest = Callable[[str], bool]


class SharedDispatch:
    """Several-replica behaviour of the dispatcher (the attributes are the dispatcher's own)."""

    _store: Store
    _shared: Coordination | None
    replica: str
    _settings: Settings
    _metrics: Metrics
    _tasks: dict[str, Task]
    _pending: dict[PoolKey, list[tuple[int, int, str]]]
    _leases: dict[str, Lease]
    _pool_sessions: dict[PoolKey, list[AgentSession]]
    _waiters: dict[str, list[asyncio.Future[Task]]]
    _listeners: list[FinishListener]
    _interests: list[Interest]
    _timers: set[asyncio.TimerHandle]
    _background: set[asyncio.Task[Any]]
    _has_work: set[PoolKey]
    _claiming: set[PoolKey]
    _renotified: set[PoolKey]
    _adopting: dict[str, list[Callable[[], None]]]
    _finished_here: OrderedDict[str, None]
    _releasing: set[str] | None
    _sessions: dict[str, AgentSession]
    owning: asyncio.Lock
    unsure: bool
    writes: WriteBehind

    # Defined by the dispatcher.
    async def cancel(self, task_id: str, reason: str = "cancelled by request") -> Task:
        raise NotImplementedError

    def _request_pump(self, pool: PoolKey) -> None:
        raise NotImplementedError

    def drain(self, agent_id: str, grace_seconds: float = 30.0) -> AgentSession:
        raise NotImplementedError

    def _finish(self, task: Task, state: TaskState, *, output: object = None, error: TaskError | None = None) -> None:
        raise NotImplementedError

    async def _children(self, task_id: str) -> list[Task]:
        raise NotImplementedError

    async def _cancel_elsewhere(self, task_id: str, reason: str) -> Task:
        """Cancel a task this replica does not hold: the database decides who acts."""
        assert self._shared is not None
        error = TaskError(ErrorType.CANCELLED, reason, False)
        task = await self._shared.request_cancel(task_id, error, time.time())
        if task is None:
            raise NotFound(f"task {task_id} not found")
        if task.state.terminal and task.state is not TaskState.CANCELLED:
            raise Conflict(f"task {task_id} is already {task.state.value}")
        if task.state is TaskState.CANCELLED and task.error is None:
            task.error = error
            self._metrics.tasks.labels(pool=f"{task.namespace}/{task.pool}", state=task.state.value).inc()
        for child in await self._children(task_id):
            if not child.cancel_requested:
                await self.cancel(child.id, f"parent {task_id} cancelled")
        return task

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _write_owned(self, tasks: list[Task], attempts: list[Attempt]) -> set[str]:
        assert self._shared is not None
        return await self._shared.write(self.replica, tasks, attempts)

    def _release(self, task: Task) -> None:
        """Hand a pending task back to the database, for whichever replica claims it next."""
        task.state = TaskState.PENDING
        task.owner = None
        if self._releasing is not None:
            self._releasing.add(task.id)
        self.writes.task(task)
        if self._tasks.get(task.id) is task:
            del self._tasks[task.id]

    def _lose(self, task_id: str) -> None:
        """Another replica owns the task now: forget it, whatever we were doing with it."""
        self._tasks.pop(task_id, None)
        lease = self._leases.pop(task_id, None)
        if lease is not None:
            log.info("task taken over by another replica", task=task_id, attempt=lease.attempt.number)
        if self._wanted(task_id):
            # Its new owner announces its end; while it was ours that announcement was passed
            # over (we meant to announce it ourselves), so read the task back for whoever waits.
            self._spawn(self._deliver_remote([task_id]))

    def _wanted(self, task_id: str) -> bool:
        """Whether anyone here waits for the task to finish."""
        return task_id in self._waiters or any(interest(task_id) for interest in self._interests)

    def on_pending(self, pool: PoolKey) -> None:
        """The pool may have work nobody claimed yet."""
        self._has_work.add(pool)
        if pool in self._claiming:
            self._renotified.add(pool)
        if self._pool_sessions.get(pool):
            self._request_pump(pool)

    async def _claim(self, pool: PoolKey, limit: int) -> None:
        assert self._shared is not None
        self._renotified.discard(pool)
        failed = False
        try:
            async with self.owning:
                claimed = await self._shared.claim(self.replica, pool[0], pool[1], limit)
                self._take_claimed(claimed)
        except Exception as error:  # noqa: BLE001 - the database is away: try again in a second
            message = str(error) or type(error).__name__
            log.warning("claiming tasks failed; trying again shortly", pool=f"{pool[0]}/{pool[1]}", error=message)
            # The claim may have been committed with its answer lost: those tasks are ours in the
            # database only. Housekeeping finds them once the database answers.
            self.unsure = True
            claimed, failed = [], True
        finally:
            self._claiming.discard(pool)
        if not failed and len(claimed) < limit and pool not in self._renotified:
            self._has_work.discard(pool)  # drained, until the next NOTIFY
        if failed:
            timer = asyncio.get_running_loop().call_later(1.0, self._request_pump, pool)
            self._timers.add(timer)
        else:
            self._request_pump(pool)

    def _take_claimed(self, claimed: list[Task]) -> None:
        """Claimed tasks (their attempt already counted) wait here for one of our agents."""
        for task in claimed:
            self._tasks[task.id] = task
            task.state = TaskState.PENDING  # ours, not yet handed to an agent
            if task.cancel_requested:
                task.attempts -= 1  # the attempt the claim counted never ran
                self._finish(task, TaskState.CANCELLED, error=TaskError(ErrorType.CANCELLED, "cancelled", False))
                continue
            heapq.heappush(self._pending[(task.namespace, task.pool)], (-task.priority, task.seq, task.id))

    async def take_back_unknown(self) -> int:
        """Take back the tasks the database says this replica owns but this process does not know
        of: claims and adoptions whose answer was lost when the database went away. Returns how
        many. A claimed task never handed out is handed out now; any other is adopted like a dead
        replica's (its agent may still report it, else it fails as lost and is retried)."""
        assert self._shared is not None
        async with self.owning:
            # A change not yet written (a task handed back, say) may not show in what we read.
            skip = self.writes.unwritten()
            self._releasing = set()
            try:
                owned = await self._shared.owned_tasks(self.replica)
            finally:
                skip |= self._releasing
                self._releasing = None
            unknown = [task for task in owned if task.id not in self._tasks and task.id not in skip]
            handed_out = [t for t in unknown if t.state is not TaskState.ASSIGNED or t.agent_id is not None]
            self._take_claimed([t for t in unknown if t.state is TaskState.ASSIGNED and t.agent_id is None])
            self.adopt_orphans(handed_out)
        for pool in {(task.namespace, task.pool) for task in unknown}:
            self._request_pump(pool)
        if unknown:
            log.warning("took back tasks the database says are ours", tasks=len(unknown))
        return len(unknown)

    async def _adopt(self, session: AgentSession, refs: list[tuple[str, int]]) -> None:
        assert self._shared is not None
        delay = 0.5
        given_up: set[str] = set()
        while True:
            try:
                async with self.owning:
                    adopted = await self._shared.adopt(
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
        wanted = [task_id for task_id in task_ids if task_id not in self._finished_here and self._wanted(task_id)]
        if wanted:
            self._spawn(self._deliver_remote(wanted))

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
            for listener in self._listeners:
                listener(task)
            for future in self._waiters.pop(task.id, []):
                if not future.done():
                    future.set_result(task)

    def on_remote_drain(self, items: list[str]) -> None:
        """A drain asked through another replica (items are `agent-id grace-seconds`)."""
        for item in items:
            agent_id, _, grace = item.partition(" ")
            if agent_id in self._sessions:
                self.drain(agent_id, float(grace or 30.0))
                log.info("agent drained at another replica's request", agent=agent_id)

    def on_remote_cancel(self, task_ids: list[str]) -> None:
        for task_id in task_ids:
            task = self._tasks.get(task_id)
            if task is not None and not task.state.terminal:
                self._spawn(self._cancel_quietly(task_id))

    async def _cancel_quietly(self, task_id: str) -> None:
        with contextlib.suppress(Conflict, NotFound):
            await self.cancel(task_id, "cancelled by request")

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
                for future in self._waiters.pop(task.id, []):
                    if not future.done():
                        future.set_result(task)
            elif task.cancel_requested and task.id in self._leases:
                await self._cancel_quietly(task.id)
