"""The `http` and `llm` runtimes: one JSON POST per task over a shared connection pool."""

from __future__ import annotations

import os
from typing import Any

import httpx
import orjson

from pweza.agent.sdk import TaskContext, TaskFailure
from pweza.agent.template import RuntimeSettings

_JSON = {"content-type": "application/json", "accept": "application/json"}
# 408 and 429 are the server saying "not now", so they are worth a retry like a 5xx.
_RETRYABLE_CLIENT_STATUSES = frozenset({408, 429})
_TAIL = 500


def _client(concurrency: int, headers: dict[str, str]) -> httpx.AsyncClient:
    # One client per agent: its pool keeps connections warm across tasks. No overall
    # timeout here, the worker enforces each task's own; only connecting is bounded.
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(headers={**_JSON, **headers}, limits=limits, timeout=httpx.Timeout(None, connect=10.0))


async def _post(client: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str], kind: str) -> Any:
    try:
        response = await client.post(url, content=body, headers=headers)
    except httpx.TransportError as error:
        raise TaskFailure(f"POST {url}: {type(error).__name__}: {error}", type=kind) from error
    status = response.status_code
    if status >= 400:
        retryable = status >= 500 or status in _RETRYABLE_CLIENT_STATUSES
        tail = response.text[-_TAIL:]
        raise TaskFailure(f"POST {url} returned {status}: {tail}", type=kind, retryable=retryable)
    if not response.content.strip():
        return None
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.text


class HttpRuntime:
    load_error: str | None = None  # nothing to load up front

    def __init__(self, runtime: RuntimeSettings, *, concurrency: int) -> None:
        assert runtime.url is not None
        self.url = runtime.url
        self._client = _client(concurrency, dict(runtime.headers or {}))

    async def run(self, ctx: TaskContext) -> Any:
        # The key lets the endpoint deduplicate the redeliveries at-least-once implies.
        headers = {"idempotency-key": ctx.idempotency_key, "x-pweza-task-id": ctx.task_id}
        return await _post(self._client, self.url, orjson.dumps(ctx.input), headers, "HttpError")

    async def aclose(self) -> None:
        await self._client.aclose()


class LlmRuntime:
    """OpenAI-compatible chat completions; the input becomes the user message."""

    load_error: str | None = None  # nothing to load up front

    def __init__(self, runtime: RuntimeSettings, *, concurrency: int) -> None:
        assert runtime.base_url is not None and runtime.model is not None
        self.url = runtime.base_url.rstrip("/") + "/chat/completions"
        self.model = runtime.model
        self.prompt = runtime.prompt
        self.temperature = runtime.temperature
        headers: dict[str, str] = {}
        # A missing key is fine: local servers (ollama, vLLM, llama.cpp) need none.
        key = os.environ.get(runtime.api_key_env)
        if key:
            headers["authorization"] = f"Bearer {key}"
        self._client = _client(concurrency, headers)

    def request(self, task_input: Any) -> dict[str, Any]:
        messages = [{"role": "system", "content": self.prompt}] if self.prompt else []
        content = task_input if isinstance(task_input, str) else orjson.dumps(task_input).decode()
        messages.append({"role": "user", "content": content})
        body: dict[str, Any] = {"model": self.model, "messages": messages}
        if self.temperature is not None:
            body["temperature"] = self.temperature
        return body

    async def run(self, ctx: TaskContext) -> Any:
        body = orjson.dumps(self.request(ctx.input))
        reply = await _post(self._client, self.url, body, {}, "LlmError")
        try:
            content = reply["choices"][0]["message"]["content"]
        except (TypeError, KeyError, IndexError) as error:
            shown = str(reply)[:_TAIL]
            raise TaskFailure(f"unexpected chat completion reply: {shown}", type="LlmError", retryable=False) from error
        return {"content": content, "model": reply.get("model", self.model), "usage": reply.get("usage")}

    async def aclose(self) -> None:
        await self._client.aclose()
