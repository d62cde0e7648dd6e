"""The dispatcher: pending tasks to agents with free slots, leases, retries, timeouts.

Everything here runs on the event loop and reacts to events (a submission, a credit, a
result, a tick of the lease reaper); the store is written for durability and read only
at start-up to recover, never polled for work.

Where pending tasks wait is the work queue's business (`pweza.manager.queues`): in memory here
for one manager, in the database for several replicas sharing it (`pweza.manager.sharing`: a
replica with agents that have free slots claims tasks of their pool when told the pool has
work, and from then on owns them; its writes are applied only while it still owns the row).
Either way leases, results and retries are handled here, and a finished task is made known to
listeners (workflow engine, delegation) only once its own write is durable, so whatever they
read or write because of it comes after it.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import uuid
from collections import defaultdict
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any

import structlog

from pweza.domain.errors import Conflict, NotFound
from pweza.domain.manifests import RetryPolicy
from pweza.domain.reconnecting import RECOVERED_LEASE_MIN_SECONDS
from pweza.domain.retrying import decide
from pweza.domain.tasks import ACTIVE_STATES, Attempt, ErrorType, Task, TaskError, TaskState
from pweza.manager.clock import SYSTEM_CLOCK, Clock
from pweza.manager.config import Settings
from pweza.manager.metrics import Metrics
from pweza.manager.persisting import WriteBehind
from pweza.manager.queues import PoolKey
from pweza.manager.replicas import Replicas
from pweza.manager.sequences import SequenceAllocator
from pweza.manager.sessions import AgentSession, AssignmentMessage, Lease, TaskRequest
from pweza.store.protocol import Store

log = structlog.get_logger(__name__)
FinishListener = Callable[[Task], None]
# Whether a listener waits for the task with this id (tasks finished on other replicas).
Interest = Callable[[str], bool]


@dataclass(slots=True)
class Handout:
    """New tasks given to agents as they are created (`Dispatcher.hand_out`): the attempts to
    write with the tasks, and by agent the assignments to send once they are written."""

    attempts: list[Attempt] = field(default_factory=list)
    batches: dict[str, tuple[AgentSession, list[AssignmentMessage]]] = field(default_factory=dict)


class Dispatcher:
    def __init__(
        self, store: Store, settings: Settings, metrics: Metrics, replicas: Replicas, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self._store = store
        self._clock = clock
        self._settings = settings
        self._metrics = metrics
        metrics.agents.source = self._agent_states
        self._tasks: dict[str, Task] = {}
        self._pending: dict[PoolKey, list[tuple[int, int, str]]] = defaultdict(list)
        self._leases: dict[str, Lease] = {}
        self._sessions: dict[str, AgentSession] = {}
        self._pool_sessions: dict[PoolKey, list[AgentSession]] = defaultdict(list)
        self._retry_policies: dict[PoolKey, RetryPolicy] = {}
        self._waiters: dict[str, list[asyncio.Future[Task]]] = defaultdict(list)
        self._listeners: list[FinishListener] = []
        self._interests: list[Interest] = []
        self._dirty_pools: set[PoolKey] = set()
        self._pump_scheduled = False
        self._seq = SequenceAllocator()
        self._reaper: asyncio.Task[None] | None = None
        self._timers: set[asyncio.TimerHandle] = set()
        self._background: set[asyncio.Task[Any]] = set()
        self._queue = replicas.work_queue(self, settings, metrics)  # (it shares the tables above)
        self.writes = WriteBehind(self._queue.write, self._after_write, metrics.database_errors.inc)

    # -- lifecycle -------------------------------------------------------------
    async def start(self) -> None:
        self._seq = await self._queue.start()
        self._reaper = asyncio.create_task(self._reap_forever())

    def recover(self, recovered: list[Task]) -> None:
        """Hold the unfinished tasks read back from the store at start (one manager alone)."""
        now = self._clock.time()
        for task in recovered:
            self._tasks[task.id] = task
            if task.state in ACTIVE_STATES and task.agent_id is not None:
                # The agent may still be running it, or hold its result: give it time to reconnect
                # and claim it (its backoff is bounded: see pweza.domain.reconnecting).
                attempt = Attempt(task.id, task.attempts, task.agent_id, task.started_at or now)
                wait = max(self._settings.lease_seconds, RECOVERED_LEASE_MIN_SECONDS)
                self._leases[task.id] = Lease(attempt, now + wait, None)
            else:
                task.state = TaskState.PENDING
                self.queue_at(task, task.not_before)
        log.info("dispatcher recovered", tasks=len(recovered), in_flight=len(self._leases))

    async def stop(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            await asyncio.gather(self._reaper, return_exceptions=True)
        for timer in self._timers:
            timer.cancel()
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.writes.drain()

    def add_listener(self, listener: FinishListener, interest: Interest | None = None) -> None:
        """`listener` hears of every finished task; with several replicas, tasks finished on
        another replica reach it when `interest(task_id)` says it waits for them."""
        self._listeners.append(listener)
        if interest is not None:
            self._interests.append(interest)

    def remember_retry_policy(self, pool: PoolKey, policy: RetryPolicy) -> None:
        self._retry_policies[pool] = policy

    # -- tasks -----------------------------------------------------------------
    async def reserve(self, count: int) -> None:
        """Make sure `prepare` can number `count` tasks (call it right before, with no await between)."""
        await self._seq.reserve(count)

    def prepare(self, requests: Iterable[TaskRequest]) -> list[Task]:
        """New tasks, numbered but neither stored nor dispatched: the caller stores them
        (possibly with other writes, in one transaction) and then calls `enqueue`."""
        now = self._clock.time()
        return [
            Task(
                id=request.id or str(uuid.uuid4()),
                namespace=request.namespace,
                pool=request.pool,
                input=request.input,
                priority=request.priority,
                seq=self._seq.next(),
                max_retries=request.max_retries,
                timeout_seconds=request.timeout_seconds,
                created_at=now,
                labels=dict(request.labels),
                parent_id=request.parent_id,
                retry=request.retry,
            )
            for request in requests
        ]

    def enqueue(self, tasks: Iterable[Task]) -> None:
        """Dispatch tasks that are already durable."""
        self._queue.enqueue(tasks)

    def queue_here(self, tasks: Iterable[Task]) -> None:
        """Hold new tasks in this process, for its agents (those handed out already are held)."""
        for task in tasks:
            self._tasks[task.id] = task
            if task.state is TaskState.PENDING:
                self._push(task)

    async def submit(self, requests: Iterable[TaskRequest]) -> list[Task]:
        requests = list(requests)
        await self._seq.reserve(len(requests))
        tasks = self.prepare(requests)
        handout = self.hand_out(tasks)
        try:
            await self._queue.insert(tasks, handout.attempts)
        except BaseException:
            self.take_back(handout)
            raise
        self.enqueue(tasks)
        self.deliver(handout)
        return tasks

    def hand_out(self, tasks: Iterable[Task]) -> Handout:
        """Assign new tasks to agents with free slots before they are stored, so that the caller
        writes their attempts in the tasks' own transaction and `deliver`s them once it commits:
        one commit between a submission and its agent, not two (the pump's assignments wait for
        a write of their own). Only where this process holds the pool's whole queue, only tasks
        due now, and only while none of the pool's tasks waits (those go first). The caller
        must `take_back` the handout if the write fails."""
        handout = Handout()
        if not self._queue.hands_out_new_tasks:
            return handout
        now = self._clock.time()
        ready: dict[PoolKey, list[AgentSession]] = {}
        for task in sorted(tasks, key=lambda t: (-t.priority, t.seq)):
            pool = task.pool_key
            if task.state is not TaskState.PENDING or task.not_before > now or self._pending.get(pool):
                continue
            sessions = ready.get(pool)
            if sessions is None:
                sessions = ready[pool] = [
                    s for s in self._pool_sessions.get(pool, []) if s.credits > 0 and not s.draining
                ]
            if not sessions:
                continue
            # Round robin over the pool's agents, as the pump deals, so work spreads over them.
            session = sessions[len(handout.attempts) % len(sessions)]
            item, attempt = self._lease(task, session, now)
            self._tasks[task.id] = task
            handout.attempts.append(attempt)
            handout.batches.setdefault(session.id, (session, []))[1].append(item)
            session.credits -= 1
            if session.credits <= 0:
                sessions.remove(session)
        self.writes.hold(attempt.task_id for attempt in handout.attempts)
        return handout

    def deliver(self, handout: Handout) -> None:
        """Send what `hand_out` assigned, now that it is written."""
        self.writes.release((attempt.task_id for attempt in handout.attempts), inserted=True)
        for session, items in handout.batches.values():
            self._sender(session, items)()

    def take_back(self, handout: Handout) -> None:
        """Undo `hand_out` for tasks whose write failed: they were never stored, nor sent."""
        self.writes.release((attempt.task_id for attempt in handout.attempts), inserted=False)
        for session, items in handout.batches.values():
            for item in items:
                lease = self._leases.get(item.task_id)
                if lease is not None and lease.holder is session:
                    del self._leases[item.task_id]
                session.running.discard(item.task_id)
                self._tasks.pop(item.task_id, None)
            if self._connected(session):
                self._give_credits(session, len(items))

    def live(self, task_id: str) -> Task | None:
        return self._tasks.get(task_id)

    async def get(self, task_id: str) -> Task:
        task = self._tasks.get(task_id) or await self._store.get_task(task_id)
        if task is None:
            raise NotFound(f"task {task_id} not found")
        return task

    async def wait(self, task_id: str, timeout: float) -> Task:
        task = await self.get(task_id)
        if task.state.terminal and task.id not in self._tasks:
            return task
        future: asyncio.Future[Task] = asyncio.get_running_loop().create_future()
        self._waiters[task_id].append(future)
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            return task
        finally:
            waiters = self._waiters.get(task_id)
            if waiters and future in waiters:
                waiters.remove(future)
                if not waiters:
                    del self._waiters[task_id]

    async def cancel(self, task_id: str, reason: str = "cancelled by request") -> Task:
        if task_id not in self._tasks:
            return await self._queue.cancel_unheld(task_id, reason)
        return await self.cancel_here(task_id, reason)

    async def cancel_here(self, task_id: str, reason: str) -> Task:
        """Cancel a task as the one who acts on it (the store's copy when it is not held here)."""
        task = await self.get(task_id)
        if task.state.terminal:
            raise Conflict(f"task {task_id} is already {task.state.value}")
        task.cancel_requested = True
        # Delegated children die with their parent.
        for child in await self._queue.children(task_id):
            if not child.cancel_requested:
                await self.cancel(child.id, f"parent {task_id} cancelled")
        lease = self._leases.get(task_id)
        if lease is None:
            if task.state is TaskState.PENDING:
                self._queue.never_ran(task)
            self.finish(task, TaskState.CANCELLED, error=TaskError(ErrorType.CANCELLED, reason, False))
            return task
        session = self.holder(task_id)
        if session is not None:
            session.link.send_cancel([task_id], reason)
        lease.cancel_sent_at = self._clock.time()
        self.writes.task(task)
        return task

    def held_children(self, task_id: str) -> list[Task]:
        """Unfinished tasks delegated by `task_id` that are held here."""
        return [t for t in self._tasks.values() if t.parent_id == task_id and not t.state.terminal]

    # -- agents ----------------------------------------------------------------
    # Every message about an attempt is matched to the session (one agent stream) holding its
    # lease, never to an agent id alone: a stream that is not the holder cannot finish, start or
    # keep alive an attempt, whatever ids it sends. The only way to take a lease over is a hello
    # from the agent id it was handed to, of the task's pool, with the same token as the stream
    # that held it (an agent reconnecting); anything else is refused and counted.
    def connect(self, session: AgentSession, in_flight: list[tuple[str, int]]) -> None:
        """Add a session; Conflict if its agent id is connected already (an agent whose stream
        broke is let in once the manager has seen it end, or once it has been silent for three
        heartbeat intervals: that stream is then closed)."""
        now = self._clock.time()
        current = self._sessions.get(session.id)
        silent = max(1.0, 3 * self._settings.heartbeat_seconds)  # 15 s by default, half the lease
        if current is not None and now - current.last_seen > silent:
            # Its stream went quiet (a connection broken without a word: the agent is back on a
            # new one before gRPC's keepalive noticed). A stream that still heartbeats is kept.
            log.warning(
                "agent reconnected while its previous stream was silent; closing that stream",
                agent=session.id,
                silent_seconds=round(now - current.last_seen, 1),
            )
            self.disconnect(current.id, current)
            current.link.close()
            current = None
        if current is not None:
            raise Conflict(
                f"agent id {session.id!r} is already connected (pool {current.namespace}/{current.pool}, "
                f"host {current.hostname or '?'}, pid {current.pid}); every agent needs an id of its own, "
                "and a reconnecting agent is let in once its previous stream has ended or gone silent"
            )
        session.connected_at = session.last_seen = now
        session.credits = session.slots
        unknown: list[tuple[str, int]] = []
        listed: set[str] = set()
        for task_id, number in in_flight:
            if task_id in listed:
                continue
            listed.add(task_id)
            lease = self._leases.get(task_id)
            if lease is not None:
                if lease.attempt.number == number and self._may_claim(session, task_id, lease, "in_flight"):
                    lease.holder = session
                    lease.expires = now + self._settings.lease_seconds
                    session.running.add(task_id)
                    session.credits -= 1
            elif task_id not in self._tasks:
                unknown.append((task_id, number))
        session.credits = max(0, session.credits - self._queue.agent_joined(session, unknown))
        # Attempts we think this agent holds but it did not list: their results may still come
        # (an agent re-sends unsent results right after its hello), so give them a short grace
        # instead of the whole lease; then they fail as lost and are retried.
        grace = now + max(2.0, self._settings.heartbeat_seconds)
        for task_id, lease in self._leases.items():
            mine = lease.attempt.agent_id == session.id and task_id not in listed and lease.holder is not session
            if mine and self._may_claim(session, task_id, lease, "in_flight"):
                lease.holder = session
                lease.expires = min(lease.expires, grace)
        self._sessions[session.id] = session
        self._pool_sessions[session.pool_key].append(session)
        self._sessions_changed()
        self.request_pump(session.pool_key)

    def _may_claim(self, session: AgentSession, task_id: str, lease: Lease, message: str) -> bool:
        """Whether a hello's session may take over the lease: the agent id it was handed to, of
        the task's pool, with the token of the stream that held it (if one did)."""
        task = self._tasks.get(task_id)
        if task is not None and task.pool_key != session.pool_key:
            self._refuse(session, message, task_id, "other_pool", lease)
            return False
        previous = lease.holder
        if lease.attempt.agent_id != session.id or (previous is not None and previous.token_id != session.token_id):
            self._refuse(session, message, task_id, "not_holder", lease)
            return False
        return True

    def holds(self, session: AgentSession, task_id: str, number: int, message: str) -> bool:
        """Whether `session` runs attempt `number` of the task now (a refusal is counted under `message`)."""
        return self._held(session, task_id, number, message) is not None

    def _held(self, session: AgentSession, task_id: str, number: int, message: str) -> Lease | None:
        """The lease of attempt `number` of the task if `session` holds it; else None (counted)."""
        lease = self._leases.get(task_id)
        if lease is None or lease.attempt.number != number or task_id not in self._tasks:
            self._refuse(session, message, task_id, "stale", lease)
            return None
        if lease.holder is not session:
            self._refuse(session, message, task_id, "not_holder", lease)
            return None
        return lease

    def _refuse(self, session: AgentSession, message: str, task_id: str, reason: str, lease: Lease | None) -> None:
        self._metrics.agent_refusals.labels(message=message, reason=reason).inc()
        if reason == "stale":
            return  # a late report of an attempt already given up on: expected now and then
        holder = lease.attempt.agent_id if lease is not None else None
        log.warning(
            "agent message refused: the session does not hold the attempt",
            message=message,
            reason=reason,
            task=task_id,
            agent=session.id,
            pool=f"{session.namespace}/{session.pool}",
            holder=holder or None,
            holder_connected=lease is not None and lease.holder is not None and self._connected(lease.holder),
        )

    def _connected(self, session: AgentSession) -> bool:
        return self._sessions.get(session.id) is session

    def disconnect(self, agent_id: str, session: AgentSession | None = None) -> None:
        current = self._sessions.get(agent_id)
        if current is None or (session is not None and current is not session):
            return
        del self._sessions[agent_id]
        self._pool_sessions[current.pool_key].remove(current)
        # Its leases stay: the agent may come back and claim them, or they expire.
        self._sessions_changed()
        if not self._pool_sessions[current.pool_key]:
            self._queue.pool_left(current.pool_key)

    def take_pending(self, pool: PoolKey) -> list[Task]:
        """The pool's pending tasks, no longer waiting here."""
        heap = self._pending.pop(pool, [])
        taken = []
        while heap:
            task = self._pop_pending(heap)
            if task is not None:
                taken.append(task)
        return taken

    def holder(self, task_id: str) -> AgentSession | None:
        """The connected agent session running the task's current attempt, if any."""
        lease = self._leases.get(task_id)
        return None if lease is None else self._live_holder(lease)

    def _live_holder(self, lease: Lease) -> AgentSession | None:
        holder = lease.holder
        return holder if holder is not None and self._connected(holder) else None

    def sessions(self) -> list[AgentSession]:
        return list(self._sessions.values())

    def drain(self, agent_id: str, grace_seconds: float = 30.0) -> AgentSession:
        session = self._sessions.get(agent_id)
        if session is None:
            raise NotFound(f"agent {agent_id} is not connected")
        session.draining = True
        session.link.send_drain(grace_seconds)
        self._sessions_changed()
        return session

    def on_credit(self, session: AgentSession, slots: int) -> None:
        """Slots the agent says are free again: its credits never exceed its slots less the
        attempts it holds, whatever it sends."""
        if slots and self._connected(session):
            self._give_credits(session, slots)

    def on_ready(self, session: AgentSession, slots: int, error: str) -> None:
        """The agent loaded its template: it now has `slots` slots (at most the template's
        concurrency), or, with `error`, none at all and it is listed as unhealthy."""
        if not self._connected(session):
            return
        pool = f"{session.namespace}/{session.pool}"
        if error:
            session.error = error
            session.slots = session.credits = 0
            log.warning("agent cannot serve", agent=session.id, pool=pool, error=error)
        else:
            if slots > session.max_slots:
                log.warning("agent asked for more slots than its template allows", agent=session.id, pool=pool,
                            slots=slots, allowed=session.max_slots)  # fmt: skip
            session.error = ""
            session.slots = min(slots, session.max_slots)
            session.credits = max(0, session.slots - len(session.running))
            log.info("agent ready", agent=session.id, pool=pool, slots=session.slots)
        self._sessions_changed()
        self.request_pump(session.pool_key)

    def _give_credits(self, session: AgentSession, slots: int) -> None:
        room = max(0, session.slots - len(session.running))
        session.credits = min(room, session.credits + slots)
        self.request_pump(session.pool_key)

    def on_started(self, session: AgentSession, starts: list[tuple[str, int, float]]) -> None:
        now = self._clock.time()
        for task_id, number, at in starts:
            if self._queue.holds_results_of(task_id):
                self._queue.hold_back(task_id, functools.partial(self.on_started, session, [(task_id, number, at)]))
                continue
            lease = self._held(session, task_id, number, "started")
            if lease is None:
                continue
            task = self._tasks[task_id]
            # The agent says when the handler began; its clock may differ from ours, so the
            # time is kept between the assignment and the moment we heard of it.
            started = min(max(at, lease.attempt.started_at), now) if at else now
            task.state = TaskState.RUNNING
            task.started_at = lease.attempt.started_at = started
            self.writes.task(task)

    def on_heartbeat(self, session: AgentSession, refs: list[tuple[str, int]]) -> None:
        now = self._clock.time()
        if self._connected(session):
            session.last_seen = now
        for task_id, number in refs:
            lease = self._held(session, task_id, number, "heartbeat")
            if lease is not None:
                lease.expires = now + self._settings.lease_seconds

    def on_result(
        self, session: AgentSession, task_id: str, number: int, output: object, error: TaskError | None
    ) -> None:
        if self._queue.holds_results_of(task_id):
            self._queue.hold_back(task_id, lambda: self.on_result(session, task_id, number, output, error))
            return
        session.last_seen = self._clock.time()
        self._take_result(session, task_id, number, output, error)
        # The agent keeps the result until told it is written (see Outbox): told once what this
        # call queued is durable, a manager that dies first loses nothing the agent won't re-send.
        self.writes.when_durable(functools.partial(session.link.send_results_ack, [(task_id, number)]))

    def _take_result(
        self, session: AgentSession, task_id: str, number: int, output: object, error: TaskError | None
    ) -> None:
        lease = self._held(session, task_id, number, "result")
        if lease is None:
            lease = self._leases.get(task_id)
            if lease is None or lease.holder is not session:
                session.running.discard(task_id)  # its own slot is free, whatever became of the attempt
            return
        session.running.discard(task_id)
        task = self._tasks[task_id]
        del self._leases[task_id]
        if error is None:
            lease.attempt.state = TaskState.SUCCEEDED
            lease.attempt.finished_at = self._clock.time()
            self.writes.attempt(lease.attempt)
            self.finish(task, TaskState.SUCCEEDED, output=output)
        else:
            self._fail_attempt(task, lease, error)

    # -- internals -------------------------------------------------------------
    def _push(self, task: Task) -> None:
        heapq.heappush(self._pending[task.pool_key], (-task.priority, task.seq, task.id))
        self.request_pump(task.pool_key)

    def queue_at(self, task: Task, when: float) -> None:
        delay = when - self._clock.time()
        if delay <= 0:
            self._push(task)
            return
        timer = self._clock.call_later(delay, self._push_if_pending, task)
        self._timers.add(timer)

    def _push_if_pending(self, task: Task) -> None:
        if task.state is TaskState.PENDING and not task.cancel_requested:
            self._push(task)

    def request_pump(self, pool: PoolKey) -> None:
        self._dirty_pools.add(pool)
        if not self._pump_scheduled:
            self._pump_scheduled = True
            asyncio.get_running_loop().call_soon(self._pump)

    def _pump(self) -> None:
        self._pump_scheduled = False
        pools, self._dirty_pools = self._dirty_pools, set()
        for pool in pools:
            self._assign_pool(pool)
            self._metrics.pending.labels(pool=f"{pool[0]}/{pool[1]}").set(len(self._pending[pool]))

    def _assign_pool(self, pool: PoolKey) -> None:
        heap = self._pending[pool]
        ready = [s for s in self._pool_sessions.get(pool, []) if s.credits > 0 and not s.draining]
        batches: dict[str, list[AssignmentMessage]] = {}
        now = self._clock.time()
        # Deal tasks out one per agent per round, so work spreads over the pool.
        while heap and ready:
            for session in list(ready):
                task = self._pop_pending(heap)
                if task is None:
                    break
                batches.setdefault(session.id, []).append(self._assign(task, session, now))
                session.credits -= 1
                if session.credits <= 0:
                    ready.remove(session)
            else:
                continue
            break
        for agent_id, items in batches.items():
            self._send_when_durable(self._sessions[agent_id], items)
        self._queue.room_left(pool, ready)

    def _pop_pending(self, heap: list[tuple[int, int, str]]) -> Task | None:
        while heap:
            _, _, task_id = heapq.heappop(heap)
            task = self._tasks.get(task_id)
            if task is not None and task.state is TaskState.PENDING and not task.cancel_requested:
                return task
        return None

    def _assign(self, task: Task, session: AgentSession, now: float) -> AssignmentMessage:
        item, attempt = self._lease(task, session, now)
        self.writes.task(task)
        self.writes.attempt(attempt)
        return item

    def _lease(self, task: Task, session: AgentSession, now: float) -> tuple[AssignmentMessage, Attempt]:
        """Give `task` to `session`'s agent: its next attempt and the lease on it (not written)."""
        task.state = TaskState.ASSIGNED
        self._queue.assigning(task)
        task.agent_id = session.id
        task.started_at = now
        attempt = Attempt(task.id, task.attempts, session.id, now)
        timeout = task.timeout_seconds or 0.0
        self._leases[task.id] = Lease(
            attempt, now + self._settings.lease_seconds, now + timeout if timeout else None, holder=session
        )
        session.running.add(task.id)
        return AssignmentMessage(task.id, task.attempts, task.input, timeout, task.labels), attempt

    def _send_when_durable(self, session: AgentSession, items: list[AssignmentMessage]) -> None:
        """Send the assignments once their attempts are written: a manager that crashes after
        sending one has it on record, so its successor never hands the same number out again."""
        self.writes.when_durable(self._sender(session, items))

    def _sender(self, session: AgentSession, items: list[AssignmentMessage]) -> Callable[[], None]:
        """What sends the assignments, to be called once their attempts are written."""
        leases = [(item, self._leases[item.task_id]) for item in items]

        def send() -> None:
            now = self._clock.time()
            # An attempt failed or taken over by another replica meanwhile is not sent, nor is one
            # whose task was cancelled meanwhile (it ends cancelled here): the agent never had them.
            live: list[tuple[AssignmentMessage, Lease]] = []
            unsent = 0
            for item, lease in leases:
                if self._leases.get(item.task_id) is not lease:
                    unsent += 1
                elif lease.cancel_sent_at is not None:
                    unsent += 1
                    del self._leases[item.task_id]
                    error = TaskError(ErrorType.CANCELLED, "cancelled before it reached the agent", False)
                    self._fail_attempt(self._tasks[item.task_id], lease, error)
                else:
                    live.append((item, lease))
            connected = self._connected(session)
            if connected and unsent:  # their slots are free again
                sent = {item.task_id for item, _ in live}
                for item, _ in leases:
                    current = self._leases.get(item.task_id)
                    if item.task_id not in sent and (current is None or current.holder is not session):
                        session.running.discard(item.task_id)
                self._give_credits(session, unsent)
            if not live:
                return
            if not connected:
                for _, lease in live:  # the agent left before it was told: retried once reaped
                    lease.expires = min(lease.expires, now)
                return
            for item, lease in live:  # the lease and the timeout count from now
                lease.expires = now + self._settings.lease_seconds
                if lease.deadline is not None and item.timeout_seconds:
                    lease.deadline = now + item.timeout_seconds
            session.link.send_assignments([item for item, _ in live])

        return send

    def _fail_attempt(self, task: Task, lease: Lease, error: TaskError) -> None:
        now = self._clock.time()
        attempt = lease.attempt
        attempt.state = TaskState.TIMED_OUT if error.type == ErrorType.TIMEOUT else TaskState.FAILED
        attempt.finished_at = now
        attempt.error = error
        self.writes.attempt(attempt)
        if task.cancel_requested:
            self.finish(task, TaskState.CANCELLED, error=TaskError(ErrorType.CANCELLED, "cancelled", False))
            return
        decision = decide(self._policy(task), error, task.attempts, task.max_retries)
        outcome = "retrying" if decision.retry else decision.final_state.value
        _log_failed_attempt(task, attempt, error, outcome, decision.delay if decision.retry else None)
        if not decision.retry:
            self.finish(task, decision.final_state, error=error)
            return
        task.state = TaskState.PENDING
        task.error = error
        task.agent_id = None
        task.not_before = now + decision.delay
        self._queue.retry_later(task, decision.delay)

    def _policy(self, task: Task) -> RetryPolicy:
        if task.retry is None:
            return self._retry_policies.get(task.pool_key, RetryPolicy())
        return task.retry

    def finish(self, task: Task, state: TaskState, *, output: object = None, error: TaskError | None = None) -> None:
        """End the task; listeners and waiters hear of it once this is written (`_after_write`)."""
        task.state = state
        task.output = output
        task.error = error
        task.finished_at = self._clock.time()
        self._leases.pop(task.id, None)
        self.writes.task(task, finished=True)
        self.count_finished(task)
        self._metrics.task_duration.labels(pool=f"{task.namespace}/{task.pool}").observe(
            task.finished_at - task.created_at
        )

    def count_finished(self, task: Task) -> None:
        self._metrics.tasks.labels(pool=f"{task.namespace}/{task.pool}", state=task.state.value).inc()

    def _after_write(self, finished: list[Task], refused: set[str]) -> None:
        # Listeners act on a finished task only now that it is durable (with several replicas,
        # accepted as ours), so nothing they read or write because of it can come before it.
        self._queue.written(finished, refused)
        for task in finished:
            if self._tasks.get(task.id) is task and task.state.terminal:
                del self._tasks[task.id]
            self.announce(task)

    def announce(self, task: Task) -> None:
        """Tell the listeners and waiters of a finished task (written, here or elsewhere)."""
        for listener in self._listeners:
            listener(task)
        self.wake(task)

    def wake(self, task: Task) -> None:
        for future in self._waiters.pop(task.id, []):
            if not future.done():
                future.set_result(task)

    def waits_for(self, task_id: str) -> bool:
        """Whether anyone here waits for the task to finish."""
        return task_id in self._waiters or any(interest(task_id) for interest in self._interests)

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def keep_timer(self, timer: asyncio.TimerHandle) -> None:
        """A timer cancelled when the dispatcher stops."""
        self._timers.add(timer)

    async def _reap_forever(self) -> None:
        while True:
            await self._clock.sleep(self._settings.reaper_interval_seconds)
            try:
                self.reap(self._clock.time())
            except Exception:
                log.exception("lease reaper failed")

    def reap(self, now: float) -> None:
        """Fail attempts whose lease expired or whose deadline passed."""
        for task_id, lease in list(self._leases.items()):
            task = self._tasks.get(task_id)
            if task is None:
                del self._leases[task_id]
                continue
            session = self._live_holder(lease)
            if lease.deadline is not None and now > lease.deadline:
                if session is not None:
                    session.link.send_cancel([task_id], "timeout")
                del self._leases[task_id]
                message = f"attempt {lease.attempt.number} exceeded its timeout of {task.timeout_seconds:g}s"
                self._fail_attempt(task, lease, TaskError(ErrorType.TIMEOUT, message, True))
            elif now > lease.expires:
                del self._leases[task_id]
                if lease.holder is not None:
                    lease.holder.running.discard(task_id)
                holder = lease.attempt.agent_id
                message = (
                    f"agent {holder} stopped heartbeating (lease expired)"
                    if holder
                    else "the manager replica that handed it out stopped before its agent was known"
                )
                self._fail_attempt(task, lease, TaskError(ErrorType.AGENT_LOST, message, True))
            elif lease.cancel_sent_at is not None and now > lease.cancel_sent_at + self._settings.cancel_grace_seconds:
                del self._leases[task_id]
                if lease.holder is not None:
                    lease.holder.running.discard(task_id)
                self._fail_attempt(task, lease, TaskError(ErrorType.CANCELLED, "cancel not acknowledged", False))

    def _sessions_changed(self) -> None:
        """An agent connected, left or began draining: the gauge and the agent directory follow."""
        self._queue.sessions_changed()

    def _agent_states(self) -> list[tuple[str, str]]:
        """(pool, state) of every connected agent, for `pweza_agents` (called on a scrape's thread:
        `list()` copies the sessions in one step under the GIL, so the loop cannot change them midway)."""
        return [(f"{session.namespace}/{session.pool}", session.state) for session in list(self._sessions.values())]


def _log_failed_attempt(task: Task, attempt: Attempt, error: TaskError, outcome: str, retry_in: float | None) -> None:
    """One line per failed attempt, with what a person needs to find it: never the task's input
    or output, only the error the handler (or the manager) gave."""
    log.warning(
        "task attempt failed",
        task=task.id,
        attempt=attempt.number,
        pool=f"{task.namespace}/{task.pool}",
        agent=attempt.agent_id or None,
        run=task.labels.get("run"),
        step=task.labels.get("step"),
        error_type=error.type,
        error=error.message,
        retryable=error.retryable,
        outcome=outcome,
        retry_in=None if retry_in is None else round(retry_in, 3),
    )
