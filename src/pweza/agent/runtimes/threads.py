"""Worker threads for sync python handlers.

Not `asyncio.to_thread` / `ThreadPoolExecutor`, for two reasons:
- they wake the event loop once per finished call (a self-pipe write and a loop
  iteration each); here threads hand results back in batches, one wake-up for all
  that finished meanwhile, which roughly halves the agent's CPU per no-op task;
- their threads are joined at interpreter exit, so one handler stuck in a C call
  would keep a drained agent from ever exiting; these are daemon threads.
"""

from __future__ import annotations

import asyncio
import contextvars
import queue
import threading
from collections.abc import Callable
from typing import Any

from pweza.agent.sdk import TaskFailure

_Job = tuple[asyncio.Future[Any], contextvars.Context, Callable[[Any], Any], Any]
_Done = tuple[asyncio.Future[Any], Any, BaseException | None]


def _awaitable_error(error: BaseException) -> BaseException:
    # SystemExit & co. would stop the agent's event loop, and a future refuses StopIteration.
    if isinstance(error, Exception) and not isinstance(error, StopIteration):
        return error
    name = type(error).__name__
    return TaskFailure(f"the handler raised {name}: {error}", type=name)


class HandlerThreads:
    # No thread cap: the runner already runs at most `slots` handlers at once, and a cancelled
    # handler still stuck in its thread must not take a slot's thread away from the next task.
    def __init__(self, name: str = "pweza-handler") -> None:
        self._name = name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._lock = threading.Lock()
        self._done: list[_Done] = []
        self._wake_scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def submit(self, function: Callable[[Any], Any], argument: Any) -> asyncio.Future[Any]:
        loop = self._loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._jobs.put((future, contextvars.copy_context(), function, argument))
        with self._lock:
            # A new thread only when none is idle: threads appear as concurrency is used.
            spawn = self._idle == 0
            if not spawn:
                self._idle -= 1
        if spawn:
            thread = threading.Thread(target=self._work, name=f"{self._name}-{len(self._threads)}", daemon=True)
            self._threads.append(thread)
            thread.start()
        return future

    def shutdown(self) -> None:
        for _ in self._threads:
            self._jobs.put(None)

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            future, context, function, argument = job
            try:
                outcome: _Done = (future, context.run(function, argument), None)
            except BaseException as error:  # noqa: BLE001 - handed to the awaiting coroutine
                outcome = (future, None, _awaitable_error(error))
            with self._lock:
                self._done.append(outcome)
                self._idle += 1
                wake = not self._wake_scheduled
                self._wake_scheduled = True
            if wake and self._loop is not None:
                try:
                    self._loop.call_soon_threadsafe(self._deliver)
                except RuntimeError:  # the loop is closed: nobody waits for this any more
                    return

    def _deliver(self) -> None:
        with self._lock:
            done, self._done = self._done, []
            self._wake_scheduled = False
        for future, value, error in done:
            if future.cancelled():
                continue
            if error is None:
                future.set_result(value)
            else:
                future.set_exception(error)
