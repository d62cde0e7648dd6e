"""The tools of one attempt, built from the template spec an agent's Welcome carries.

The manager puts the ToolServers a template names into the Welcome's spec under
`toolServers` (name -> spec), so the agent needs neither the REST API nor pydantic.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pweza.agent.sdk import TaskContext
from pweza.agent.template import TemplateError
from pweza.agent.tooling import Tools
from pweza.agent.tools.combined import CombinedTools
from pweza.agent.tools.pools import PoolTools, read_pool_tools
from pweza.agent.tools.servers import read_tool_server


def tools_for_attempt(spec: Mapping[str, Any], context: TaskContext) -> CombinedTools:
    """Every tool the template allows, as one provider (closed with `aclose` after the attempt)."""
    from pweza.agent.tools.mcp_tools import McpTools  # the MCP SDK loads only for templates that use it

    block = spec.get("tools") or {}
    servers = spec.get("toolServers") or {}
    providers: dict[str, Tools] = {}
    approvals: set[str] = set()
    for ref in block.get("servers") or []:
        name = ref.get("toolServer")
        if name not in servers:
            raise TemplateError(f"tools.servers: ToolServer {name!r} does not exist in the template's namespace")
        allow = ref.get("allow")
        providers[f"ToolServer {name}"] = McpTools(read_tool_server(name, servers[name]), allow=allow)
        approvals.update(ref.get("requireApproval") or ())
    pool_tools = read_pool_tools(block.get("agents"))
    if pool_tools:
        providers["pool tools"] = PoolTools(context, pool_tools)
        approvals.update(tool.name for tool in pool_tools if tool.require_approval)
    return CombinedTools(providers, require_approval=approvals)
