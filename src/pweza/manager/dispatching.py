"""The dispatcher: pending tasks to agents with free slots, leases, retries, timeouts.

Everything here runs on the event loop and reacts to events (a submission, a credit, a
result, a tick of the lease reaper); the store is written for durability and read only
at start-up to recover, never polled for work.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable

import structlog

from pweza.domain.errors import Conflict, NotFound
from pweza.domain.manifests import RetryPolicy
from pweza.domain.retrying import decide
from pweza.domain.tasks import ACTIVE_STATES, Attempt, ErrorType, Task, TaskError, TaskState
from pweza.manager.config import Settings
from pweza.manager.metrics import Metrics
from pweza.manager.persisting import WriteBehind
from pweza.manager.sessions import AgentSession, AssignmentMessage, Lease, TaskRequest
from pweza.store.protocol import Store

log = structlog.get_logger(__name__)
PoolKey = tuple[str, str]
FinishListener = Callable[[Task], None]


class Dispatcher:
    def __init__(self, store: Store, settings: Settings, metrics: Metrics) -> None:
        self._store = store
        self._settings = settings
        self._metrics = metrics
        self._tasks: dict[str, Task] = {}
        self._pending: dict[PoolKey, list[tuple[int, int, str]]] = defaultdict(list)
        self._leases: dict[str, Lease] = {}
        self._sessions: dict[str, AgentSession] = {}
        self._pool_sessions: dict[PoolKey, list[AgentSession]] = defaultdict(list)
        self._retry_policies: dict[PoolKey, RetryPolicy] = {}
        self._task_policies: dict[str, RetryPolicy] = {}
        self._waiters: dict[str, list[asyncio.Future[Task]]] = defaultdict(list)
        self._listeners: list[FinishListener] = []
        self._dirty_pools: set[PoolKey] = set()
        self._pump_scheduled = False
        self._seq = itertools.count(1)
        self._reaper: asyncio.Task[None] | None = None
        self._timers: set[asyncio.TimerHandle] = set()
        self.writes = WriteBehind(store, self._after_write, metrics.database_errors.inc)

    # -- lifecycle -------------------------------------------------------------
    async def start(self) -> None:
        self._seq = itertools.count(await self._store.max_task_seq() + 1)
        now = time.time()
        recovered = await self._store.load_unfinished_tasks()
        for task in recovered:
            self._tasks[task.id] = task
            if task.state in ACTIVE_STATES and task.agent_id is not None:
                # The agent may still be running it: give it one lease to reconnect and claim it.
                attempt = Attempt(task.id, task.attempts, task.agent_id, task.started_at or now)
                self._leases[task.id] = Lease(attempt, now + self._settings.lease_seconds, None)
            else:
                task.state = TaskState.PENDING
                self._enqueue_at(task, task.not_before)
        log.info("dispatcher recovered", tasks=len(recovered), in_flight=len(self._leases))
        self._reaper = asyncio.create_task(self._reap_forever())

    async def stop(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            await asyncio.gather(self._reaper, return_exceptions=True)
        for timer in self._timers:
            timer.cancel()
        await self.writes.drain()

    def add_listener(self, listener: FinishListener) -> None:
        self._listeners.append(listener)

    def remember_retry_policy(self, pool: PoolKey, policy: RetryPolicy) -> None:
        self._retry_policies[pool] = policy

    def remember_task_policy(self, task_id: str, policy: RetryPolicy) -> None:
        """A per-task override (a workflow step's `retry`), kept until the task finishes."""
        self._task_policies[task_id] = policy

    # -- tasks -----------------------------------------------------------------
    def prepare(self, requests: Iterable[TaskRequest]) -> list[Task]:
        """New tasks, numbered but neither stored nor dispatched: the caller stores them
        (possibly with other writes, in one transaction) and then calls `enqueue`."""
        now = time.time()
        return [
            Task(
                id=request.id or str(uuid.uuid4()),
                namespace=request.namespace,
                pool=request.pool,
                input=request.input,
                priority=request.priority,
                seq=next(self._seq),
                max_retries=request.max_retries,
                timeout_seconds=request.timeout_seconds,
                created_at=now,
                labels=dict(request.labels),
                parent_id=request.parent_id,
            )
            for request in requests
        ]

    def enqueue(self, tasks: Iterable[Task]) -> None:
        """Dispatch tasks that are already durable."""
        for task in tasks:
            self._tasks[task.id] = task
            self._push(task)

    async def submit(self, requests: Iterable[TaskRequest]) -> list[Task]:
        tasks = self.prepare(requests)
        await self._store.insert_tasks(tasks)
        self.enqueue(tasks)
        return tasks

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
        task = await self.get(task_id)
        if task.state.terminal:
            raise Conflict(f"task {task_id} is already {task.state.value}")
        task.cancel_requested = True
        # Delegated children die with their parent.
        for child in [t for t in self._tasks.values() if t.parent_id == task_id and not t.state.terminal]:
            if not child.cancel_requested:
                await self.cancel(child.id, f"parent {task_id} cancelled")
        lease = self._leases.get(task_id)
        if lease is None:
            self._finish(task, TaskState.CANCELLED, error=TaskError(ErrorType.CANCELLED, reason, False))
            return task
        session = self._sessions.get(lease.attempt.agent_id)
        if session is not None:
            session.link.send_cancel([task_id], reason)
        lease.cancel_sent_at = time.time()
        self.writes.task(task)
        return task

    # -- agents ----------------------------------------------------------------
    def connect(self, session: AgentSession, in_flight: list[tuple[str, int]]) -> None:
        old = self._sessions.pop(session.id, None)
        if old is not None:
            self._pool_sessions[old.pool_key].remove(old)
        now = time.time()
        session.connected_at = session.last_seen = now
        session.credits = session.slots
        for task_id, number in in_flight:
            lease = self._leases.get(task_id)
            if lease is not None and lease.attempt.number == number:
                lease.attempt.agent_id = session.id
                lease.expires = now + self._settings.lease_seconds
                session.running.add(task_id)
                session.credits -= 1
        session.credits = max(0, session.credits)
        # Attempts we think this agent holds but it did not list: their results may still come
        # (an agent re-sends unsent results right after its hello), so give them a short grace
        # instead of the whole lease; then they fail as lost and are retried.
        listed = {task_id for task_id, _ in in_flight}
        grace = now + max(2.0, self._settings.heartbeat_seconds)
        for task_id, lease in self._leases.items():
            if lease.attempt.agent_id == session.id and task_id not in listed:
                lease.expires = min(lease.expires, grace)
        self._sessions[session.id] = session
        self._pool_sessions[session.pool_key].append(session)
        self._update_agent_gauge()
        self._request_pump(session.pool_key)

    def disconnect(self, agent_id: str, session: AgentSession | None = None) -> None:
        current = self._sessions.get(agent_id)
        if current is None or (session is not None and current is not session):
            return
        del self._sessions[agent_id]
        self._pool_sessions[current.pool_key].remove(current)
        # Its leases stay: the agent may come back and claim them, or they expire.
        self._update_agent_gauge()

    def holder(self, task_id: str) -> AgentSession | None:
        """The connected agent running the task's current attempt, if any."""
        lease = self._leases.get(task_id)
        return None if lease is None else self._sessions.get(lease.attempt.agent_id)

    def sessions(self) -> list[AgentSession]:
        return list(self._sessions.values())

    def drain(self, agent_id: str, grace_seconds: float = 30.0) -> AgentSession:
        session = self._sessions.get(agent_id)
        if session is None:
            raise NotFound(f"agent {agent_id} is not connected")
        session.draining = True
        session.link.send_drain(grace_seconds)
        self._update_agent_gauge()
        return session

    def on_credit(self, agent_id: str, slots: int) -> None:
        session = self._sessions.get(agent_id)
        if session is not None and slots:
            session.credits = min(session.slots, session.credits + slots)
            self._request_pump(session.pool_key)

    def on_started(self, agent_id: str, starts: list[tuple[str, int, float]]) -> None:
        now = time.time()
        for task_id, number, at in starts:
            lease = self._leases.get(task_id)
            task = self._tasks.get(task_id)
            if lease is not None and task is not None and lease.attempt.number == number:
                # The agent says when the handler began; its clock may differ from ours, so the
                # time is kept between the assignment and the moment we heard of it.
                started = min(max(at, lease.attempt.started_at), now) if at else now
                task.state = TaskState.RUNNING
                task.started_at = lease.attempt.started_at = started
                self.writes.task(task)

    def on_heartbeat(self, agent_id: str, refs: list[tuple[str, int]]) -> None:
        now = time.time()
        session = self._sessions.get(agent_id)
        if session is not None:
            session.last_seen = now
        for task_id, number in refs:
            lease = self._leases.get(task_id)
            if lease is not None and lease.attempt.number == number:
                lease.expires = now + self._settings.lease_seconds

    def on_result(self, agent_id: str, task_id: str, number: int, output: object, error: TaskError | None) -> None:
        session = self._sessions.get(agent_id)
        if session is not None:
            session.running.discard(task_id)
            session.last_seen = time.time()
        lease = self._leases.get(task_id)
        task = self._tasks.get(task_id)
        if lease is None or task is None or lease.attempt.number != number:
            return  # a late result of an attempt already given up on
        del self._leases[task_id]
        if error is None:
            lease.attempt.state = TaskState.SUCCEEDED
            lease.attempt.finished_at = time.time()
            self.writes.attempt(lease.attempt)
            self._finish(task, TaskState.SUCCEEDED, output=output)
        else:
            self._fail_attempt(task, lease, error)

    # -- internals -------------------------------------------------------------
    def _push(self, task: Task) -> None:
        heapq.heappush(self._pending[task.pool_key], (-task.priority, task.seq, task.id))
        self._request_pump(task.pool_key)

    def _enqueue_at(self, task: Task, when: float) -> None:
        delay = when - time.time()
        if delay <= 0:
            self._push(task)
            return
        timer = asyncio.get_running_loop().call_later(delay, self._push_if_pending, task)
        self._timers.add(timer)

    def _push_if_pending(self, task: Task) -> None:
        if task.state is TaskState.PENDING and not task.cancel_requested:
            self._push(task)

    def _request_pump(self, pool: PoolKey) -> None:
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
        now = time.time()
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
            self._sessions[agent_id].link.send_assignments(items)

    def _pop_pending(self, heap: list[tuple[int, int, str]]) -> Task | None:
        while heap:
            _, _, task_id = heapq.heappop(heap)
            task = self._tasks.get(task_id)
            if task is not None and task.state is TaskState.PENDING and not task.cancel_requested:
                return task
        return None

    def _assign(self, task: Task, session: AgentSession, now: float) -> AssignmentMessage:
        task.state = TaskState.ASSIGNED
        task.attempts += 1
        task.agent_id = session.id
        task.started_at = now
        attempt = Attempt(task.id, task.attempts, session.id, now)
        timeout = task.timeout_seconds or 0.0
        self._leases[task.id] = Lease(attempt, now + self._settings.lease_seconds, now + timeout if timeout else None)
        session.running.add(task.id)
        self.writes.task(task)
        self.writes.attempt(attempt)
        return AssignmentMessage(task.id, task.attempts, task.input, timeout, task.labels)

    def _fail_attempt(self, task: Task, lease: Lease, error: TaskError) -> None:
        now = time.time()
        attempt = lease.attempt
        attempt.state = TaskState.TIMED_OUT if error.type == ErrorType.TIMEOUT else TaskState.FAILED
        attempt.finished_at = now
        attempt.error = error
        self.writes.attempt(attempt)
        if task.cancel_requested:
            self._finish(task, TaskState.CANCELLED, error=TaskError(ErrorType.CANCELLED, "cancelled", False))
            return
        policy = self._task_policies.get(task.id) or self._retry_policies.get(task.pool_key, RetryPolicy())
        decision = decide(policy, error, task.attempts, task.max_retries)
        if not decision.retry:
            self._finish(task, decision.final_state, error=error)
            return
        task.state = TaskState.PENDING
        task.error = error
        task.agent_id = None
        task.not_before = now + decision.delay
        self.writes.task(task)
        self._enqueue_at(task, task.not_before)

    def _finish(self, task: Task, state: TaskState, *, output: object = None, error: TaskError | None = None) -> None:
        task.state = state
        task.output = output
        task.error = error
        task.finished_at = time.time()
        self._leases.pop(task.id, None)
        self._task_policies.pop(task.id, None)
        self.writes.task(task, finished=True)
        # Listeners (workflow engine, delegation) may act now: whatever they write is queued
        # behind this task's own write on the same store, so it can never land before it.
        for listener in self._listeners:
            listener(task)
        pool = f"{task.namespace}/{task.pool}"
        self._metrics.tasks.labels(pool=pool, state=state.value).inc()
        self._metrics.task_duration.labels(pool=pool).observe(task.finished_at - task.created_at)

    def _after_write(self, finished: list[Task]) -> None:
        for task in finished:
            if self._tasks.get(task.id) is task and task.state.terminal:
                del self._tasks[task.id]
            for future in self._waiters.pop(task.id, []):
                if not future.done():
                    future.set_result(task)

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(self._settings.reaper_interval_seconds)
            try:
                self.reap(time.time())
            except Exception:
                log.exception("lease reaper failed")

    def reap(self, now: float) -> None:
        """Fail attempts whose lease expired or whose deadline passed."""
        for task_id, lease in list(self._leases.items()):
            task = self._tasks.get(task_id)
            if task is None:
                del self._leases[task_id]
                continue
            session = self._sessions.get(lease.attempt.agent_id)
            if lease.deadline is not None and now > lease.deadline:
                if session is not None:
                    session.link.send_cancel([task_id], "timeout")
                del self._leases[task_id]
                message = f"attempt {lease.attempt.number} exceeded its timeout of {task.timeout_seconds:g}s"
                self._fail_attempt(task, lease, TaskError(ErrorType.TIMEOUT, message, True))
            elif now > lease.expires:
                del self._leases[task_id]
                if session is not None:
                    session.running.discard(task_id)
                message = f"agent {lease.attempt.agent_id} stopped heartbeating (lease expired)"
                self._fail_attempt(task, lease, TaskError(ErrorType.AGENT_LOST, message, True))
            elif lease.cancel_sent_at is not None and now > lease.cancel_sent_at + self._settings.cancel_grace_seconds:
                del self._leases[task_id]
                self._fail_attempt(task, lease, TaskError(ErrorType.CANCELLED, "cancel not acknowledged", False))

    def _update_agent_gauge(self) -> None:
        self._metrics.agents.clear()
        for session in self._sessions.values():
            pool = f"{session.namespace}/{session.pool}"
            self._metrics.agents.labels(pool=pool, state=session.state).inc()
