"""The `agent` runtime's loop: model call, tool calls, their results back to the model, until an answer.

Each model call and each tool call is one step through the `Journal` (pweza.agent.calls): the
loop's state is nothing but its messages, and every message comes from the task's input or
from a recorded answer, so a journal that has the answers can replay an attempt up to where it
stopped. The last turn offers the model no tools, so a loop ends with an answer within
`max_turns` model calls (plus, with an output schema, one retry of an answer that did not
follow it).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from pweza.agent.calls import CallRecord, Journal, MemoryJournal, digest
from pweza.agent.chat import ChatChunk, ChatClient, ChatResult, ModelError, Usage
from pweza.agent.sdk import TaskFailure
from pweza.agent.tooling import ToolOutcome, Tools, ToolSpec

DEFAULT_MAX_TURNS = 8
ASK_FOR_JSON = "Now give your final answer as JSON that follows the requested schema."
ChunkListener = Callable[[ChatChunk], None]


@dataclass(frozen=True, slots=True)
class LoopSettings:
    system_prompt: str | None = None
    max_turns: int = DEFAULT_MAX_TURNS
    max_tokens: int | None = None
    temperature: float | None = None
    output_schema: Mapping[str, Any] | None = None


def _tool_definitions(specs: Sequence[ToolSpec]) -> list[dict[str, Any]]:
    return [
        {
            "type": "function",
            "function": {"name": s.name, "description": s.description, "parameters": dict(s.input_schema)},
        }
        for s in specs
    ]


def _user_message(task_input: Any) -> dict[str, Any]:
    content = task_input if isinstance(task_input, str) else orjson.dumps(task_input).decode()
    return {"role": "user", "content": content}


def _schema_problem(schema: Mapping[str, Any], text: str | None) -> tuple[Any, str | None]:
    """The parsed answer and what is wrong with it (None: it follows the schema)."""
    from jsonschema import Draft202012Validator  # imported by templates with a schema only

    try:
        answer = orjson.loads(text or "")
    except orjson.JSONDecodeError as error:
        return None, f"the answer is not JSON ({error})"
    problem = next(iter(Draft202012Validator(schema).iter_errors(answer)), None)
    if problem is None:
        return answer, None
    where = "/".join(str(part) for part in problem.absolute_path) or "(the answer)"
    return answer, f"at {where}: {problem.message}"


class AgentLoop:
    """One attempt's loop; `run` returns the task output: the answer, the usage and the call records."""

    def __init__(
        self,
        client: ChatClient,
        tools: Tools | None,
        settings: LoopSettings,
        *,
        journal: Journal | None = None,
        on_chunk: ChunkListener | None = None,
    ) -> None:
        self._client = client
        self._tools = tools
        self._settings = settings
        self.journal = journal if journal is not None else MemoryJournal()
        self._on_chunk = on_chunk
        self.records: list[CallRecord] = []

    # -- steps: each goes through the journal ------------------------------------------------
    async def _step(self, record: CallRecord) -> CallRecord:
        await self.journal.record(record)
        self.records.append(record)
        return record

    async def _model_call(self, request: dict[str, Any]) -> ChatResult:
        index, key = len(self.records), digest("model", request)
        earlier = self.journal.recorded(index, key)
        if earlier is not None:
            await self._step(CallRecord(index, "model", key, earlier.response, earlier.usage, replayed=True))
            return _chat_result(earlier)
        await self.journal.before_model_call(request)
        started = time.monotonic()
        try:
            streamed = self._on_chunk is not None or self.journal.streams
            room = self.journal.model_room
            result = await (self._streamed(index, request) if streamed else self._client.complete(request, room=room))
        except ModelError as error:
            raise TaskFailure(error.message, type="ModelError", retryable=error.retryable) from None
        response = {
            "message": result.message,
            "finishReason": result.finish_reason,
            "model": result.model,
            "endpoint": result.endpoint,
            "failures": result.failures,
        }
        await self._step(CallRecord(index, "model", key, response, result.usage.as_json(), time.monotonic() - started))
        return result

    async def _streamed(self, index: int, request: dict[str, Any]) -> ChatResult:
        """The model's reply, its pieces handed on as they come (to `on_chunk`, to the journal)."""
        async for event in self._client.stream(request, room=self.journal.model_room):
            if isinstance(event, ChatResult):
                return event
            if self._on_chunk is not None:
                self._on_chunk(event)
            if self.journal.streams:
                self._stream_piece(index, event)
        raise ModelError("the stream ended without a reply", retryable=True)

    def _stream_piece(self, index: int, chunk: ChatChunk) -> None:
        if chunk.content:
            self.journal.stream(index, chunk.content, "", "")
        for part in chunk.tool_calls:
            function = part.get("function") or {}
            name, arguments = str(function.get("name") or ""), str(function.get("arguments") or "")
            if name or arguments:
                self.journal.stream(index, "", name, arguments)

    async def _tool_call(self, call: Mapping[str, Any], known: set[str]) -> ToolOutcome:
        function = call.get("function") or {}
        name = str(function.get("name") or "")
        arguments_text = function.get("arguments") or "{}"
        request = {"name": name, "arguments": arguments_text}
        index, key = len(self.records), digest("tool", request)
        earlier = self.journal.recorded(index, key)
        if earlier is not None:
            await self._step(CallRecord(index, "tool", key, earlier.response, replayed=True))
            return ToolOutcome(str(earlier.response["content"]), bool(earlier.response["isError"]))
        started = time.monotonic()
        refusal = await self._approval(name, arguments_text, known)
        outcome = refusal or await self._call(name, arguments_text, known)
        response = {"name": name, "content": outcome.content, "isError": outcome.is_error}
        await self._step(CallRecord(index, "tool", key, response, seconds=time.monotonic() - started))
        return outcome

    async def _approval(self, name: str, arguments_text: Any, known: set[str]) -> ToolOutcome | None:
        """For a tool the template marks requireApproval: wait for a person's decision; a rejection
        is the call's outcome (an error the model reads and can go on without), None lets it run.

        The key counts the tool's calls in the conversation, so a replayed attempt asks again with
        the same key and the manager answers with the decision already made."""
        needs = getattr(self._tools, "requires_approval", None)
        if name not in known or needs is None or not needs(name):
            return None
        n = 1 + sum(1 for r in self.records if r.kind == "tool" and r.response.get("name") == name)
        try:
            arguments = orjson.loads(arguments_text) if isinstance(arguments_text, str) else arguments_text
        except orjson.JSONDecodeError:
            return None  # not a call that can run: _call tells the model what is wrong
        if not isinstance(arguments, dict):
            return None
        decision = await self.journal.approve(f"approval-{name}-{n}", name, arguments)
        if decision.approved:
            return None
        because = f": {decision.comment}" if decision.comment else ""
        return ToolOutcome(f"the call of {name} was rejected by {decision.by}{because}", True)

    async def _call(self, name: str, arguments_text: Any, known: set[str]) -> ToolOutcome:
        # The model's mistakes go back to it as errors it can correct; only a provider that cannot
        # serve at all fails the attempt.
        if name not in known or self._tools is None:
            return ToolOutcome(f"there is no tool named {name!r}; the tools are {', '.join(sorted(known))}", True)
        try:
            arguments = orjson.loads(arguments_text) if isinstance(arguments_text, str) else arguments_text
        except orjson.JSONDecodeError as error:
            return ToolOutcome(f"the arguments are not JSON: {error}", True)
        if not isinstance(arguments, dict):
            return ToolOutcome("the arguments must be a JSON object", True)
        try:
            return await self._tools.call_tool(name, arguments)
        except TaskFailure:
            raise
        except Exception as error:  # whatever else the provider raised, a later attempt may succeed
            raise TaskFailure(f"tool {name!r} could not be called: {error}", type="ToolError") from error

    # -- the loop ------------------------------------------------------------------------------
    def _request(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> dict[str, Any]:
        settings = self._settings
        request: dict[str, Any] = {"messages": list(messages)}
        if settings.max_tokens is not None:
            request["max_tokens"] = settings.max_tokens
        if settings.temperature is not None:
            request["temperature"] = settings.temperature
        if tools:
            request["tools"] = tools
        elif settings.output_schema is not None:
            # Tools and a grammar for the answer do not mix (given both, llama.cpp's grammar
            # replaces its tool-call format and calls come back as text): a schema constrains
            # the turns that offer no tools.
            schema = {"name": "answer", "schema": dict(settings.output_schema), "strict": True}
            request["response_format"] = {"type": "json_schema", "json_schema": schema}
        return request

    async def run(self, task_input: Any) -> dict[str, Any]:
        settings = self._settings
        specs = list(await self._tools.list_tools()) if self._tools is not None else []
        definitions = _tool_definitions(specs)
        known = {spec.name for spec in specs}
        messages: list[dict[str, Any]] = []
        if settings.system_prompt:
            messages.append({"role": "system", "content": settings.system_prompt})
        messages.append(_user_message(task_input))
        final, retried = False, False
        # At most max_turns calls, and one more to retry an answer that did not follow the schema.
        for turn in range(1, settings.max_turns + 2):
            offered = definitions if definitions and not final and turn < settings.max_turns else []
            request = self._request(messages, offered)
            result = await self._model_call(request)
            messages.append(_assistant_message(result))
            if result.tool_calls:
                if not offered:
                    raise TaskFailure("the model asked for tools when none were offered", type="ModelError")
                for call in result.tool_calls:
                    outcome = await self._tool_call(call, known)
                    content = f"error: {outcome.content}" if outcome.is_error else outcome.content
                    messages.append({"role": "tool", "tool_call_id": call.get("id") or "", "content": content})
                continue
            if settings.output_schema is None:
                return self._output(result.content or "")
            if "response_format" not in request:
                messages.append({"role": "user", "content": ASK_FOR_JSON})
                final = True
                continue
            answer, problem = _schema_problem(settings.output_schema, result.content)
            if problem is None:
                return self._output(answer)
            if retried:
                raise TaskFailure(f"the answer does not follow outputSchema: {problem}", type="InvalidAnswer",
                                  retryable=False)  # fmt: skip
            retried, final = True, True
            messages.append({"role": "user", "content": f"That answer is not valid: {problem}. {ASK_FOR_JSON}"})
        raise TaskFailure(f"no answer within {settings.max_turns} model calls", type="MaxTurns", retryable=False)

    def _output(self, answer: Any) -> dict[str, Any]:
        models = [r for r in self.records if r.kind == "model"]
        paid = [r for r in models if not r.replayed]  # a replayed call's tokens were paid by an earlier attempt
        usage = {
            "promptTokens": sum((r.usage or {}).get("promptTokens", 0) for r in paid),
            "completionTokens": sum((r.usage or {}).get("completionTokens", 0) for r in paid),
            "modelCalls": len(models),
            "toolCalls": len(self.records) - len(models),
        }
        if replayed := sum(1 for r in self.records if r.replayed):
            usage["replayedCalls"] = replayed
        return {"answer": answer, "usage": usage, "calls": [r.as_json() for r in self.records]}


def _assistant_message(result: ChatResult) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": result.content}
    if result.tool_calls:
        message["tool_calls"] = result.tool_calls
    return message


def _chat_result(record: CallRecord) -> ChatResult:
    response = record.response
    recorded = record.usage or {}
    usage = Usage(recorded.get("promptTokens", 0), recorded.get("completionTokens", 0))
    return ChatResult(
        str(response.get("endpoint", "")),
        str(response.get("model", "")),
        dict(response["message"]),
        response.get("finishReason"),
        usage,
        list(response.get("failures") or []),
    )
