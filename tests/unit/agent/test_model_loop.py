"""The agent loop against a scripted stand-in provider and stand-in tools: the turns it takes, the
records it keeps, the schema check and its one retry, and replaying an earlier attempt's calls."""

from __future__ import annotations

from typing import Any

import pytest

from pweza.agent.calls import CallRecord, MemoryJournal, ToolDecision
from pweza.agent.chat import ChatClient, Endpoint
from pweza.agent.model_loop import AgentLoop, LoopSettings
from pweza.agent.sdk import TaskFailure
from tests.model_providers import Reply, chat_reply, provider
from tests.tool_stand_ins import StandInTools

CALL_WEATHER = [{"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def scripted(*replies: Reply) -> Any:
    return lambda number, _body: replies[min(number, len(replies) - 1)]


async def run(
    stand_in_url: str, settings: LoopSettings, tools: StandInTools | None, journal: MemoryJournal | None = None
) -> dict[str, Any]:
    client = ChatClient([Endpoint(name="m", base_url=stand_in_url, model="m")])
    try:
        return await AgentLoop(client, tools, settings, journal=journal).run("weather in Oslo?")
    finally:
        await client.aclose()


async def test_a_tool_call_goes_to_the_tools_and_its_result_back_to_the_model() -> None:
    tools = StandInTools()
    script = scripted(
        chat_reply(tool_calls=CALL_WEATHER, prompt=10, completion=5), chat_reply("It is sunny.", prompt=30)
    )
    with provider(script) as stand_in:
        output = await run(stand_in.base_url, LoopSettings(system_prompt="Be brief.", max_turns=4), tools)
    assert tools.calls == [("get_weather", {"city": "Oslo"})]
    assert output["answer"] == "It is sunny."
    assert [c["kind"] for c in output["calls"]] == ["model", "tool", "model"]
    assert output["usage"] == {"promptTokens": 40, "completionTokens": 8, "modelCalls": 2, "toolCalls": 1}
    first, second = (r["body"] for r in stand_in.requests)
    assert first["messages"][0] == {"role": "system", "content": "Be brief."}
    assert first["tools"][0]["function"]["name"] == "get_weather"
    assert second["messages"][-1] == {"role": "tool", "tool_call_id": "c1", "content": "sunny and 21 C in Oslo"}
    assert all(len(c["requestDigest"]) == 64 for c in output["calls"])


async def test_the_last_turn_offers_no_tools_so_the_loop_ends_with_an_answer() -> None:
    with provider(scripted(chat_reply(tool_calls=CALL_WEATHER), chat_reply("done"))) as stand_in:
        output = await run(stand_in.base_url, LoopSettings(max_turns=2), StandInTools())
    assert output["answer"] == "done"
    assert ["tools" in r["body"] for r in stand_in.requests] == [True, False]


async def test_a_model_that_asks_for_tools_not_offered_fails_the_attempt() -> None:
    stand_in_script = scripted(chat_reply(tool_calls=CALL_WEATHER))
    with provider(stand_in_script) as stand_in, pytest.raises(TaskFailure, match="none were offered"):
        await run(stand_in.base_url, LoopSettings(max_turns=2), StandInTools())


async def test_a_tool_error_goes_back_to_the_model_as_an_error() -> None:
    with provider(scripted(chat_reply(tool_calls=CALL_WEATHER), chat_reply("sorry"))) as stand_in:
        output = await run(stand_in.base_url, LoopSettings(max_turns=3), StandInTools(fail=True))
    assert stand_in.requests[1]["body"]["messages"][-1]["content"] == "error: the weather service is down"
    assert output["calls"][1]["response"]["isError"] is True


async def test_an_answer_outside_the_schema_is_asked_for_again_once_with_the_error() -> None:
    script = scripted(chat_reply('{"town": "Oslo"}'), chat_reply('{"city": "Oslo"}'))
    with provider(script) as stand_in:
        output = await run(stand_in.base_url, LoopSettings(output_schema=SCHEMA), None)
    assert output["answer"] == {"city": "Oslo"}
    first, second = (r["body"] for r in stand_in.requests)
    assert first["response_format"]["json_schema"]["schema"] == SCHEMA
    assert "'city' is a required property" in second["messages"][-1]["content"]


async def test_a_second_answer_outside_the_schema_fails_without_retry() -> None:
    with provider(scripted(chat_reply("not json"))) as stand_in, pytest.raises(TaskFailure) as caught:
        await run(stand_in.base_url, LoopSettings(output_schema=SCHEMA), None)
    assert (caught.value.type, caught.value.retryable) == ("InvalidAnswer", False)
    assert len(stand_in.requests) == 2


async def test_with_tools_and_a_schema_the_answer_is_asked_for_in_a_turn_without_tools() -> None:
    script = scripted(chat_reply(tool_calls=CALL_WEATHER), chat_reply("sunny"), chat_reply('{"city": "Oslo"}'))
    with provider(script) as stand_in:
        output = await run(stand_in.base_url, LoopSettings(output_schema=SCHEMA), StandInTools())
    assert output["answer"] == {"city": "Oslo"}
    kinds = [("tools" in r["body"], "response_format" in r["body"]) for r in stand_in.requests]
    assert kinds == [(True, False), (True, False), (False, True)]


async def test_a_journal_of_an_earlier_attempt_replays_its_calls_instead_of_repeating_them() -> None:
    script = scripted(chat_reply(tool_calls=CALL_WEATHER), chat_reply("It is sunny."))
    with provider(script) as stand_in:
        first_tools = StandInTools()
        first = await run(stand_in.base_url, LoopSettings(max_turns=4), first_tools)
        # The attempt died after the tool ran and before its result reached the model.
        earlier = [CallRecord.from_json(record) for record in first["calls"][:2]]
        retry_tools = StandInTools()
        retried = await run(stand_in.base_url, LoopSettings(max_turns=4), retry_tools, MemoryJournal(earlier))
    assert retry_tools.calls == [], "the tool ran once, in the first attempt"
    assert len(stand_in.requests) == 3, "the first model call was paid once"
    assert [c.get("replayed", False) for c in retried["calls"]] == [True, True, False]
    assert retried["answer"] == "It is sunny."


class GatedTools(StandInTools):
    """Stand-in tools whose get_weather needs approval, as a template's requireApproval marks it."""

    def requires_approval(self, name: str) -> bool:
        return name == "get_weather"


class DecidingJournal(MemoryJournal):
    """A journal whose person approves or rejects by the order of asking, keeping what was asked."""

    def __init__(self, *verdicts: bool) -> None:
        super().__init__()
        self.verdicts = list(verdicts)
        self.asked: list[tuple[str, str, dict[str, Any]]] = []

    async def approve(self, key: str, tool: str, arguments: dict[str, Any]) -> ToolDecision:
        self.asked.append((key, tool, arguments))
        return ToolDecision(self.verdicts.pop(0), "alice", "not today")


async def test_a_tool_that_needs_approval_runs_only_when_approved_and_a_rejection_is_told_to_the_model() -> None:
    tools, journal = GatedTools(), DecidingJournal(False, True)
    twice = [CALL_WEATHER[0], {**CALL_WEATHER[0], "id": "c2"}]
    with provider(scripted(chat_reply(tool_calls=twice), chat_reply("ok"))) as stand_in:
        await run(stand_in.base_url, LoopSettings(max_turns=3), tools, journal)
    assert journal.asked == [
        ("approval-get_weather-1", "get_weather", {"city": "Oslo"}),
        ("approval-get_weather-2", "get_weather", {"city": "Oslo"}),
    ]
    assert tools.calls == [("get_weather", {"city": "Oslo"})], "only the approved call ran"
    told = stand_in.requests[1]["body"]["messages"]
    assert told[-2]["content"] == "error: the call of get_weather was rejected by alice: not today"


async def test_without_a_manager_no_one_approves_so_the_tool_never_runs() -> None:
    tools = GatedTools()
    with provider(scripted(chat_reply(tool_calls=CALL_WEATHER), chat_reply("ok"))) as stand_in:
        output = await run(stand_in.base_url, LoopSettings(max_turns=3), tools)
    assert tools.calls == []
    assert output["calls"][1]["response"]["isError"] is True
    assert "no one can approve" in output["calls"][1]["response"]["content"]
