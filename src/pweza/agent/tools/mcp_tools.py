"""A ToolServer's tools through the official MCP SDK, over streamable HTTP or stdio.

One connection per provider, opened on first use and owned by one background task: the SDK's
transports are anyio task groups, which must be left by the task that entered them, while the
model loop may call from any task. Every wait is bounded: connecting by the server's
connectTimeout, each call by its timeout. The allow-list applies before the server is asked:
a tool not allowed is neither listed nor called.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Collection, Mapping, Sequence
from contextlib import suppress
from typing import Any

import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.types import CONNECTION_CLOSED, REQUEST_TIMEOUT, CallToolResult, TextContent

from pweza.agent.tooling import ToolOutcome, ToolSpec
from pweza.agent.tools.servers import ToolServerConfig, ToolServerUnavailable

# Time the owner task gets to close the session (a DELETE, or the child's exit) before it is cancelled.
_CLOSE_GRACE = 5.0


class McpTools:
    """pweza.agent.tooling.Tools for one MCP server; `allow` None means every tool it lists."""

    def __init__(
        self,
        server: ToolServerConfig,
        *,
        allow: Collection[str] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.server = server
        self._allow = None if allow is None else frozenset(allow)
        self._environ = os.environ if environ is None else environ
        self._client: Client | None = None
        self._owner: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()
        self._lock = asyncio.Lock()

    def allowed(self, name: str) -> bool:
        return self._allow is None or name in self._allow

    async def list_tools(self) -> Sequence[ToolSpec]:
        client = await self._connected()
        tools, cursor = [], None
        for _ in range(100):  # pages; a server that never stops paging is cut off
            try:
                listed = await self._guarded(client.list_tools(cursor=cursor), "list its tools")
            except (MCPError, TimeoutError) as error:
                raise self._unavailable("could not list the tools", error) from None
            tools.extend(listed.tools)
            cursor = listed.next_cursor
            if not cursor:
                break
        return [
            ToolSpec(tool.name, tool.description or "", tool.input_schema) for tool in tools if self.allowed(tool.name)
        ]

    async def call_tool(self, name: str, arguments: Mapping[str, Any]) -> ToolOutcome:
        if not self.allowed(name):
            return ToolOutcome(f"no tool {name!r} on ToolServer {self.server.name}", is_error=True)
        client = await self._connected()
        try:
            result = await self._guarded(
                client.call_tool(name, dict(arguments), read_timeout_seconds=self.server.timeout), f"call {name}"
            )
        except MCPError as error:  # the server refused the call (unknown tool, bad arguments): the model may retry
            if error.error.code == REQUEST_TIMEOUT:
                return self._late(name)
            return ToolOutcome(f"tool {name} failed: {error.error.message}", is_error=True)
        except TimeoutError:
            return self._late(name)
        return ToolOutcome(outcome_text(result), is_error=result.is_error)

    def _late(self, name: str) -> ToolOutcome:
        return ToolOutcome(f"tool {name} did not answer within {self.server.timeout:g}s", is_error=True)

    async def aclose(self) -> None:
        self._closing.set()
        owner, self._owner, self._client = self._owner, None, None
        if owner is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(owner), _CLOSE_GRACE)
        except Exception:  # noqa: BLE001 - whatever ended it, the owner is cancelled
            owner.cancel()
            with suppress(BaseException):
                await owner

    async def _guarded(self, call: Any, what: str) -> Any:
        """Await a request; a lost connection becomes ToolServerUnavailable (and is reopened next time)."""
        try:
            async with asyncio.timeout(self.server.timeout + 1.0):
                return await call
        except MCPError as error:
            if error.error.code != CONNECTION_CLOSED:
                raise
            await self.aclose()
            raise self._unavailable(f"lost the connection while trying to {what}", error) from None
        except TimeoutError:
            raise
        except Exception as error:  # noqa: BLE001 - a transport's errors are many (httpx2, anyio, OS)
            await self.aclose()
            raise self._unavailable(f"could not {what}", error) from None

    async def _connected(self) -> Client:
        async with self._lock:
            if self._client is not None and self._owner is not None and not self._owner.done():
                return self._client
            ready: asyncio.Future[Client] = asyncio.get_running_loop().create_future()
            self._closing = asyncio.Event()
            self._owner = asyncio.create_task(self._own(ready), name=f"mcp-{self.server.name}")
            try:
                async with asyncio.timeout(self.server.connect_timeout):
                    self._client = await asyncio.shield(ready)
            except TimeoutError:
                await self.aclose()
                raise ToolServerUnavailable(
                    f"ToolServer {self.server.name}: {self.server.target} did not connect within "
                    f"{self.server.connect_timeout:g}s"
                ) from None
            except ToolServerUnavailable:
                await self.aclose()
                raise
            return self._client

    async def _own(self, ready: asyncio.Future[Client]) -> None:
        try:
            async with Client(self._transport(), read_timeout_seconds=self.server.timeout, mode="legacy") as client:
                ready.set_result(client)
                await self._closing.wait()
        except BaseException as error:  # the SDK's task groups raise groups; `ready` says why
            if not ready.done():
                ready.set_exception(self._unavailable("could not connect", error))
            if isinstance(error, asyncio.CancelledError):
                raise

    def _transport(self) -> Any:
        server = self.server
        if server.transport == "http":
            assert server.url is not None
            http = httpx2.AsyncClient(
                headers=server.resolved_headers(self._environ),
                timeout=httpx2.Timeout(server.connect_timeout, read=server.timeout),
            )
            return streamable_http_client(server.url, http_client=http)
        parameters = StdioServerParameters(
            command=server.command[0],
            args=list(server.command[1:]),
            env=dict(server.env) or None,
            cwd=server.working_dir,
        )
        return stdio_client(parameters)

    def _unavailable(self, what: str, error: BaseException) -> ToolServerUnavailable:
        if isinstance(error, ToolServerUnavailable):
            return error
        return ToolServerUnavailable(f"ToolServer {self.server.name}: {what} to {self.server.target}: {_cause(error)}")


def outcome_text(result: CallToolResult) -> str:
    """A tool's answer as text for the model: its text parts, else its structured content."""
    parts = []
    for block in result.content:
        if isinstance(block, TextContent):
            parts.append(block.text)
        else:
            parts.append(f"[{block.type} content]")
    if not parts and result.structured_content is not None:
        return json.dumps(result.structured_content)
    return "\n".join(parts)


def _cause(error: BaseException) -> str:
    """The innermost reason, out of the exception groups the SDK's task groups raise."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
