"""Receiving the replicas' notifications on a dedicated connection."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import structlog
from sqlalchemy.engine import URL

from pweza.store.postgres.channels import CHANNELS
from pweza.store.postgres.urls import listener_dsn

log = structlog.get_logger(__name__)


class Listener:
    """A dedicated connection LISTENing on the replicas' channels, reconnected when lost.

    Notifications sent while it was away are gone; `on_connect` runs after every (re)connect
    so the caller can catch up from the tables.
    """

    def __init__(
        self,
        url: URL,
        connect_timeout: float,
        on_message: Callable[[str, str], None],
        on_connect: Callable[[], Awaitable[None]],
    ) -> None:
        self._url = url
        self._connect_timeout = connect_timeout
        self._on_message = on_message
        self._on_connect = on_connect
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="postgres-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _deliver(self, _connection: Any, _pid: int, channel: str, payload: str) -> None:
        try:
            self._on_message(channel, payload)
        except Exception:
            log.exception("notification handler failed", channel=channel)

    async def _run(self) -> None:
        dsn, ssl = listener_dsn(self._url)
        arguments: dict[str, Any] = {"timeout": self._connect_timeout}
        if ssl is not None:
            arguments["ssl"] = ssl
        backoff = 0.2
        while True:
            connection: asyncpg.Connection | None = None
            try:
                connection = await asyncpg.connect(dsn, **arguments)
                for channel in CHANNELS:
                    await connection.add_listener(channel, self._deliver)
                self.connected.set()
                backoff = 0.2
                await self._on_connect()
                # A stopped server does not always close the socket at once: check it is there.
                while True:
                    await asyncio.sleep(1.0)
                    await asyncio.wait_for(connection.fetchval("SELECT 1"), 2.0)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - any failure: reconnect after a pause
                if self.connected.is_set():
                    log.warning("notification connection lost; reconnecting", error=str(error))
                self.connected.clear()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
            finally:
                if connection is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(connection.close(), 2.0)
