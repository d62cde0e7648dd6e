"""The small SDK a python handler sees: its task context and the failure it may raise.

Handlers are plain callables taking one `TaskContext`; they return a JSON-serialisable
output or raise. Delivery is at-least-once, so a handler with side effects should key
them on `ctx.idempotency_key`, which stays the same for one attempt across redeliveries.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import structlog

from pweza.domain.tasks import ErrorType

if TYPE_CHECKING:
    from pweza.agent.calls import Journal

# (pool, input, key) -> the child task's output; wired by the worker once workflows exist.
Delegator = Callable[[str, Any, str | None], Awaitable[Any]]
# () -> the attempt's durable call journal (the worker's, through the manager).
JournalOpener = Callable[[], Awaitable["Journal"]]


class TaskFailure(Exception):
    """Raise from a handler to choose the error type and whether a retry may help."""

    def __init__(self, message: str, *, type: str = ErrorType.HANDLER, retryable: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.type = type
        self.retryable = retryable


class TaskCancelled(TaskFailure):
    """What `raise_if_cancelled` raises; the worker reports Cancelled or Timeout as appropriate."""

    def __init__(self, message: str = "task cancelled") -> None:
        super().__init__(message, type=ErrorType.CANCELLED, retryable=False)


class TaskContext:
    """One attempt of one task, as its handler sees it."""

    # Slots and a lazily bound logger: the worker creates one context per task, thousands a second.
    __slots__ = (
        "_delegator",
        "_journal_opener",
        "_logger",
        "attempt",
        "cancel_reason",
        "cancelled",
        "idempotency_key",
        "input",
        "labels",
        "task_id",
    )

    def __init__(
        self,
        input: Any = None,
        *,
        task_id: str = "local",
        attempt: int = 1,
        idempotency_key: str | None = None,
        labels: Mapping[str, str] | None = None,
        delegator: Delegator | None = None,
        journal_opener: JournalOpener | None = None,
    ) -> None:
        self.input = input
        self.task_id = task_id
        self.attempt = attempt
        self.idempotency_key = idempotency_key or f"{task_id}/{attempt}"
        self.labels: Mapping[str, str] = labels if labels is not None else {}
        # Set when the manager cancels the task or its timeout passes; the handler gets a short
        # grace to notice it before its asyncio task is cancelled outright.
        self.cancelled = asyncio.Event()
        self.cancel_reason: str | None = None
        self._delegator = delegator
        self._journal_opener = journal_opener
        self._logger: Any = None

    @property
    def logger(self) -> Any:
        """A structlog logger bound to this task's id and attempt."""
        if self._logger is None:
            self._logger = structlog.get_logger("pweza.handler").bind(task_id=self.task_id, attempt=self.attempt)
        return self._logger

    def raise_if_cancelled(self) -> None:
        """For long handlers (sync ones in particular): stop at a safe point once cancelled."""
        if self.cancelled.is_set():
            raise TaskCancelled(self.cancel_reason or "task cancelled")

    def cancel(self, reason: str) -> None:
        """Called by the worker (on its event loop); handlers only read `cancelled`."""
        if self.cancel_reason is None:
            self.cancel_reason = reason
        self.cancelled.set()

    async def delegate(self, pool: str, input: Any, *, key: str | None = None) -> Any:
        """Run a child task on another pool and return its output."""
        if self._delegator is None:
            raise NotImplementedError("delegation arrives with workflows")
        return await self._delegator(pool, input, key)

    async def open_journal(self) -> Journal:
        """This attempt's call journal: kept by the manager when the agent serves one (a retried
        attempt gets the earlier attempts' records to replay), else in memory."""
        if self._journal_opener is None:
            from pweza.agent.calls import MemoryJournal

            return MemoryJournal()
        return await self._journal_opener()

    def __repr__(self) -> str:
        return f"TaskContext(task_id={self.task_id!r}, attempt={self.attempt})"
