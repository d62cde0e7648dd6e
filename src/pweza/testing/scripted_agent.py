"""An agent that lives in the test's own process and does what its script says.

It speaks to the dispatcher through the same interface the gRPC channel uses (an `AgentLink`
to receive assignments and cancels; `on_started`, `on_result`, `on_credit` and `on_heartbeat`
to answer), so a test sees the manager exactly as a fleet of real agents would, without a
process, a port or a handler module. Its waits (`after=`) and heartbeats run on the manager's
clock: with a `FakeClock` they happen when the test advances it.

A script is one of:

- a function of the `ScriptedTask`, sync or async: it returns the output (or an `Outcome`), or
  raises (`pweza.agent.TaskFailure` chooses the error type and whether a retry may help; any other
  exception is a retryable handler error, as with a real handler);
- a list of outcomes, used one per attempt in order (a plain value means `Reply(value)`); an
  attempt after the last one fails with `ScriptExhausted`, never retried;
- a mapping from a workflow step's name (the task's `step` label) to one of the above, with `"*"`
  for every other task.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

from pweza.agent.sdk import TaskFailure
from pweza.domain.tasks import ErrorType, TaskError
from pweza.manager.sessions import AgentSession, AssignmentMessage, DelegatedResult

if TYPE_CHECKING:
    from pweza.manager.clock import Clock
    from pweza.manager.service import Manager


@dataclass(frozen=True, slots=True)
class Reply:
    """Succeed with `output`, `after` seconds (of the manager's clock) into the attempt."""

    output: Any = None
    after: float = 0.0


@dataclass(frozen=True, slots=True)
class Fail:
    """Fail the attempt with this error, `after` seconds into it."""

    message: str = "scripted failure"
    type: str = ErrorType.HANDLER
    retryable: bool = True
    after: float = 0.0


@dataclass(frozen=True, slots=True)
class Hang:
    """Never answer, but keep the attempt alive with heartbeats: it ends by its timeout or a cancel."""


@dataclass(frozen=True, slots=True)
class Vanish:
    """Never answer and stop heartbeating the attempt, as an agent that froze: its lease runs out."""


Outcome: TypeAlias = Reply | Fail | Hang | Vanish
Handler: TypeAlias = Callable[["ScriptedTask"], Any]
StepScript: TypeAlias = Handler | Sequence[Any]
Script: TypeAlias = StepScript | Mapping[str, StepScript]
_ids = itertools.count(1)


@dataclass(slots=True)
class ScriptedTask:
    """One attempt as the script sees it."""

    task_id: str
    attempt: int
    input: Any
    labels: dict[str, str]
    started_at: float
    cancelled: str | None = None  # the reason, once the manager cancelled the attempt
    outcome: TaskError | None = None  # how it ended, None while running or once it succeeded
    finished: bool = False

    @property
    def step(self) -> str | None:
        return self.labels.get("step")


class ScriptedAgent:
    """An agent of `pool` following `script`; `slots` defaults to the template's concurrency."""

    def __init__(
        self,
        pool: str,
        script: Script,
        *,
        namespace: str = "default",
        slots: int | None = None,
        agent_id: str | None = None,
    ) -> None:
        self.pool = pool
        self.namespace = namespace
        self.id = agent_id or f"scripted-{pool}-{next(_ids)}"
        self._slots = slots
        self._scripts = _per_step(script)
        self._lists: dict[str, Iterator[Any]] = {}
        self.tasks: list[ScriptedTask] = []
        self.peak_running = 0
        self.cancels: list[tuple[str, str]] = []
        self.acknowledged: list[tuple[str, int]] = []  # results the manager said it wrote
        self._running: dict[str, tuple[ScriptedTask, asyncio.Task[None]]] = {}
        self._silent: set[tuple[str, int]] = set()  # attempts that stopped heartbeating (Vanish)
        self._session: AgentSession | None = None
        self._manager: Manager | None = None
        self._clock: Clock | None = None
        self._heartbeats: asyncio.Task[None] | None = None

    # -- what a test reads -----------------------------------------------------
    @property
    def running(self) -> list[ScriptedTask]:
        """The attempts this agent holds now."""
        return [task for task, _ in self._running.values()]

    def attempts_of(self, task_id: str) -> list[ScriptedTask]:
        return [task for task in self.tasks if task.task_id == task_id]

    @property
    def connected(self) -> bool:
        return self._session is not None

    def send_credit(self, slots: int) -> None:
        """Say `slots` slots are free, as the agent's Credit message does (true or not)."""
        assert self._manager is not None and self._session is not None, "the agent is not connected"
        self._manager.dispatcher.on_credit(self._session, slots)

    # -- joining and leaving ---------------------------------------------------
    async def connect(self, manager: Manager, clock: Clock) -> None:
        """Join the manager as a real agent's hello would (the pool and its template must exist)."""
        policy = await manager.registry.pool_policy(self.namespace, self.pool)
        concurrency = policy.template.concurrency
        slots = concurrency if self._slots is None else self._slots
        manager.dispatcher.remember_retry_policy((self.namespace, self.pool), policy.template.retry)
        session = AgentSession(
            id=self.id,
            namespace=self.namespace,
            pool=self.pool,
            template=policy.template_name,
            capabilities=list(policy.template.capabilities),
            slots=slots,
            max_slots=concurrency,
            link=self,
            token_id="scripted",
        )
        self._manager, self._clock, self._session = manager, clock, session
        manager.dispatcher.connect(session, [])
        self._heartbeats = asyncio.create_task(self._heartbeat_forever(), name=f"{self.id}-heartbeats")

    async def disconnect(self) -> None:
        """Leave as a killed agent does: attempts in flight are abandoned, unanswered."""
        session, self._session = self._session, None
        if session is None:
            return
        assert self._manager is not None
        self._manager.dispatcher.disconnect(session.id, session)
        work = [task for _, task in self._running.values()]
        if self._heartbeats is not None:
            work.append(self._heartbeats)
        for task in work:
            task.cancel()
        await asyncio.gather(*work, return_exceptions=True)
        self._running.clear()

    # -- the AgentLink the dispatcher talks to ---------------------------------
    def send_assignments(self, items: list[AssignmentMessage]) -> None:
        for item in items:
            assert self._clock is not None
            task = ScriptedTask(item.task_id, item.attempt, item.input, dict(item.labels), self._clock.time())
            self.tasks.append(task)
            superseded = self._running.get(task.task_id)
            if superseded is not None:  # the manager gave up on that attempt: it stops, unheard
                superseded[1].cancel()
            runner = asyncio.create_task(self._run(task), name=f"{self.id}-{item.idempotency_key}")
            self._running[task.task_id] = (task, runner)
        self.peak_running = max(self.peak_running, len(self._running))

    def send_cancel(self, task_ids: list[str], reason: str) -> None:
        for task_id in task_ids:
            self.cancels.append((task_id, reason))
            held = self._running.get(task_id)
            if held is not None and (task_id, held[0].attempt) not in self._silent:
                held[0].cancelled = reason
                held[1].cancel()

    def send_drain(self, grace_seconds: float) -> None:
        """Nothing to wind down: the dispatcher sends a draining agent nothing new."""

    def send_delegate_result(self, request_id: str, task: DelegatedResult) -> None:
        raise NotImplementedError("scripted agents do not delegate")

    def send_results_ack(self, attempts: list[tuple[str, int]]) -> None:
        self.acknowledged.extend(attempts)

    def close(self) -> None:
        asyncio.get_running_loop().create_task(self.disconnect())

    # -- internals -------------------------------------------------------------
    async def _run(self, task: ScriptedTask) -> None:
        manager, session, clock = self._manager, self._session, self._clock
        assert manager is not None and session is not None and clock is not None
        dispatcher = manager.dispatcher
        dispatcher.on_started(session, [(task.task_id, task.attempt, task.started_at)])
        output: Any = None
        try:
            outcome = await self._outcome(task)
            if isinstance(outcome, Vanish):
                self._silent.add((task.task_id, task.attempt))
            if isinstance(outcome, Hang | Vanish):
                await asyncio.Event().wait()
            assert isinstance(outcome, Reply | Fail)
            await clock.sleep(outcome.after)
            if isinstance(outcome, Fail):
                task.outcome = TaskError(outcome.type, outcome.message, outcome.retryable)
            else:
                output = outcome.output
        except asyncio.CancelledError:
            if task.cancelled is None:
                raise  # the agent itself went away: nothing is reported
            # As the real runner: a cancel for "timeout" is the manager's deadline passing.
            if task.cancelled == "timeout":
                task.outcome = TaskError(ErrorType.TIMEOUT, "the task exceeded its timeout", True)
            else:
                task.outcome = TaskError(ErrorType.CANCELLED, task.cancelled, False)
        task.finished = True
        if self._running.get(task.task_id, (None,))[0] is task:
            del self._running[task.task_id]
        if self._session is session:
            dispatcher.on_result(session, task.task_id, task.attempt, output, task.outcome)
            dispatcher.on_credit(session, 1)

    async def _outcome(self, task: ScriptedTask) -> Outcome:
        key = task.step if task.step in self._scripts else "*"
        script = self._scripts.get(key)
        if script is None:
            return Fail(f"the script has nothing for step {task.step!r}", "ScriptExhausted", retryable=False)
        if callable(script):
            try:
                value = script(task)
                if inspect.isawaitable(value):
                    value = await value
            except TaskFailure as failure:
                return Fail(failure.message, failure.type, failure.retryable)
            except Exception as problem:  # noqa: BLE001 - a handler's error, reported as a real agent does
                return Fail(str(problem) or type(problem).__name__, type(problem).__name__, retryable=True)
            return _as_outcome(value)
        remaining = self._lists.setdefault(key, iter(script))
        value = next(remaining, _EXHAUSTED)
        if value is _EXHAUSTED:
            return Fail(f"the script for {key!r} has no outcome left for attempt {task.attempt}", "ScriptExhausted",
                        retryable=False)  # fmt: skip
        return _as_outcome(value)

    async def _heartbeat_forever(self) -> None:
        manager, session, clock = self._manager, self._session, self._clock
        assert manager is not None and session is not None and clock is not None
        while True:
            await clock.sleep(manager.settings.heartbeat_seconds)
            refs = [(task.task_id, task.attempt) for task, _ in self._running.values()]
            refs = [ref for ref in refs if ref not in self._silent]
            manager.dispatcher.on_heartbeat(session, refs)


_EXHAUSTED = object()


def _as_outcome(value: Any) -> Outcome:
    return value if isinstance(value, Reply | Fail | Hang | Vanish) else Reply(value)


def _per_step(script: Script) -> dict[str, StepScript]:
    if isinstance(script, Mapping):
        return dict(script)
    return {"*": script}
