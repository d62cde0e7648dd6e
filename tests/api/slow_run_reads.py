"""`pweza manager`, except that every read of a run waits a while first.

Run as `python -m tests.api.slow_run_reads` from the repository root, with the manager's usual
environment. The delay opens, every time, the window a busy manager opens now and then: between
the event stream's look at a run's events and its look at the run, the run's last commit lands.
"""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

from pweza.cli import serving
from pweza.domain.runs import Run
from pweza.manager.config import load_settings
from pweza.store.protocol import Store

DELAY_SECONDS = float(os.environ.get("SLOW_RUN_READS_SECONDS", "0.3"))


class SlowRunReads:
    """A store whose `get_run` waits before it reads; everything else is the store's own."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def get_run(self, run_id: str) -> Run | None:
        await asyncio.sleep(DELAY_SECONDS)
        return await self._store.get_run(run_id)


def main() -> None:
    settings = load_settings(None)
    open_store = serving.open_store
    serving.open_store = lambda url: SlowRunReads(open_store(url))  # type: ignore[assignment,return-value]

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serving.serve(settings, stop)

    asyncio.run(run())


if __name__ == "__main__":
    main()
