"""A stand-in for the MCP tool provider (pweza.agent.tooling.Tools): one weather tool whose
calls are recorded, as a side-effect log would."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pweza.agent.tooling import ToolOutcome, ToolSpec

WEATHER = ToolSpec(
    name="get_weather",
    description="The current weather in a city",
    input_schema={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


class StandInTools:
    def __init__(self, *, fail: bool = False) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.closed = False
        self.fail = fail

    async def list_tools(self) -> Sequence[ToolSpec]:
        return [WEATHER]

    async def call_tool(self, name: str, arguments: Mapping[str, Any]) -> ToolOutcome:
        self.calls.append((name, dict(arguments)))
        if self.fail:
            return ToolOutcome("the weather service is down", is_error=True)
        return ToolOutcome(f"sunny and 21 C in {arguments.get('city', 'nowhere')}")

    async def aclose(self) -> None:
        self.closed = True
