"""What the `agent` runtime needs of tools, whoever serves them (an MCP ToolServer, another pool).

The runtime's model loop only lists tools and calls them; where a tool runs (an MCP server over
streamable HTTP or stdio, a durable delegation to a pool) is the provider's business. Providers
report a tool's own failure as an outcome with `is_error` (the model sees it and may try again);
they raise only when the provider itself cannot serve (the server is unreachable).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class ToolSpec:
    """A tool as the model is shown it: its name, what it does, and its arguments' JSON schema."""

    name: str
    description: str
    input_schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "object"})


@dataclass(frozen=True)
class ToolOutcome:
    """What a call returned, as text for the model; `is_error` when the tool itself failed."""

    content: str
    is_error: bool = False


class Tools(Protocol):
    async def list_tools(self) -> Sequence[ToolSpec]: ...

    async def call_tool(self, name: str, arguments: Mapping[str, Any]) -> ToolOutcome: ...

    async def aclose(self) -> None: ...


__all__ = ["ToolOutcome", "ToolSpec", "Tools"]
