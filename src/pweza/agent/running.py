"""The attempts an agent is running: slots, timeouts, cancels, and their results.

It outlives any one stream: attempts keep running across a reconnect and their results
go out through the `Outbox` on whichever stream is current.

Credit bookkeeping: every result hands back the slot it freed, unless the slot is
taken at once by a backlogged assignment or the agent is draining. A backlog only forms
when the manager's idea of our free slots ran ahead of ours (e.g. after a reconnect
whose in-flight claim it could not match), so withholding that credit brings the two
back in line.
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

import orjson
import structlog

from pweza.agent.delegating import DelegationClient
from pweza.agent.journaling import JournalClient
from pweza.agent.outbox import Outbox
from pweza.agent.runtimes import AgentRuntime
from pweza.agent.sdk import TaskContext, TaskFailure
from pweza.domain.limits import cut_error_text, output_too_large
from pweza.domain.tasks import ErrorType, TaskError
from pweza.v1 import agent_pb2 as pb

log = structlog.get_logger(__name__)
Key = tuple[str, int]


@dataclass(slots=True, eq=False)
class _Attempt:
    ctx: TaskContext
    task: asyncio.Task[None] | None = None
    timer: asyncio.TimerHandle | None = None
    killer: asyncio.TimerHandle | None = None
    # Forced outcome (cancel, timeout, shutdown): it wins over whatever the handler returns.
    outcome: TaskError | None = None


class TaskRunner:
    def __init__(
        self,
        outbox: Outbox,
        *,
        cancel_grace: float = 2.0,
        delegations: DelegationClient | None = None,
        journals: JournalClient | None = None,
    ) -> None:
        self.runtime: AgentRuntime | None = None
        self.slots = 1
        self.draining = False
        self._outbox = outbox
        self._cancel_grace = cancel_grace
        self._delegations = delegations
        self._journals = journals
        self._running: dict[Key, _Attempt] = {}
        self._latest: dict[str, _Attempt] = {}  # task id -> its newest running attempt
        self._backlog: deque[pb.Assignment] = deque()
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def busy(self) -> int:
        return len(self._running) + len(self._backlog)

    def refs(self) -> list[pb.AttemptRef]:
        """Every attempt we hold, backlogged ones included, for heartbeats and Hello."""
        refs = [pb.AttemptRef(task_id=task_id, attempt=number) for task_id, number in self._running]
        refs.extend(pb.AttemptRef(task_id=item.task_id, attempt=item.attempt) for item in self._backlog)
        return refs

    async def wait_idle(self) -> None:
        await self._idle.wait()

    # -- from the manager ------------------------------------------------------
    def assign(self, items: Iterable[pb.Assignment]) -> None:
        for item in items:
            current = self._latest.get(item.task_id)
            if (current is not None and current.ctx.attempt >= item.attempt) or (
                self._backlog and any(queued.task_id == item.task_id for queued in self._backlog)
            ):
                self._outbox.credit(0 if self.draining else 1)  # a redelivery: its credit is unused
                continue
            if current is not None:
                # The manager gave up on that attempt; it must not run beside its successor.
                message = f"superseded by attempt {item.attempt}"
                self._abort(current, TaskError(ErrorType.AGENT_LOST, message, True), grace=0.0)
            self._idle.clear()
            if len(self._running) < self.slots:
                self._start(item)
            else:
                self._backlog.append(item)

    def cancel(self, task_ids: Iterable[str], reason: str) -> None:
        wanted = set(task_ids)
        # The manager's reaper sends reason "timeout" when the deadline passed on its clock.
        error = (
            TaskError(ErrorType.TIMEOUT, "the task exceeded its timeout", True)
            if reason == "timeout"
            else TaskError(ErrorType.CANCELLED, reason or "cancelled", False)
        )
        for task_id in wanted:
            attempt = self._latest.get(task_id)
            if attempt is not None:
                self._abort(attempt, error, grace=self._cancel_grace)
        for item in [queued for queued in self._backlog if queued.task_id in wanted]:
            self._backlog.remove(item)
            self._report(item.task_id, item.attempt, None, error, freed=0)

    def abort_all(self, error: TaskError) -> None:
        """Shutdown: give up every attempt now (no grace), reporting `error` for each."""
        while self._backlog:
            item = self._backlog.popleft()
            self._report(item.task_id, item.attempt, None, error, freed=0)
        for attempt in list(self._running.values()):
            self._abort(attempt, error, grace=0.0)

    # -- internals ---------------------------------------------------------------
    def _start(self, item: pb.Assignment) -> None:
        ctx = TaskContext(
            None,
            task_id=item.task_id,
            attempt=item.attempt,
            idempotency_key=item.idempotency_key or None,
            labels=dict(item.labels),
            delegator=None if self._delegations is None else self._delegations.for_attempt(item.task_id, item.attempt),
            journal_opener=None if self._journals is None else functools.partial(
                self._journals.open, item.task_id, item.attempt
            ),
        )  # fmt: skip
        attempt = _Attempt(ctx)
        key = (item.task_id, item.attempt)
        self._running[key] = attempt
        self._latest[item.task_id] = attempt
        loop = asyncio.get_running_loop()
        attempt.task = loop.create_task(self._execute(key, attempt, item.input_json))
        if item.timeout_seconds > 0:
            attempt.timer = loop.call_later(item.timeout_seconds, self._expire, attempt, item.timeout_seconds)
        self._outbox.started(item.task_id, item.attempt)

    def _expire(self, attempt: _Attempt, seconds: float) -> None:
        message = f"attempt {attempt.ctx.attempt} exceeded its timeout of {seconds:g}s"
        self._abort(attempt, TaskError(ErrorType.TIMEOUT, message, True), grace=self._cancel_grace)

    def _abort(self, attempt: _Attempt, error: TaskError, *, grace: float) -> None:
        if attempt.outcome is None:
            attempt.outcome = error
        attempt.ctx.cancel("timeout" if error.type == ErrorType.TIMEOUT else error.message)
        task = attempt.task
        if task is None or task.done():
            return
        if grace <= 0:
            task.cancel()
        elif attempt.killer is None:
            # A grace first, so a handler watching ctx.cancelled can stop cleanly on its own.
            attempt.killer = asyncio.get_running_loop().call_later(grace, task.cancel)

    async def _execute(self, key: Key, attempt: _Attempt, input_json: bytes) -> None:
        ctx = attempt.ctx
        output: bytes | None = None
        error: TaskError | None = None
        try:
            ctx.input = orjson.loads(input_json) if input_json else None
        except orjson.JSONDecodeError as problem:
            error = TaskError(ErrorType.INVALID_INPUT, f"the task input is not JSON: {problem}", False)
        runtime = self.runtime
        if error is None and runtime is None:
            error = TaskError(ErrorType.CONFIG, "the agent has no runtime yet", True)
        if error is None and runtime is not None:
            output, error = await self._call(runtime, ctx)
        if attempt.outcome is not None:
            output, error = None, attempt.outcome
        if attempt.timer is not None:
            attempt.timer.cancel()
        if attempt.killer is not None:
            attempt.killer.cancel()
        del self._running[key]
        if self._latest.get(key[0]) is attempt:
            del self._latest[key[0]]
        freed = 1
        if self._backlog and len(self._running) < self.slots:
            self._start(self._backlog.popleft())
            freed = 0
        self._report(key[0], key[1], output, error, freed=freed)

    async def _call(self, runtime: AgentRuntime, ctx: TaskContext) -> tuple[bytes | None, TaskError | None]:
        try:
            value = await runtime.run(ctx)
        except asyncio.CancelledError:
            # Our own cancel (its outcome is set) or a handler giving up with CancelledError.
            return None, TaskError(ErrorType.CANCELLED, ctx.cancel_reason or "cancelled", False)
        except TaskFailure as failure:
            return None, TaskError(failure.type, failure.message, failure.retryable)
        except Exception as problem:
            # Logged here because the traceback is what the handler's author needs, and the
            # result only carries the message.
            log.warning("handler raised", task_id=ctx.task_id, attempt=ctx.attempt, exc_info=True)
            return None, TaskError(type(problem).__name__, str(problem) or type(problem).__name__, True)
        try:
            return orjson.dumps(value), None
        except orjson.JSONEncodeError as problem:
            return None, TaskError(ErrorType.INVALID_OUTPUT, f"the handler's output is not JSON: {problem}", False)

    def _report(self, task_id: str, number: int, output: bytes | None, error: TaskError | None, *, freed: int) -> None:
        limit = self._outbox.payload_limit
        if error is None and output is not None and limit is not None and len(output) > limit:
            # Sent as it is, it would be refused by the manager, or cut the whole stream.
            size, output = len(output), None
            error = output_too_large(size, limit)
            log.warning("task output too large", task_id=task_id, attempt=number, size=size, limit=limit)
        if error is None:
            result = pb.TaskResult(task_id=task_id, attempt=number, ok=True, output_json=output or b"")
        else:
            info = pb.ErrorInfo(type=error.type, message=cut_error_text(error.message), retryable=error.retryable)
            result = pb.TaskResult(task_id=task_id, attempt=number, ok=False, error=info)
        self._outbox.result(result, 0 if self.draining else freed)
        if not self._running and not self._backlog:
            self._idle.set()
