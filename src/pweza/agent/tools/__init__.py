"""Providers of `pweza.agent.tooling.Tools`: MCP ToolServers, other pools, and several as one.

`McpTools` speaks MCP (streamable HTTP or stdio, through the official SDK) to one ToolServer,
keeping to a template's allow-list; `PoolTools` turns calls into durable delegations to other
pools; `CombinedTools` shows several providers as one set with unique names.
`AgentTools` builds them from the spec a Welcome carries, once per agent (MCP sessions
shared by its attempts); `for_attempt(ctx)` gives one attempt's tools.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pweza.agent.tools.building import AgentTools, tools_for_attempt
from pweza.agent.tools.combined import CombinedTools, ToolNameClash
from pweza.agent.tools.pools import PoolTool, PoolTools, read_pool_tools
from pweza.agent.tools.servers import ToolServerConfig, ToolServerUnavailable, read_tool_server

if TYPE_CHECKING:
    from pweza.agent.tools.mcp_tools import McpTools

__all__ = [
    "AgentTools",
    "CombinedTools",
    "McpTools",
    "PoolTool",
    "PoolTools",
    "ToolNameClash",
    "ToolServerConfig",
    "ToolServerUnavailable",
    "read_pool_tools",
    "read_tool_server",
    "tools_for_attempt",
]


def __getattr__(name: str) -> Any:
    # The MCP SDK takes about a second to import: only those who use McpTools pay for it.
    if name == "McpTools":
        from pweza.agent.tools.mcp_tools import McpTools

        return McpTools
    raise AttributeError(name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
