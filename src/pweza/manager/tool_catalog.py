"""What each ToolServer offers: its tools, listed by the manager and shown as the object's status.

The manager connects to every ToolServer (a stdio one's command runs on the manager's host, as
it does next to agents under `pweza up`), lists its tools, and keeps the listing in memory: a
status is what this manager saw, rediscovered after a restart, and each replica keeps its own.
A server is listed again every `refreshInterval`, and at once when a change is applied here; one
made through another replica is seen at the next sweep (SWEEP_SECONDS). The setting
`tool_discovery: false` turns it off, for a manager that must not connect out or run commands.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import structlog

from pweza.domain.records import StoredObject
from pweza.manager.registry import Registry

KIND = "ToolServer"
SWEEP_SECONDS = 10.0
# A server that could not be listed is tried again this soon, however long its refreshInterval.
RETRY_SECONDS = 30.0
MAX_SERVERS = 1000
# Servers listed at once in one sweep, so a thousand slow ones do not open a thousand connections.
_PARALLEL = 8
_log = structlog.get_logger("pweza.tools")


@dataclass(slots=True)
class _Seen:
    generation: int
    status: dict[str, Any]
    due: float


class ToolCatalog:
    def __init__(self, registry: Registry, *, enabled: bool = True) -> None:
        self._registry = registry
        self._enabled = enabled
        self._seen: dict[tuple[str, str], _Seen] = {}
        self._poke = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        registry.on_change(self._changed)

    def status(self, namespace: str, name: str) -> dict[str, Any] | None:
        seen = self._seen.get((namespace, name))
        return None if seen is None else seen.status

    async def start(self) -> None:
        if not self._enabled:
            return  # the setting tool_discovery: false; statuses stay empty
        self._task = asyncio.create_task(self._run(), name="tool-catalog")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task

    def _changed(self, kind: str, namespace: str, name: str) -> None:
        # The sweep finds what changed by the generation: applying an unchanged object (as the
        # operator does every pass) keeps the listing.
        if kind == KIND:
            self._poke.set()

    async def _run(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:  # noqa: BLE001 - a store hiccup must not end discovery for good
                _log.exception("listing ToolServers failed")
            self._poke.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._poke.wait(), SWEEP_SECONDS)

    async def sweep(self) -> None:
        """List the tools of every ToolServer whose listing is due, changed or missing."""
        servers = await self._registry.list(KIND, None, MAX_SERVERS)
        present = {(server.namespace, server.name) for server in servers}
        for key in set(self._seen) - present:
            del self._seen[key]
        now = time.monotonic()
        due = [server for server in servers if self._is_due(server, now)]
        limit = asyncio.Semaphore(_PARALLEL)

        async def refresh(server: StoredObject) -> None:
            async with limit:
                await self._refresh(server)

        await asyncio.gather(*(refresh(server) for server in due))

    def _is_due(self, server: StoredObject, now: float) -> bool:
        seen = self._seen.get((server.namespace, server.name))
        return seen is None or seen.generation != server.generation or now >= seen.due

    async def _refresh(self, server: StoredObject) -> None:
        from pweza.agent.tools.mcp_tools import McpTools  # the MCP SDK loads once a ToolServer exists
        from pweza.agent.tools.servers import read_tool_server

        config = read_tool_server(server.name, server.body["spec"])
        tools = McpTools(config)
        status: dict[str, Any]
        wait = config.refresh_interval
        try:
            async with asyncio.timeout(config.connect_timeout + config.timeout + 5.0):
                listed = await tools.list_tools()
        except Exception as error:  # noqa: BLE001 - whatever it was, the status says it and the sweep goes on
            message = _reason(error, config.connect_timeout + config.timeout)
            _log.warning("ToolServer unreachable", namespace=server.namespace, name=server.name, error=message)
            wait = min(wait, RETRY_SECONDS)
            previous = self._seen.get((server.namespace, server.name))
            status = {
                **(previous.status if previous is not None and previous.generation == server.generation else {}),
                "lastError": message,
                "conditions": [_ready(False, "Unreachable", message, server.generation)],
            }
        else:
            status = {
                "tools": [
                    {"name": tool.name, "description": tool.description, "inputSchema": dict(tool.input_schema)}
                    for tool in listed
                ],
                "toolCount": len(listed),
                "lastRefreshed": time.time(),
                "conditions": [_ready(True, "ToolsListed", f"{len(listed)} tools", server.generation)],
            }
        finally:
            await tools.aclose()
        status["observedGeneration"] = server.generation
        self._seen[(server.namespace, server.name)] = _Seen(server.generation, status, time.monotonic() + wait)


def _reason(error: Exception, bound: float) -> str:
    from pweza.agent.tools.servers import ToolServerUnavailable

    if isinstance(error, ToolServerUnavailable):
        return str(error)
    if isinstance(error, TimeoutError):
        return f"listing the tools took longer than {bound:g}s"
    return f"listing the tools failed: {type(error).__name__}: {error}"


def _ready(ok: bool, reason: str, message: str, generation: int) -> dict[str, Any]:
    return {
        "type": "Ready",
        "status": "True" if ok else "False",
        "reason": reason,
        "message": message,
        "lastTransitionTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "observedGeneration": generation,
    }
