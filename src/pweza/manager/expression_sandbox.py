"""Evaluating workflow expressions that may be costly, in worker processes under a deadline.

CEL's comprehension macros multiply work (`map` inside `map`), and the CEL library has no
cost limit: one such expression evaluated on the event loop froze the whole manager for
tens of seconds. A thread cannot be stopped, so these expressions run in a small pool of
worker processes (`python -m pweza.manager.expression_worker`); one that does not answer
within the deadline is killed, and the step fails with an ExpressionError naming the
expression and the limit. Expressions without macros are cheap (bounded by the source
length times the size of the variables) and are evaluated in place, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import pickle
import signal
import struct
import sys
from typing import Any

import structlog

from pweza.domain import expressions
from pweza.domain.expressions import ExpressionError
from pweza.manager.children import dies_with_parent

log = structlog.get_logger(__name__)
DEADLINE_SECONDS = 2.0
WORKERS = 2
_START_TIMEOUT = 60.0
_FRAME = struct.Struct("!I")


class ExpressionSandbox:
    """`evaluate` and `render` as in pweza.domain.expressions, with costly work off the loop."""

    def __init__(self, deadline: float = DEADLINE_SECONDS, workers: int = WORKERS) -> None:
        self.deadline = deadline
        self._slots = asyncio.Semaphore(workers)
        self._idle: list[_Worker] = []

    async def evaluate(self, source: str, variables: dict[str, Any]) -> Any:
        if not expressions.needs_budget(source):
            return expressions.evaluate(source, variables)
        return await self._in_worker(expressions.unwrap(source), variables)

    async def render(self, value: Any, variables: dict[str, Any]) -> Any:
        known: dict[str, Any] = {}
        for _, source in expressions.templates_in(value):
            bare = expressions.unwrap(source)
            if bare not in known and expressions.needs_budget(bare):
                known[bare] = await self._in_worker(bare, variables)
        return expressions.render(value, variables, known)

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        await asyncio.gather(*(worker.kill() for worker in idle))

    async def _in_worker(self, bare: str, variables: dict[str, Any]) -> Any:
        expressions.compile_expression(bare)  # a bad expression is refused here, with no process
        async with self._slots:
            worker = self._idle.pop() if self._idle else await _start_worker()
            try:
                failed, answer = await worker.ask(bare, variables, self.deadline)
            except BaseException:
                await worker.kill()  # it may be mid-evaluation: never hand it out again
                raise
            self._idle.append(worker)
        if failed:
            raise ExpressionError(answer)
        return answer


async def _start_worker() -> _Worker:
    """A new worker; one more try when the first dies before it is ready (seen once under a
    full CI run's load), so that a step does not fail for a helper process's start."""
    try:
        return await _Worker.start()
    except ExpressionError as error:
        log.warning("expression worker did not start; trying once more", error=str(error))
        return await _Worker.start()


def _shown(bare: str) -> str:
    """The expression for a message: its start and end when it is long."""
    return repr(bare if len(bare) <= 200 else f"{bare[:100]} ... {bare[-100:]}")


class _Worker:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls) -> _Worker:
        try:
            process = await asyncio.create_subprocess_exec(
                *dies_with_parent([sys.executable, "-m", "pweza.manager.expression_worker"], signal.SIGKILL),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
        except OSError as error:
            raise ExpressionError(f"the process that evaluates expressions could not start: {error}") from None
        worker = cls(process)
        try:
            assert process.stdout is not None
            await asyncio.wait_for(process.stdout.readexactly(1), _START_TIMEOUT)  # it is ready
        except (TimeoutError, asyncio.IncompleteReadError):
            await worker.kill()
            raise ExpressionError("the process that evaluates expressions did not start") from None
        except BaseException:
            await worker.kill()
            raise
        return worker

    async def ask(self, bare: str, variables: dict[str, Any], deadline: float) -> tuple[bool, Any]:
        """(False, value), or (True, message) when the expression failed."""
        stdin, stdout = self.process.stdin, self.process.stdout
        assert stdin is not None and stdout is not None
        request = pickle.dumps((bare, variables), protocol=pickle.HIGHEST_PROTOCOL)
        stdin.write(_FRAME.pack(len(request)) + request)
        await stdin.drain()
        try:
            async with asyncio.timeout(deadline):
                (size,) = _FRAME.unpack(await stdout.readexactly(_FRAME.size))
                failed, answer = pickle.loads(await stdout.readexactly(size))
        except TimeoutError:
            log.warning("expression stopped at its deadline", expression=_shown(bare), deadline=deadline)
            raise ExpressionError(
                f"{_shown(bare)} was stopped: it ran longer than the limit of {deadline:g} s an expression may take"
            ) from None
        except asyncio.IncompleteReadError:
            code = await self.process.wait()
            raise ExpressionError(
                f"{_shown(bare)} was stopped: the process evaluating it ended (exit code {code}), "
                f"most likely at its memory limit"
            ) from None
        return bool(failed), answer

    async def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        await self.process.wait()
