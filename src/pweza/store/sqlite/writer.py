"""SQLite's group-commit writer: one connection on one thread, every call queued to it.

The thread takes everything queued so far and runs it in a single transaction (group commit),
each call inside its own savepoint so one failing call does not undo the others. Under load
this turns thousands of small writes a second into a few dozen fsync-free WAL commits.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, TypeVar

T = TypeVar("T")
Operation = Callable[[sqlite3.Connection], Any]
_MAX_BATCH: Final = 512


class _Call:
    __slots__ = ("error", "future", "operation", "result")

    def __init__(self, operation: Operation, future: asyncio.Future[Any]) -> None:
        self.operation = operation
        self.future = future
        self.result: Any = None
        self.error: BaseException | None = None


def _settle(calls: list[_Call]) -> None:
    for call in calls:
        if call.future.done():
            continue
        if call.error is not None:
            call.future.set_exception(call.error)
        else:
            call.future.set_result(call.result)


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.row_factory = sqlite3.Row
    connection.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode survives a killed process; only a power cut may lose the last commit.
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA busy_timeout=5000")
    return connection


class Writer:
    """Runs operations on the database's one connection, in group-commit transactions."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._queue: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._serve, name="sqlite-writer", daemon=True)
        self._thread.start()
        await self.call(lambda _connection: None)

    async def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            await asyncio.to_thread(self._thread.join, 10.0)
            self._thread = None

    async def call(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        """Run `operation` on the writer's thread, in the next transaction; its result.

        It must not return a cursor: freeing one on another thread corrupts the connection.
        """
        if self._thread is None or self._loop is None:
            raise RuntimeError("store is not open")
        future: asyncio.Future[T] = self._loop.create_future()
        self._queue.put(_Call(operation, future))
        return await future

    def _serve(self) -> None:
        connection = _connect(self._path)
        assert self._loop is not None
        loop = self._loop
        running = True
        while running:
            first = self._queue.get()
            if first is None:
                break
            calls = [first]
            while len(calls) < _MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    running = False
                    break
                calls.append(item)
            _run_batch(connection, calls)
            if not loop.is_closed():
                loop.call_soon_threadsafe(_settle, calls)
        connection.close()


def _run_batch(connection: sqlite3.Connection, calls: list[_Call]) -> None:
    try:
        connection.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as error:
        for call in calls:
            call.error = error
        return
    for call in calls:
        connection.execute("SAVEPOINT op")
        try:
            result = call.operation(connection)
            # A cursor must never leave this thread: freeing it elsewhere corrupts the connection.
            call.result = None if isinstance(result, sqlite3.Cursor) else result
            connection.execute("RELEASE op")
        except Exception as error:  # noqa: BLE001 - handed to the caller's future
            call.error = error
            connection.execute("ROLLBACK TO op")
            connection.execute("RELEASE op")
    try:
        connection.execute("COMMIT")
    except sqlite3.Error as error:
        connection.execute("ROLLBACK")
        for call in calls:
            call.error = error
