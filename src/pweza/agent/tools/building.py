"""The tools of an agent, built from the template spec its Welcome carries.

The manager puts the ToolServers a template names into the Welcome's spec under
`toolServers` (name -> spec), so the agent needs neither the REST API nor pydantic.
`AgentTools` lives as long as the agent: its MCP sessions (a stdio server's process, an HTTP
session) are opened on first use and kept across attempts, which share them. Pool tools count
their calls per attempt, so each attempt gets its own (`for_attempt`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pweza.agent.sdk import TaskContext
from pweza.agent.template import TemplateError
from pweza.agent.tooling import ToolOutcome, Tools, ToolSpec
from pweza.agent.tools.combined import CombinedTools
from pweza.agent.tools.pools import PoolTool, PoolTools, read_pool_tools
from pweza.agent.tools.servers import read_tool_server

if TYPE_CHECKING:
    from pweza.agent.tools.mcp_tools import McpTools


class AgentTools:
    def __init__(self, spec: Mapping[str, Any]) -> None:
        from pweza.agent.tools.mcp_tools import McpTools  # the MCP SDK loads only for templates that use it

        block = spec.get("tools") or {}
        servers = spec.get("toolServers") or {}
        self._servers: dict[str, McpTools] = {}
        self._approval: set[str] = set()
        for ref in block.get("servers") or []:
            name = ref.get("toolServer")
            if name not in servers:
                raise TemplateError(f"tools.servers: ToolServer {name!r} does not exist in the template's namespace")
            self._servers[name] = McpTools(read_tool_server(name, servers[name]), allow=ref.get("allow"))
            self._approval.update(ref.get("requireApproval") or ())
        self._pool_tools: list[PoolTool] = read_pool_tools(block.get("agents"))
        self._approval.update(tool.name for tool in self._pool_tools if tool.require_approval)

    def for_attempt(self, context: TaskContext) -> CombinedTools:
        """Every tool the template allows, as one provider; its `aclose` leaves the shared sessions open."""
        providers: dict[str, Tools] = {f"ToolServer {name}": _Shared(tools) for name, tools in self._servers.items()}
        if self._pool_tools:
            providers["pool tools"] = PoolTools(context, self._pool_tools)
        return CombinedTools(providers, require_approval=self._approval)

    async def aclose(self) -> None:
        """Close the MCP sessions (stop stdio servers); when the agent stops."""
        for tools in self._servers.values():
            await tools.aclose()


def tools_for_attempt(spec: Mapping[str, Any], context: TaskContext) -> CombinedTools:
    """The tools of one attempt with sessions of their own, closed by the result's `aclose`."""
    agent_tools = AgentTools(spec)
    attempt = agent_tools.for_attempt(context)
    attempt.on_close(agent_tools.aclose)
    return attempt


class _Shared:
    """A provider shared by attempts: one attempt's `aclose` does not close it."""

    def __init__(self, tools: Tools) -> None:
        self._tools = tools

    async def list_tools(self) -> Sequence[ToolSpec]:
        return await self._tools.list_tools()

    async def call_tool(self, name: str, arguments: Mapping[str, Any]) -> ToolOutcome:
        return await self._tools.call_tool(name, arguments)

    async def aclose(self) -> None:
        return None
