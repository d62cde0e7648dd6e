"""Other AgentPools as tools: a call becomes a durable delegated task on the pool.

It reuses the handler SDK's delegation (`TaskContext.delegate`): the child is created by the
manager under the parent's id and a key, so a retried attempt that makes the same calls in the
same order finds the children its earlier attempt started (and their results) instead of
starting them again. The key of a call is the tool's name and its ordinal among that tool's
calls in the attempt.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pweza.agent.sdk import TaskContext, TaskFailure
from pweza.agent.template import TemplateError
from pweza.agent.tooling import ToolOutcome, ToolSpec


@dataclass(frozen=True, slots=True)
class PoolTool:
    """One entry of a template's `tools.agents`."""

    pool: str
    name: str
    description: str = ""
    input_schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "object"})
    require_approval: bool = False


def read_pool_tools(entries: Any) -> list[PoolTool]:
    """The template's `tools.agents` list (camelCase JSON)."""
    tools = []
    for entry in entries or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("pool"), str):
            raise TemplateError("tools.agents[]: expected a mapping with a pool")
        tools.append(
            PoolTool(
                pool=entry["pool"],
                name=entry.get("name") or entry["pool"],
                description=entry.get("description") or f"Delegate a task to the {entry['pool']} pool.",
                input_schema=entry.get("inputSchema") or {"type": "object"},
                require_approval=bool(entry.get("requireApproval", False)),
            )
        )
    return tools


def _agent_answer(output: Any) -> Any:
    """What a pool tool's call answers: the child's output, or, when the child ran the `agent`
    runtime, its answer alone. The rest of that output (usage, the call records with their
    timings and digests) is the child's journal: read by people, not by the calling model, whose
    prompt it would swell and make differ from run to run."""
    if isinstance(output, dict) and output.keys() == {"answer", "usage", "calls"}:
        return output["answer"]
    return output


class PoolTools:
    """pweza.agent.tooling.Tools whose tools are pools, for one attempt of one task."""

    def __init__(self, context: TaskContext, tools: Iterable[PoolTool]) -> None:
        self._context = context
        self._tools = {tool.name: tool for tool in tools}
        self._ordinals: dict[str, itertools.count[int]] = {}

    async def list_tools(self) -> Sequence[ToolSpec]:
        return [ToolSpec(tool.name, tool.description, tool.input_schema) for tool in self._tools.values()]

    async def call_tool(self, name: str, arguments: Mapping[str, Any]) -> ToolOutcome:
        tool = self._tools.get(name)
        if tool is None:
            return ToolOutcome(f"no pool tool named {name!r}", is_error=True)
        ordinal = next(self._ordinals.setdefault(name, itertools.count(1)))
        try:
            output = await self._context.delegate(tool.pool, dict(arguments), key=f"tool-{name}-{ordinal}")
        except TaskFailure as failure:  # the child failed: the model is told and may try otherwise
            return ToolOutcome(failure.message, is_error=True)
        answer = _agent_answer(output)
        return ToolOutcome(answer if isinstance(answer, str) else json.dumps(answer))

    async def aclose(self) -> None:
        return None
