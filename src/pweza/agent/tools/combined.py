"""Several tools providers shown to the model as one.

Tool names must be unique across the providers: the model calls a tool by its name alone.
A clash is not guessed away: listing raises ToolNameClash naming the tool and both providers,
so a template that combines two servers offering the same tool fails its first attempt with a
message saying which to narrow with `allow`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from contextlib import suppress
from typing import Any

from pweza.agent.tooling import ToolOutcome, Tools, ToolSpec


class ToolNameClash(ValueError):
    """Two providers offer a tool of the same name."""


class CombinedTools:
    def __init__(self, providers: Mapping[str, Tools], *, require_approval: Collection[str] = ()) -> None:
        """`providers` by a name for messages (e.g. "ToolServer notes", "pool tools")."""
        self._providers = dict(providers)
        self._owner: dict[str, Tools] = {}
        self._approval = frozenset(require_approval)
        self._on_close: list[Callable[[], Awaitable[None]]] = []

    def on_close(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Something more to do in `aclose`, after the providers are closed."""
        self._on_close.append(callback)

    def requires_approval(self, name: str) -> bool:
        """Whether a call of the tool must wait for a person's approval (the template's requireApproval)."""
        return name in self._approval

    async def list_tools(self) -> Sequence[ToolSpec]:
        owners: dict[str, tuple[str, Tools]] = {}
        tools: list[ToolSpec] = []
        for label, provider in self._providers.items():
            for tool in await provider.list_tools():
                if tool.name in owners:
                    raise ToolNameClash(
                        f"tool {tool.name!r} is offered by both {owners[tool.name][0]} and {label}; "
                        "leave it out of one of them (its allow list)"
                    )
                owners[tool.name] = (label, provider)
                tools.append(tool)
        self._owner = {name: provider for name, (_, provider) in owners.items()}
        return tools

    async def call_tool(self, name: str, arguments: Mapping[str, Any]) -> ToolOutcome:
        if not self._owner:
            await self.list_tools()
        provider = self._owner.get(name)
        if provider is None:
            known = ", ".join(sorted(self._owner)) or "none"
            return ToolOutcome(f"no tool named {name!r}; the tools are: {known}", is_error=True)
        return await provider.call_tool(name, arguments)

    async def aclose(self) -> None:
        for provider in self._providers.values():
            with suppress(Exception):
                await provider.aclose()
        for callback in self._on_close:
            with suppress(Exception):
                await callback()
