"""`pweza agent`: run one agent process until it is drained, stopped or refused."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

from pweza.agent.worker import AgentRejected, AgentWorker

EXIT_OK = 0
EXIT_REJECTED = 2
# Set by a parent that starts agents as its own children (`pweza up`): when that process is
# gone, so is the reason to run. Linux also has the kernel signal us (PR_SET_PDEATHSIG); this
# is the check that works everywhere.
PARENT_PID_ENV = "PWEZA_PARENT_PID"
_PARENT_CHECK_SECONDS = 1.0


def run_agent(
    manager: str,
    pool: str,
    namespace: str,
    token: str,
    agent_id: str | None = None,
    concurrency: int | None = None,
    tls_ca: Path | None = None,
) -> int:
    """Serve `pool`; 0 after a clean drain (SIGTERM/SIGINT), 2 if the manager refused us."""
    worker = AgentWorker(
        manager=manager,
        pool=pool,
        namespace=namespace,
        token=token,
        agent_id=agent_id,
        concurrency=concurrency,
        tls_ca=tls_ca,
    )
    try:
        asyncio.run(_serve(worker))
    except AgentRejected as rejection:
        print(f"pweza agent: {rejection}", file=sys.stderr)
        return EXIT_REJECTED
    return EXIT_OK


async def _serve(worker: AgentWorker) -> None:
    loop = asyncio.get_running_loop()
    signals = 0
    stopping: set[asyncio.Task[None]] = set()

    def on_signal() -> None:
        # First signal: drain (finish in-flight work). Second: stop now.
        nonlocal signals
        signals += 1
        if signals == 1:
            worker.request_drain()
        else:
            task = loop.create_task(worker.stop())
            stopping.add(task)
            task.add_done_callback(stopping.discard)

    installed = []
    for number in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # no signal handlers on Windows
            loop.add_signal_handler(number, on_signal)
            installed.append(number)
    watching = _watch_parent(worker)
    try:
        await worker.run()
    finally:
        if watching is not None:
            watching.cancel()
        for number in installed:
            loop.remove_signal_handler(number)


def _watch_parent(worker: AgentWorker) -> asyncio.Task[None] | None:
    expected = os.environ.get(PARENT_PID_ENV, "")
    if not expected.isdigit():
        return None

    async def watch() -> None:
        while True:  # polled: no event says "your parent died" outside Linux
            if os.getppid() != int(expected):
                break
            await asyncio.sleep(_PARENT_CHECK_SECONDS)
        print(f"pweza agent: the process that started us ({expected}) is gone; stopping", file=sys.stderr)
        await worker.stop()

    return asyncio.get_running_loop().create_task(watch())
