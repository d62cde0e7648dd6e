"""The `agent` runtime: a model loop on the template's ModelConfig, with tools from a Tools provider."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import httpx

from pweza.agent.calls import Journal
from pweza.agent.chat import ChatClient, endpoints_from
from pweza.agent.model_loop import DEFAULT_MAX_TURNS, AgentLoop, LoopSettings
from pweza.agent.sdk import TaskContext, TaskFailure
from pweza.agent.template import RuntimeSettings, TemplateError
from pweza.agent.tooling import Tools
from pweza.domain.tasks import ErrorType

if TYPE_CHECKING:
    from pweza.agent.tools import AgentTools


class AgentLoopRuntime:
    """Shared by the agent's tasks: one chat client (connections, limits) and the tools: a fixed
    provider (`tools`), or the tools block of the Welcome's template spec (`raw_spec`): MCP
    sessions shared by the attempts, pool tools delegating from the attempt that calls them."""

    def __init__(
        self,
        runtime: RuntimeSettings,
        *,
        tools: Tools | None = None,
        raw_spec: Mapping[str, Any] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = LoopSettings(
            system_prompt=runtime.system_prompt,
            max_turns=runtime.max_turns or DEFAULT_MAX_TURNS,
            max_tokens=runtime.max_tokens,
            temperature=runtime.temperature,
            output_schema=runtime.output_schema,
        )
        self.tools = tools
        self._agent_tools: AgentTools | None = None
        self._error: str | None = None
        self._client: ChatClient | None = None
        if raw_spec is not None and raw_spec.get("tools"):
            from pweza.agent.tools import AgentTools  # the MCP SDK loads only for templates with tools

            try:
                self._agent_tools = AgentTools(raw_spec)
            except TemplateError as error:  # a ToolServer it names does not exist (yet)
                self._error = str(error)
        if runtime.model_ref in runtime.missing_models or not runtime.models:
            # Kept rather than raised, as for a handler that does not import: the agent stays
            # connected and says why it cannot serve.
            self._error = f"ModelConfig {runtime.model_ref!r} does not exist in the template's namespace"
        elif self._error is None:
            self._client = ChatClient(endpoints_from(runtime.models), transport=transport)
        self.missing_fallbacks = [name for name in runtime.missing_models if name != runtime.model_ref]

    @property
    def load_error(self) -> str | None:
        return self._error

    def loop(self, tools: Tools | None = None, journal: Journal | None = None) -> AgentLoop:
        if self._client is None:
            raise TaskFailure(self._error or "no model", type=ErrorType.CONFIG, retryable=False)
        return AgentLoop(self._client, tools or self.tools, self.settings, journal=journal)

    async def run(self, ctx: TaskContext) -> Any:
        if self._client is None:
            raise TaskFailure(self._error or "no model", type=ErrorType.CONFIG, retryable=False)
        # Before any call: a retried attempt replays what the earlier ones recorded.
        journal = await ctx.open_journal()
        if self._agent_tools is None:
            output = await self.loop(journal=journal).run(ctx.input)
        else:
            attempt_tools = self._agent_tools.for_attempt(ctx)
            try:
                output = await self.loop(attempt_tools, journal).run(ctx.input)
            finally:
                await attempt_tools.aclose()  # the attempt's own; the shared MCP sessions stay open
        usage = output["usage"]
        ctx.logger.info(
            "agent loop answered", model_calls=usage["modelCalls"], tool_calls=usage["toolCalls"],
            prompt_tokens=usage["promptTokens"], completion_tokens=usage["completionTokens"],
        )  # fmt: skip
        return output

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
        if self.tools is not None:
            await self.tools.aclose()
        if self._agent_tools is not None:
            await self._agent_tools.aclose()
