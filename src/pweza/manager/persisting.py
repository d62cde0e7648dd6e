"""Write-behind of task state: changes made during one loop iteration go out as one batch.

Results and starts are not awaited one by one (the at-least-once contract allows a crash to
lose such a change: the attempt simply runs again), but two things wait for durability:
anything a caller is told about a finished task, and every assignment (`when_durable`): an
agent is sent an attempt only once the attempt is written, so a manager that crashes and
recovers never hands the same attempt number out a second time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Final

import structlog

from pweza.domain.tasks import Attempt, Task

log = structlog.get_logger(__name__)
# Changes that finish nothing (a task assigned, started, handed back) wait this long for more:
# a fast task is assigned, started and finished within it, and one row update carries it all.
# A finished task is written at once (someone may be waiting for it), with whatever is queued.
COALESCE_SECONDS: Final = 0.02
# Called with the finished tasks written and the ids of tasks the store refused (another
# replica owns them now).
AfterWrite = Callable[[list[Task], set[str]], None]
# Writes tasks and attempts; returns the ids of tasks it refused to write.
Writer = Callable[[list[Task], list[Attempt]], Awaitable[set[str]]]


class WriteBehind:
    def __init__(self, write: Writer, after_write: AfterWrite, on_error: Callable[[], None]) -> None:
        self._write_rows = write
        self._after_write = after_write
        self._on_error = on_error
        self._tasks: dict[str, Task] = {}
        self._attempts: dict[tuple[str, int], Attempt] = {}
        self._finished: list[Task] = []
        self._scheduled = False
        self._timer: asyncio.TimerHandle | None = None
        self._failures = 0
        self._writes: set[asyncio.Task[None]] = set()
        self._in_flight: dict[str, int] = {}
        self._callbacks: list[Callable[[], None]] = []
        self._held: set[str] = set()
        self._blocked = False  # a flush found changes to held tasks and wrote nothing

    def hold(self, task_ids: Iterable[str]) -> None:
        """Keep changes to these tasks back until `release`: they are being inserted just now
        (handed out as they were created), and an update that overtook the insert on another
        database connection would find no row."""
        self._held.update(task_ids)

    def release(self, task_ids: Iterable[str], *, inserted: bool) -> None:
        """The insert of held tasks is done; if it failed, changes to them are dropped (the
        tasks were never stored)."""
        ids = set(task_ids)
        self._held -= ids
        if not inserted:
            for task_id in ids:
                self._tasks.pop(task_id, None)
            self._attempts = {key: a for key, a in self._attempts.items() if key[0] not in ids}
            self._finished = [task for task in self._finished if task.id not in ids]
        # Only a flush that waited for them is due now; otherwise queued changes keep coalescing.
        if self._blocked:
            self._blocked = False
            self._schedule()

    def task(self, task: Task, *, finished: bool = False) -> None:
        self._tasks[task.id] = task
        if finished:
            self._finished.append(task)
            self._schedule()
        else:
            self._schedule_soon()

    def attempt(self, attempt: Attempt) -> None:
        self._attempts[(attempt.task_id, attempt.number)] = attempt
        self._schedule_soon()

    def when_durable(self, callback: Callable[[], None]) -> None:
        """Call `callback` once every change queued so far is written (in the next loop
        iteration's batch, or after its retries if the store fails meanwhile)."""
        self._callbacks.append(callback)
        self._schedule()

    def _schedule(self) -> None:
        """Write in the next loop iteration."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _schedule_soon(self) -> None:
        """Write within `COALESCE_SECONDS`, or with the next write made sooner."""
        if not self._scheduled and self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(COALESCE_SECONDS, self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._held and (
            any(task_id in self._held for task_id in self._tasks)
            or any(task_id in self._held for task_id, _ in self._attempts)
        ):
            self._blocked = True
            return  # `release` writes them once their insert is done
        if not self._tasks and not self._attempts and not self._finished:
            callbacks, self._callbacks = self._callbacks, []
            if self._in_flight and callbacks:  # written by a batch still on its way: wait for it
                self._callbacks = callbacks
                return
            for callback in callbacks:
                callback()
            return
        tasks, attempts, finished = list(self._tasks.values()), list(self._attempts.values()), self._finished
        callbacks = self._callbacks
        self._tasks, self._attempts, self._finished, self._callbacks = {}, {}, [], []
        for task in tasks:
            self._in_flight[task.id] = self._in_flight.get(task.id, 0) + 1
        # Rows are encoded now, synchronously, so later in-memory changes cannot leak in.
        write = asyncio.create_task(self._write(tasks, attempts, finished, callbacks))
        self._writes.add(write)
        write.add_done_callback(self._writes.discard)

    async def _write(
        self, tasks: list[Task], attempts: list[Attempt], finished: list[Task], callbacks: list[Callable[[], None]]
    ) -> None:
        try:
            refused = await self._write_rows(tasks, attempts)
        except Exception:
            self._out_of_flight(tasks)
            self._on_error()
            self._failures += 1
            delay = min(5.0, 0.05 * 2**self._failures)
            log.exception("task state write failed; retrying", tasks=len(tasks), attempts=len(attempts), retry_in=delay)
            # Keep the changes (newer ones queued meanwhile win) and try again: nothing is dropped.
            for task in tasks:
                self._tasks.setdefault(task.id, task)
            for attempt in attempts:
                self._attempts.setdefault((attempt.task_id, attempt.number), attempt)
            self._finished.extend(finished)
            self._callbacks[:0] = callbacks
            asyncio.get_running_loop().call_later(delay, self._schedule)
            return
        self._out_of_flight(tasks)
        self._failures = 0
        if finished or refused:
            self._after_write([task for task in finished if task.id not in refused], refused)
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("a callback after a write failed")
        if self._callbacks and not self._scheduled:
            self._schedule()  # callbacks that waited for this write (see _flush)

    def _out_of_flight(self, tasks: list[Task]) -> None:
        for task in tasks:
            left = self._in_flight.pop(task.id, 1) - 1
            if left > 0:
                self._in_flight[task.id] = left

    def unwritten(self) -> set[str]:
        """Ids of tasks with a change not yet written (queued, being written, or waiting to be
        tried again): the database may not show that change yet."""
        return set(self._tasks) | set(self._in_flight)

    async def drain(self) -> None:
        if self._scheduled or self._timer is not None:
            self._flush()
        while self._writes:
            await asyncio.gather(*list(self._writes), return_exceptions=True)
