"""`pweza agent`: run one agent process until it is drained, stopped or refused."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from pathlib import Path

from pweza.agent.worker import AgentRejected, AgentWorker

EXIT_OK = 0
EXIT_REJECTED = 2


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
    try:
        await worker.run()
    finally:
        for number in installed:
            loop.remove_signal_handler(number)
