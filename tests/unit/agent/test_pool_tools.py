"""A pool called as a tool answers the calling model with the child's output, or with the answer
alone when the child ran the `agent` runtime (its usage and call records stay in its task)."""

from __future__ import annotations

from typing import Any, cast

from pweza.agent.sdk import TaskContext
from pweza.agent.tools import PoolTools, read_pool_tools


class Delegating:
    """Just enough of a TaskContext: `delegate` returns a fixed child output."""

    def __init__(self, output: Any) -> None:
        self.output = output

    async def delegate(self, pool: str, task_input: Any, *, key: str) -> Any:
        return self.output


async def answer_to(output: Any) -> str:
    tools = PoolTools(cast(TaskContext, Delegating(output)), read_pool_tools([{"pool": "writers"}]))
    return (await tools.call_tool("writers", {"topic": "tides"})).content


async def test_an_agent_child_answers_with_its_answer_alone() -> None:
    calls = [{"index": 0, "kind": "model", "requestDigest": "9f2c", "seconds": 2.8, "response": {}}]
    output = {"answer": "Tides follow the Moon.", "usage": {"promptTokens": 273, "modelCalls": 1}, "calls": calls}
    assert await answer_to(output) == "Tides follow the Moon."
    assert await answer_to({**output, "answer": {"draft": "x"}}) == '{"draft": "x"}'


async def test_any_other_child_answers_with_its_whole_output() -> None:
    assert await answer_to({"answer": "a", "sources": []}) == '{"answer": "a", "sources": []}'
    assert await answer_to("plain text") == "plain text"
