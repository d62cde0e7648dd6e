"""One model's chat completions, sent to its endpoint or, when that one cannot serve, its fallbacks.

An endpoint that answers 408, 429 or 5xx, cannot be reached or times out is skipped for the next
one, and so is one whose own limits (concurrency, rate) leave no room now, as if it had said 429;
the last one left is waited for, up to its timeout; any other error (a 400 on the
request itself) is the request's fault and ends the call. A streamed call falls back only until
the first chunk arrives: what was shown of one model's reply is not continued by another.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from pweza.agent.chat.endpoints import Endpoint
from pweza.agent.chat.limits import Limiter, SharedRoom

_FALLBACK_STATUSES = frozenset({408, 429})
_TAIL = 300


class ModelError(Exception):
    """A chat that did not get an answer; `retryable` when a later attempt may (every endpoint was busy or down)."""

    def __init__(self, message: str, *, retryable: bool, failures: Sequence[Mapping[str, str]] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.failures = list(failures)


class _Skip(Exception):
    """This endpoint cannot serve now: try the next."""


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @classmethod
    def read(cls, usage: Any) -> Usage:
        if not isinstance(usage, dict):
            return cls()
        return cls(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))

    def as_json(self) -> dict[str, int]:
        return {"promptTokens": self.prompt_tokens, "completionTokens": self.completion_tokens}


@dataclass(frozen=True, slots=True)
class ChatResult:
    """The assistant message (role, content, tool_calls as the API spells them) and what it cost."""

    endpoint: str
    model: str
    message: dict[str, Any]
    finish_reason: str | None
    usage: Usage
    # The endpoints tried before this one and why each was skipped.
    failures: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def content(self) -> str | None:
        content = self.message.get("content")
        return content if isinstance(content, str) else None

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        return list(self.message.get("tool_calls") or [])


@dataclass(frozen=True, slots=True)
class ChatChunk:
    """A piece of a streamed reply: text, or parts of tool calls (by index, name and argument text)."""

    content: str = ""
    tool_calls: tuple[dict[str, Any], ...] = ()


class ChatClient:
    def __init__(self, endpoints: Sequence[Endpoint], *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        if not endpoints:
            raise ValueError("a chat client needs at least one endpoint")
        self.endpoints = list(endpoints)
        self.limiters = {e.name: Limiter(e.concurrency, e.requests_per_minute) for e in self.endpoints}
        self._http = httpx.AsyncClient(transport=transport, headers={"accept": "application/json"})

    async def aclose(self) -> None:
        await self._http.aclose()

    def _body(self, endpoint: Endpoint, request: Mapping[str, Any], stream: bool) -> bytes:
        body: dict[str, Any] = {"model": endpoint.model, **request}
        if endpoint.temperature is not None:
            body.setdefault("temperature", endpoint.temperature)
        if endpoint.max_tokens is not None:
            body.setdefault("max_tokens", endpoint.max_tokens)
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return orjson.dumps(body)

    def _request(self, endpoint: Endpoint, request: Mapping[str, Any], stream: bool) -> httpx.Request:
        headers = {**endpoint.headers, "content-type": "application/json"}
        if endpoint.api_key:
            headers["authorization"] = f"Bearer {endpoint.api_key}"
        timeout = httpx.Timeout(endpoint.timeout)
        content = self._body(endpoint, request, stream)
        return self._http.build_request("POST", endpoint.chat_url, content=content, headers=headers, timeout=timeout)

    def _slot(self, endpoint: Endpoint, room: SharedRoom | None) -> AbstractAsyncContextManager[None]:
        wait = endpoint is self.endpoints[-1]
        if room is not None and (endpoint.concurrency is not None or endpoint.requests_per_minute is not None):
            return room.slot(endpoint, endpoint.timeout, wait=wait)
        return self.limiters[endpoint.name].slot(endpoint.timeout, wait=wait)

    async def _checked(self, endpoint: Endpoint, response: httpx.Response) -> None:
        """Raise _Skip or ModelError for an answer that is not a success."""
        status = response.status_code
        if status < 400:
            return
        tail = (await response.aread()).decode(errors="replace")[-_TAIL:]
        reason = f"{endpoint.chat_url} returned {status}: {tail}"
        if status >= 500 or status in _FALLBACK_STATUSES:
            raise _Skip(reason)
        raise ModelError(f"model {endpoint.name!r}: {reason}", retryable=False)

    async def complete(self, request: Mapping[str, Any], *, room: SharedRoom | None = None) -> ChatResult:
        """One chat completion: `request` is the API's body without `model` (the endpoint's is used).
        With `room`, endpoints' limits are held there (across agents) instead of in this process."""
        failures: list[dict[str, str]] = []
        for endpoint in self.endpoints:
            started = time.monotonic()
            try:
                async with self._slot(endpoint, room):
                    # httpx bounds each read; this bounds the whole reply (a server that trickles).
                    async with asyncio.timeout(endpoint.timeout):
                        response = await self._http.send(self._request(endpoint, request, stream=False))
                        await self._checked(endpoint, response)
                        reply = _json(endpoint, response.content)
            except (_Skip, TimeoutError, httpx.TransportError) as error:
                failures.append({"endpoint": endpoint.name, "error": _reason(error)})
                continue
            return _result(endpoint, reply, failures, time.monotonic() - started)
        raise _exhausted(failures)

    async def stream(
        self, request: Mapping[str, Any], *, room: SharedRoom | None = None
    ) -> AsyncIterator[ChatChunk | ChatResult]:
        """The reply as it is written, chunk by chunk, then the whole of it as a ChatResult."""
        failures: list[dict[str, str]] = []
        for endpoint in self.endpoints:
            started = time.monotonic()
            assembly = _Assembly()
            try:
                async with self._slot(endpoint, room):
                    response = await self._http.send(self._request(endpoint, request, stream=True), stream=True)
                    try:
                        await self._checked(endpoint, response)
                        async for line in response.aiter_lines():
                            chunk = assembly.add(endpoint, line)
                            if chunk is not None:
                                yield chunk
                    finally:
                        await response.aclose()
            except (_Skip, TimeoutError, httpx.TransportError) as error:
                if assembly.chunks:
                    reason = f"model {endpoint.name!r}: the stream broke off: {_reason(error)}"
                    raise ModelError(reason, retryable=True) from error
                failures.append({"endpoint": endpoint.name, "error": _reason(error)})
                continue
            yield assembly.result(endpoint, failures, time.monotonic() - started)
            return
        raise _exhausted(failures)


class _Assembly:
    """Puts a streamed reply back together from its server-sent events."""

    def __init__(self) -> None:
        self.content: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}
        self.finish_reason: str | None = None
        self.usage = Usage()
        self.model: str | None = None
        self.chunks = 0

    def add(self, endpoint: Endpoint, line: str) -> ChatChunk | None:
        if not line.startswith("data:"):
            return None  # blank separators, comments, `event:` lines
        data = line[5:].strip()
        if data == "[DONE]":
            return None
        event = _json(endpoint, data.encode())
        self.chunks += 1
        self.model = event.get("model") or self.model
        if event.get("usage"):
            self.usage = Usage.read(event["usage"])
        choices = event.get("choices") or []
        if not choices:
            return None
        choice = choices[0]
        self.finish_reason = choice.get("finish_reason") or self.finish_reason
        delta = choice.get("delta") or {}
        text = delta.get("content") or ""
        parts = tuple(delta.get("tool_calls") or ())
        if text:
            self.content.append(text)
        for part in parts:
            call = self.calls.setdefault(
                int(part.get("index", 0)), {"id": "", "type": "function", "function": {"name": "", "arguments": ""}}
            )
            call["id"] = part.get("id") or call["id"]
            function = part.get("function") or {}
            call["function"]["name"] += function.get("name") or ""
            call["function"]["arguments"] += function.get("arguments") or ""
        return ChatChunk(text, parts) if text or parts else None

    def result(self, endpoint: Endpoint, failures: list[dict[str, str]], seconds: float) -> ChatResult:
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self.content) or None}
        if self.calls:
            message["tool_calls"] = [self.calls[index] for index in sorted(self.calls)]
        model = self.model or endpoint.model
        return ChatResult(endpoint.name, model, message, self.finish_reason, self.usage, failures, seconds)


def _json(endpoint: Endpoint, content: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(content)
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        shown = content[:_TAIL].decode(errors="replace")
        raise ModelError(f"model {endpoint.name!r} did not answer with a JSON object: {shown}", retryable=True)
    return value


def _result(endpoint: Endpoint, reply: dict[str, Any], failures: list[dict[str, str]], seconds: float) -> ChatResult:
    try:
        choice = reply["choices"][0]
        message = dict(choice["message"])
    except (TypeError, KeyError, IndexError):
        shown = orjson.dumps(reply)[:_TAIL].decode(errors="replace")
        raise ModelError(f"model {endpoint.name!r}: unexpected chat completion: {shown}", retryable=True) from None
    model = str(reply.get("model") or endpoint.model)
    usage = Usage.read(reply.get("usage"))
    return ChatResult(endpoint.name, model, message, choice.get("finish_reason"), usage, failures, seconds)


def _reason(error: BaseException) -> str:
    if isinstance(error, httpx.TimeoutException):
        return f"timed out ({type(error).__name__})"
    if isinstance(error, TimeoutError) and not str(error):
        return "timed out (no whole reply within its timeout)"
    if isinstance(error, httpx.TransportError):
        return f"{type(error).__name__}: {error}"
    if isinstance(error, TimeoutError):
        return f"waited too long for its limits: {error}"
    return str(error)


def _exhausted(failures: list[dict[str, str]]) -> ModelError:
    tried = "; ".join(f"{f['endpoint']}: {f['error']}" for f in failures)
    return ModelError(f"no model could answer ({tried})", retryable=True, failures=failures)
