"""The `shell` runtime: run a command (argv, no shell) with the JSON input on stdin."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from typing import Any

import orjson

from pweza.agent.sdk import TaskContext, TaskFailure
from pweza.agent.template import RuntimeSettings

_TAIL = 2000


class ShellRuntime:
    load_error: str | None = None  # nothing to load up front

    def __init__(self, runtime: RuntimeSettings) -> None:
        assert runtime.command
        self.command = list(runtime.command)
        self.working_dir = runtime.working_dir

    async def run(self, ctx: TaskContext) -> Any:
        env = dict(os.environ)
        env.update(
            PWEZA_TASK_ID=ctx.task_id,
            PWEZA_ATTEMPT=str(ctx.attempt),
            PWEZA_IDEMPOTENCY_KEY=ctx.idempotency_key,
        )
        try:
            process = await asyncio.create_subprocess_exec(
                *self.command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=self.working_dir,
                env=env,
                # Its own process group, so a cancel also kills whatever the command spawned.
                start_new_session=True,
            )
        except OSError as error:
            raise TaskFailure(
                f"cannot start {self.command[0]!r}: {error}", type="ShellError", retryable=False
            ) from error
        try:
            stdout, stderr = await process.communicate(orjson.dumps(ctx.input))
        except BaseException:
            # Cancelled (or timed out): no orphan may keep running after the attempt is over.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(BaseException):
                await asyncio.shield(process.wait())
            raise
        if process.returncode != 0:
            tail = stderr.decode(errors="replace")[-_TAIL:].strip()
            raise TaskFailure(f"{self.command[0]} exited with {process.returncode}: {tail}", type="ShellError")
        if not stdout.strip():
            return None
        try:
            return orjson.loads(stdout)
        except orjson.JSONDecodeError:
            # Plain-text tools (echo, wc, ...) are useful as they are: their text is the output.
            return stdout.decode(errors="replace").strip()

    async def aclose(self) -> None:
        return None
