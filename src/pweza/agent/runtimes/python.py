"""The `python` runtime: call `package.module:callable` with the task context."""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Callable
from typing import Any

from pweza.agent.runtimes.threads import HandlerThreads
from pweza.agent.sdk import TaskContext, TaskFailure
from pweza.agent.template import RuntimeSettings
from pweza.domain.tasks import ErrorType


def load_handler(reference: str, python_path: tuple[str, ...] = ()) -> Callable[..., Any]:
    """Import `package.module:callable`, after putting the template's `pythonPath` first on sys.path."""
    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"handler {reference!r} is not 'package.module:callable'")
    # The template says where its code is (`pweza apply` made the folders absolute); a relative
    # entry left as written (e.g. by `kubectl apply`) counts from the working directory.
    for entry in reversed(python_path):
        folder = os.path.abspath(entry)
        if folder not in sys.path:
            sys.path.insert(0, folder)
    # `pweza agent` runs as a console script, whose sys.path lacks the working directory;
    # users expect `handlers:echo` next to their manifests to import like `python -m` would.
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.append(cwd)
    target: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise TypeError(f"handler {reference!r} is not callable")
    return target  # type: ignore[no-any-return]


def _is_async(handler: Callable[..., Any]) -> bool:
    call = getattr(handler, "__call__", None)  # noqa: B004 - async callable objects count too
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(call)


class PythonRuntime:
    def __init__(self, runtime: RuntimeSettings) -> None:
        assert runtime.handler is not None
        self.reference = runtime.handler
        self._handler: Callable[..., Any] | None = None
        self._error: str | None = None
        try:
            self._handler = load_handler(runtime.handler, runtime.python_path)
        except Exception as error:  # noqa: BLE001 - any import-time failure is a configuration error
            # Kept rather than raised: the agent stays connected and says why it cannot serve
            # (the manager lists it as unhealthy and sends it nothing), instead of crash-looping
            # where nobody reads its logs.
            searched = f" (pythonPath: {', '.join(runtime.python_path)})" if runtime.python_path else ""
            self._error = f"cannot load handler {runtime.handler!r}: {type(error).__name__}: {error}{searched}"
        self._async = self._handler is not None and _is_async(self._handler)
        # Sync handlers get their own threads: the loop's default executor would cap them at a
        # few and silently lower the agent's concurrency.
        self._threads: HandlerThreads | None = None
        if self._handler is not None and not self._async:
            self._threads = HandlerThreads()

    @property
    def load_error(self) -> str | None:
        return self._error

    async def run(self, ctx: TaskContext) -> Any:
        handler = self._handler
        if handler is None:
            raise TaskFailure(self._error or "no handler", type=ErrorType.CONFIG, retryable=False)
        if self._async:
            return await handler(ctx)
        assert self._threads is not None
        result = await self._threads.submit(handler, ctx)
        if inspect.isawaitable(result):  # a sync wrapper that returned a coroutine
            result = await result
        return result

    async def aclose(self) -> None:
        if self._threads is not None:
            # No waiting: a cancelled sync handler may still run, and cannot be interrupted.
            self._threads.shutdown()
