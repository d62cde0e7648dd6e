"""The `agent` runtime: a model loop on the template's ModelConfig, with tools from a Tools provider."""

from __future__ import annotations

from typing import Any

import httpx

from pweza.agent.chat import ChatClient, endpoints_from
from pweza.agent.model_loop import DEFAULT_MAX_TURNS, AgentLoop, LoopSettings
from pweza.agent.sdk import TaskContext, TaskFailure
from pweza.agent.template import RuntimeSettings
from pweza.agent.tooling import Tools
from pweza.domain.tasks import ErrorType


class AgentLoopRuntime:
    """Shared by the agent's tasks: one chat client (connections, limits) and one Tools provider."""

    def __init__(
        self,
        runtime: RuntimeSettings,
        *,
        tools: Tools | None = None,
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
        self._error: str | None = None
        self._client: ChatClient | None = None
        if runtime.model_ref in runtime.missing_models or not runtime.models:
            # Kept rather than raised, as for a handler that does not import: the agent stays
            # connected and says why it cannot serve.
            self._error = f"ModelConfig {runtime.model_ref!r} does not exist in the template's namespace"
        else:
            self._client = ChatClient(endpoints_from(runtime.models), transport=transport)
        self.missing_fallbacks = [name for name in runtime.missing_models if name != runtime.model_ref]

    @property
    def load_error(self) -> str | None:
        return self._error

    def loop(self) -> AgentLoop:
        if self._client is None:
            raise TaskFailure(self._error or "no model", type=ErrorType.CONFIG, retryable=False)
        return AgentLoop(self._client, self.tools, self.settings)

    async def run(self, ctx: TaskContext) -> Any:
        loop = self.loop()
        output = await loop.run(ctx.input)
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
