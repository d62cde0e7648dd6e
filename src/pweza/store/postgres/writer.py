"""PostgreSQL's group-commit writer: one task that runs every queued write, in call order.

It takes everything queued so far and runs it in a single transaction, in the order the
calls were made: the write-behind of task state relies on a later write of a row landing
after an earlier one. Consecutive bulk calls of one statement share one executemany. A
batch first runs without savepoints; if one call fails, the transaction is rolled back and
the batch runs again with each call in its own savepoint, so the failing call fails alone.
An awaited write has been committed (and, with the server's default
``synchronous_commit=on``, flushed to disk) when it returns.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

from sqlalchemy import Executable
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from pweza.domain.errors import Unavailable

T = TypeVar("T")
Operation = Callable[[AsyncConnection], Awaitable[Any]]
_MAX_BATCH: Final = 512


def as_unavailable(error: BaseException) -> BaseException:
    """A failure to reach the database as the domain's `Unavailable` (HTTP 503, gRPC UNAVAILABLE:
    try again), chained to the driver's error; any other error unchanged."""
    if isinstance(error, OSError | TimeoutError) or (isinstance(error, DBAPIError) and not _is_statement_error(error)):
        unavailable = Unavailable("the database is unreachable; try again shortly")
        unavailable.__cause__ = error
        return unavailable
    return error


def _is_statement_error(error: BaseException) -> bool:
    """Whether `error` came from one statement (a constraint, bad data) rather than the connection."""
    if not isinstance(error, DBAPIError) or error.connection_invalidated:
        return False
    return not isinstance(error, (OperationalError, InterfaceError))


class _Call:
    """One queued write: an operation, or rows for one bulk statement (merged with its neighbours')."""

    __slots__ = ("error", "future", "operation", "result", "rows", "statement")

    def __init__(
        self,
        operation: Operation,
        future: asyncio.Future[Any],
        statement: Executable | None = None,
        rows: list[dict[str, Any]] | None = None,
    ) -> None:
        self.operation = operation
        self.future = future
        self.statement = statement
        self.rows = rows
        self.result: Any = None
        self.error: BaseException | None = None


class Writer:
    """Runs writes on `engine`'s connections, in group-commit transactions."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._queue: asyncio.Queue[_Call | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._serve(), name="postgres-writer")

    async def stop(self, timeout: float) -> None:
        """Finish what is queued (cancelled after `timeout` seconds); anything queued later fails."""
        task, self._task = self._task, None
        if task is None:
            return
        self._queue.put_nowait(None)
        try:
            await asyncio.wait_for(task, timeout=timeout)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def call(self, operation: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run `operation` in the next transaction; its result."""
        future: asyncio.Future[T] = self._future()
        self._queue.put_nowait(_Call(operation, future))
        return await future

    async def bulk(self, statement: Executable, rows: list[dict[str, Any]]) -> None:
        """Execute `statement` once per row (none: nothing to do); consecutive bulk calls of one
        statement share one executemany."""
        if not rows:
            return
        future: asyncio.Future[None] = self._future()

        async def run_alone(connection: AsyncConnection) -> None:
            await connection.execute(statement, rows)

        self._queue.put_nowait(_Call(run_alone, future, statement, rows))
        await future

    def _future(self) -> asyncio.Future[Any]:
        if self._task is None or self._task.done():
            raise RuntimeError("store is not open")
        return asyncio.get_running_loop().create_future()

    async def _serve(self) -> None:
        running = True
        while running:
            first = await self._queue.get()
            if first is None:
                break
            calls = [first]
            while len(calls) < _MAX_BATCH and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    running = False
                    break
                calls.append(item)
            try:
                await self._run_batch(calls)
            except BaseException as error:
                # Cancelled (stop() timed out) or a bug: nobody must wait for ever.
                for call in calls:
                    if call.error is None:
                        call.error = error if isinstance(error, Exception) else RuntimeError("store closed")
                _settle(calls)
                raise
            _settle(calls)
        # Anything queued after stop() began fails rather than hanging.
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is not None and not item.future.done():
                item.future.set_exception(RuntimeError("store is closed"))

    async def _run_batch(self, calls: list[_Call]) -> None:
        try:
            async with self._engine.begin() as connection:
                index = 0
                while index < len(calls):
                    call = calls[index]
                    index += 1
                    if call.statement is None or call.rows is None:
                        call.result = await call.operation(connection)
                        continue
                    rows = call.rows
                    if index < len(calls) and calls[index].statement is call.statement:
                        rows = list(rows)
                        while index < len(calls) and calls[index].statement is call.statement:
                            rows.extend(calls[index].rows or ())
                            index += 1
                    await connection.execute(call.statement, rows)
        except Exception as error:  # noqa: BLE001 - handed to the callers' futures
            if len(calls) == 1 or not _is_statement_error(error):
                for call in calls:
                    call.error = error
                return
            await self._run_one_by_one(calls)

    async def _run_one_by_one(self, calls: list[_Call]) -> None:
        """The slow path after a failure: each call in its own savepoint of one transaction."""
        for call in calls:
            call.error = None
        try:
            async with self._engine.begin() as connection:
                for call in calls:
                    try:
                        async with connection.begin_nested():
                            call.result = await call.operation(connection)
                    except Exception as error:
                        if not _is_statement_error(error):
                            raise
                        call.error = error
        except Exception as error:  # noqa: BLE001 - handed to the callers' futures
            for call in calls:
                call.error = error


def _settle(calls: list[_Call]) -> None:
    for call in calls:
        if call.future.done():
            continue
        if call.error is not None:
            call.future.set_exception(as_unavailable(call.error))
        else:
            call.future.set_result(call.result)
