"""The model client against stand-in providers on loopback: which failures fall back to the next
ModelConfig and which do not, limits, streaming put back together, the key kept out of sight."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from pweza.agent.chat import ChatChunk, ChatClient, ChatResult, Endpoint, Limiter, ModelError, endpoints_from
from pweza.testing.waiting import eventually_async
from tests.model_providers import Reply, chat_reply, failing_provider, provider

HELLO = {"messages": [{"role": "user", "content": "hello"}]}


def endpoint(name: str, base_url: str, **settings: Any) -> Endpoint:
    return Endpoint(name=name, base_url=base_url, model=f"{name}-model", **settings)


@pytest.mark.parametrize("status", [503, 500, 429, 408])
async def test_a_busy_or_failing_model_falls_back_to_the_next(status: int) -> None:
    with failing_provider(status) as down, provider(lambda _n, _b: chat_reply("hi", prompt=5, completion=2)) as up:
        client = ChatClient([endpoint("first", down.base_url), endpoint("second", up.base_url)])
        try:
            result = await client.complete(HELLO)
        finally:
            await client.aclose()
    assert (result.endpoint, result.content) == ("second", "hi")
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (5, 2)
    assert [f["endpoint"] for f in result.failures] == ["first"]
    assert str(status) in result.failures[0]["error"]
    assert [r["body"]["model"] for r in down.requests + up.requests] == ["first-model", "second-model"]


async def test_a_refused_request_does_not_fall_back() -> None:
    with failing_provider(400) as refusing, provider(lambda _n, _b: chat_reply("hi")) as up:
        client = ChatClient([endpoint("first", refusing.base_url), endpoint("second", up.base_url)])
        try:
            with pytest.raises(ModelError) as caught:
                await client.complete(HELLO)
        finally:
            await client.aclose()
    assert not caught.value.retryable and "400" in caught.value.message
    assert up.requests == []


async def test_when_every_model_fails_the_error_names_each_and_may_be_retried() -> None:
    with failing_provider(503) as first, failing_provider(429) as second:
        client = ChatClient([endpoint("first", first.base_url), endpoint("second", second.base_url)])
        try:
            with pytest.raises(ModelError) as caught:
                await client.complete(HELLO)
        finally:
            await client.aclose()
    assert caught.value.retryable
    assert [f["endpoint"] for f in caught.value.failures] == ["first", "second"]
    assert "503" in caught.value.message and "429" in caught.value.message


async def test_a_model_slower_than_its_timeout_falls_back() -> None:
    slow = lambda _n, _b: Reply(body=chat_reply("late").body, delay=3.0)  # noqa: E731
    with provider(slow) as late, provider(lambda _n, _b: chat_reply("on time")) as up:
        client = ChatClient([endpoint("slow", late.base_url, timeout=0.3), endpoint("second", up.base_url)])
        try:
            result = await client.complete(HELLO)
        finally:
            await client.aclose()
    assert result.content == "on time" and "timed out" in result.failures[0]["error"]


async def test_an_unreachable_model_falls_back() -> None:
    with provider(lambda _n, _b: chat_reply("hi")) as up:
        client = ChatClient([endpoint("gone", "http://127.0.0.1:9/v1", timeout=2.0), endpoint("up", up.base_url)])
        try:
            result = await client.complete(HELLO)
        finally:
            await client.aclose()
    assert result.endpoint == "up" and result.failures[0]["endpoint"] == "gone"


async def test_with_its_one_slot_busy_a_model_sends_the_next_request_to_the_fallback_at_once() -> None:
    slow = lambda _n, _b: Reply(body=chat_reply("slow").body, delay=1.5)  # noqa: E731
    with provider(slow) as busy, provider(lambda _n, _b: chat_reply("spare")) as spare:
        client = ChatClient(
            [endpoint("busy", busy.base_url, concurrency=1, timeout=0.5), endpoint("spare", spare.base_url)]
        )
        try:
            first = asyncio.create_task(client.complete(HELLO))
            await eventually_async(lambda: client.limiters["busy"].in_flight, what="the first request in flight")
            second = await client.complete(HELLO)
            first_result = await first
        finally:
            await client.aclose()
    assert second.endpoint == "spare" and "slots are busy" in second.failures[0]["error"]
    assert len(busy.requests) == 1, "the busy model got only the request it had room for"
    # The first request itself outlived busy's timeout, so it ended on the spare too.
    assert first_result.endpoint == "spare"


async def test_the_last_model_left_waits_for_its_slot() -> None:
    in_flight, peak = [0], [0]

    def slow(_n: int, _b: dict[str, Any]) -> Reply:
        in_flight[0] += 1
        peak[0] = max(peak[0], in_flight[0])
        try:
            time.sleep(0.2)
        finally:
            in_flight[0] -= 1
        return chat_reply("one at a time")

    with provider(slow) as only:
        client = ChatClient([endpoint("only", only.base_url, concurrency=1, timeout=10.0)])
        try:
            results = await asyncio.gather(*(client.complete(HELLO) for _ in range(3)))
        finally:
            await client.aclose()
    assert [r.content for r in results] == ["one at a time"] * 3
    assert peak == [1], "never more than its concurrency in flight"


async def test_the_rate_limit_counts_requests_in_a_sliding_minute() -> None:
    now = [1000.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = Limiter(per_minute=2, clock=lambda: now[0], sleep=sleep)
    for _ in range(2):
        async with limiter.slot(timeout=1.0):
            pass
    now[0] += 10.0
    with pytest.raises(TimeoutError, match="2 requests per minute"):
        async with limiter.slot(timeout=1.0):
            pass
    async with limiter.slot(timeout=120.0):
        pass
    assert slept == [50.0], "the third request waited until the first left the minute"


async def test_a_streamed_reply_comes_in_pieces_and_is_put_back_together() -> None:
    def events(_n: int, _b: dict[str, Any]) -> Reply:
        chunk = lambda delta, **more: {"model": "m", "choices": [{"index": 0, "delta": delta, **more}]}  # noqa: E731
        return Reply(
            stream=[
                chunk({"role": "assistant", "content": None}),
                chunk({"content": "Hel"}),
                chunk({"content": "lo"}),
                chunk({"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "look", "arguments": ""}}]}),
                chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"q":'}}]}),
                chunk({"tool_calls": [{"index": 0, "function": {"arguments": ' "x"}'}}]}),
                chunk({}, finish_reason="tool_calls"),
                {"model": "m", "choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 4}},
            ]
        )

    with provider(events) as stand_in:
        client = ChatClient([endpoint("s", stand_in.base_url)])
        try:
            seen = [event async for event in client.stream(HELLO)]
        finally:
            await client.aclose()
    chunks, final = seen[:-1], seen[-1]
    assert all(isinstance(c, ChatChunk) for c in chunks) and isinstance(final, ChatResult)
    assert "".join(c.content for c in chunks) == "Hello" == final.content
    assert final.tool_calls == [
        {"id": "c1", "type": "function", "function": {"name": "look", "arguments": '{"q": "x"}'}}
    ]
    assert (final.finish_reason, final.usage.prompt_tokens, final.usage.completion_tokens) == ("tool_calls", 11, 4)
    body = stand_in.requests[0]["body"]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


async def test_a_stream_that_fails_before_its_first_chunk_falls_back() -> None:
    with failing_provider(503) as down, provider(lambda _n, _b: chat_reply("whole")) as up:
        client = ChatClient([endpoint("down", down.base_url), endpoint("up", up.base_url)])

        def streamed(_n: int, _b: dict[str, Any]) -> Reply:
            return Reply(stream=[{"model": "m", "choices": [{"index": 0, "delta": {"content": "whole"}}]}])

        up.script = streamed
        try:
            seen = [event async for event in client.stream(HELLO)]
        finally:
            await client.aclose()
    final = seen[-1]
    assert isinstance(final, ChatResult) and final.endpoint == "up" and final.content == "whole"


async def test_the_key_is_sent_as_a_bearer_token_and_shown_nowhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STAND_IN_KEY", "sk-very-secret")
    monkeypatch.setenv("PWEZA_MODEL_KEY_FROM_SECRET", "sk-from-secret")
    with failing_provider(503) as down, provider(lambda _n, _b: chat_reply("hi")) as up:
        configs = [
            {"name": "first", "spec": {"baseUrl": down.base_url, "model": "a", "apiKey": {"env": "STAND_IN_KEY"}}},
            {
                "name": "from-secret",
                "spec": {"baseUrl": up.base_url, "model": "b", "apiKey": {"secretKeyRef": {"name": "s", "key": "k"}},
                         "headers": {"x-team": "core"}, "temperature": 0.5, "maxTokens": 9},
            },
        ]  # fmt: skip
        endpoints = endpoints_from(configs)
        client = ChatClient(endpoints)
        try:
            result = await client.complete(HELLO)
        finally:
            await client.aclose()
    assert down.requests[0]["headers"]["authorization"] == "Bearer sk-very-secret"
    sent = up.requests[0]
    assert sent["headers"]["authorization"] == "Bearer sk-from-secret" and sent["headers"]["x-team"] == "core"
    assert (sent["body"]["temperature"], sent["body"]["max_tokens"]) == (0.5, 9), "the ModelConfig's defaults"
    shown = repr(endpoints) + repr(result) + str(result.failures)
    assert "sk-" not in shown
