"""Handlers for the tools tests: a researcher that calls the writers pool as a tool."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pweza.agent import TaskContext, TaskFailure
from pweza.agent.tools import PoolTools, read_pool_tools

WRITE_DRAFT = {
    "pool": "writers",
    "name": "write_draft",
    "description": "Have a writer draft a paragraph on a topic.",
    "inputSchema": {"type": "object", "properties": {"topic": {"type": "string"}}, "required": ["topic"]},
}


async def research(ctx: TaskContext) -> dict[str, Any]:
    """Call write_draft twice (once failing); on the first attempt, fail afterwards if asked to."""
    tools = PoolTools(ctx, read_pool_tools([WRITE_DRAFT]))
    listed = await tools.list_tools()
    draft = await tools.call_tool("write_draft", {"topic": ctx.input["topic"], "log": ctx.input["log"]})
    refused = await tools.call_tool("write_draft", {"topic": "", "log": ctx.input["log"]})
    if ctx.attempt == 1 and ctx.input.get("fail_first_attempt"):
        raise TaskFailure("the researcher fails after its tool calls, to be retried")
    return {
        "tools": [{"name": t.name, "description": t.description, "schema": dict(t.input_schema)} for t in listed],
        "draft": draft.content,
        "drafted_ok": not draft.is_error,
        "refused": {"is_error": refused.is_error, "content": refused.content},
        "attempt": ctx.attempt,
    }


def write(ctx: TaskContext) -> dict[str, Any]:
    """A writer: one line in the log per draft really written; an empty topic fails for good."""
    topic = ctx.input.get("topic")
    if not topic:
        raise TaskFailure("no topic given", type="NoTopic", retryable=False)
    with Path(ctx.input["log"]).open("a") as log:
        log.write(f"{ctx.task_id} {topic}\n")
    return {"draft": f"A short paragraph on {topic}."}
