"""Built-in runtime kinds: how an agent turns a task's input into its output.

A runtime is built once per agent from the template's `runtime` block and shared by all
of the agent's concurrent tasks, so it holds the expensive parts (imported handler,
HTTP connection pool, thread pool) and `run` stays cheap. Runtimes report failures by
raising `TaskFailure` with the error type and retryability; anything else a handler
raises is classified by the worker.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from pweza.agent.sdk import TaskContext
from pweza.agent.template import AgentTemplateView
from pweza.agent.tooling import Tools


class AgentRuntime(Protocol):
    async def run(self, ctx: TaskContext) -> Any: ...

    @property
    def load_error(self) -> str | None:
        """Why the runtime cannot serve (e.g. its handler does not import); None when it can."""

    async def aclose(self) -> None: ...


def build_runtime(
    spec: AgentTemplateView, *, concurrency: int, tools: Tools | None = None, raw_spec: Mapping[str, Any] | None = None
) -> AgentRuntime:
    """The template's runtime. An agent runtime's model gets `tools` if given, else the tools
    block of `raw_spec` (the Welcome's template spec, with the ToolServers it names)."""
    runtime = spec.runtime
    # Imported per kind so an agent only loads what its kind needs.
    if runtime.kind == "python":
        from pweza.agent.runtimes.python import PythonRuntime

        return PythonRuntime(runtime)
    if runtime.kind == "http":
        from pweza.agent.runtimes.http import HttpRuntime

        return HttpRuntime(runtime, concurrency=concurrency)
    if runtime.kind == "llm":
        from pweza.agent.runtimes.http import LlmRuntime

        return LlmRuntime(runtime, concurrency=concurrency)
    if runtime.kind == "agent":
        from pweza.agent.runtimes.agent import AgentLoopRuntime

        return AgentLoopRuntime(runtime, tools=tools, raw_spec=None if tools is not None else raw_spec)
    if runtime.kind == "shell":
        from pweza.agent.runtimes.shell import ShellRuntime

        return ShellRuntime(runtime)
    raise ValueError(f"unknown runtime kind {runtime.kind!r}")


__all__ = ["AgentRuntime", "build_runtime"]
