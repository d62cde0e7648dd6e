"""Faults on the agent channel, sent by a hand-driven agent stream to a real manager process.

A bad result fails that one attempt with a typed error and the stream goes on; a frame that is
not protobuf ends the stream with INVALID_ARGUMENT; the tasks of other results are untouched.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import httpx
import orjson
import pytest

from pweza.domain.limits import grpc_message_limit
from pweza.testing.platform import Platform
from pweza.v1 import agent_pb2 as pb
from tests.conftest import pool, template
from tests.integration.raw_agent import RawAgent

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

PAYLOAD_LIMIT = 64 * 1024


@pytest.fixture
def faults_platform(tmp_path: Path) -> Iterator[Platform]:
    # A small payload limit keeps the oversize frames small; a lease long enough that a lost
    # result would show as a task still running, not as a quick retry.
    platform = Platform(tmp_path, lease_seconds=30.0, env={"PWEZA_MAX_PAYLOAD_BYTES": str(PAYLOAD_LIMIT)})
    platform.start_manager()
    try:
        platform.apply(template(concurrency=4, retry={"limit": 3, "backoff": "50ms"}), pool())
        yield platform
    finally:
        platform.stop()


@pytest.fixture
async def api(faults_platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {faults_platform.admin_token}"}
    async with httpx.AsyncClient(base_url=faults_platform.url, headers=headers, timeout=30.0) as client:
        yield client


def raw_agent(platform: Platform) -> RawAgent:
    return RawAgent(platform.grpc_address, platform.agent_token, "echo")


@asynccontextmanager
async def holding_one_task(platform: Platform, api: httpx.AsyncClient) -> AsyncIterator[tuple[RawAgent, pb.Assignment]]:
    """A raw agent connected and assigned the one task just submitted."""
    await submit(api, 1)
    async with raw_agent(platform) as agent:
        await agent.connect()
        (item,) = await agent.assignments(1)
        yield agent, item


async def submit(api: httpx.AsyncClient, count: int) -> list[str]:
    ids = []
    for index in range(count):
        response = await api.post("/api/v1/tasks", json={"pool": "echo", "input": {"n": index}})
        response.raise_for_status()
        ids.append(response.json()["id"])
    return ids


async def finished(api: httpx.AsyncClient, task_id: str, timeout: float = 10.0) -> dict[str, Any]:
    task: dict[str, Any] = (await api.get(f"/api/v1/tasks/{task_id}/wait", params={"timeout": timeout})).json()
    assert task["state"] in ("succeeded", "failed"), task
    return task


def wait_for_log(platform: Platform, *needles: str, timeout: float = 10.0) -> str:
    """The first manager log line holding every needle (the manager writes it asynchronously)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in platform.manager_log().splitlines():
            if all(needle in line for needle in needles):
                return line
        time.sleep(0.05)
    raise AssertionError(f"no manager log line with {needles}: {platform.manager_log()[-2000:]}")


async def test_a_result_that_is_not_json_fails_that_attempt_and_the_stream_goes_on(
    faults_platform: Platform, api: httpx.AsyncClient
) -> None:
    bad, good = await submit(api, 2)
    async with raw_agent(faults_platform) as agent:
        await agent.connect()
        items = {item.task_id: item for item in await agent.assignments(2)}
        await agent.result(items[bad], b"{not json")
        await agent.result(items[good], orjson.dumps({"fine": True}))
        failed, succeeded = await finished(api, bad), await finished(api, good)
        assert not agent.call.done()
    assert failed["state"] == "failed" and failed["attempts"] == 1
    assert failed["error"]["type"] == "InvalidOutput" and failed["error"]["retryable"] is False
    assert "not JSON" in failed["error"]["message"]
    assert succeeded["state"] == "succeeded" and succeeded["output"] == {"fine": True}
    line = wait_for_log(faults_platform, "InvalidOutput", bad)
    assert orjson.loads(line)["level"] == "warning"


async def test_an_oversize_output_fails_that_attempt_and_the_stream_stays_up(
    faults_platform: Platform, api: httpx.AsyncClient
) -> None:
    big, small = await submit(api, 2)
    async with raw_agent(faults_platform) as agent:
        welcome = await agent.connect()
        assert welcome.max_payload_bytes == PAYLOAD_LIMIT
        items = {item.task_id: item for item in await agent.assignments(2)}
        oversize = orjson.dumps("x" * PAYLOAD_LIMIT)
        await agent.result(items[big], oversize)
        await agent.result(items[small], b"1")
        failed, succeeded = await finished(api, big), await finished(api, small)
        assert not agent.call.done()
    assert failed["state"] == "failed" and failed["error"]["type"] == "OutputTooLarge"
    assert failed["error"]["retryable"] is False
    assert f"{len(oversize)} bytes" in failed["error"]["message"] and str(PAYLOAD_LIMIT) in failed["error"]["message"]
    assert succeeded["output"] == 1
    wait_for_log(faults_platform, "OutputTooLarge", big)


async def test_an_undecodable_frame_ends_the_stream_with_invalid_argument_and_the_tasks_live_on(
    faults_platform: Platform, api: httpx.AsyncClient
) -> None:
    async with holding_one_task(faults_platform, api) as (agent, item):
        task_id = item.task_id
        await agent.send(b"\x0a\xff\xff")  # a length-delimited field cut short: not protobuf
        code, details = await agent.status()
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid pweza.v1.AgentMessage" in details and "Error" not in details
    assert orjson.loads(wait_for_log(faults_platform, "undecodable", "raw-agent"))["level"] == "warning"
    # The task was not given up with the stream: the agent reconnects and delivers its result.
    async with raw_agent(faults_platform) as agent:
        await agent.connect(in_flight=[pb.AttemptRef(task_id=item.task_id, attempt=item.attempt)])
        await agent.result(item, b'"late but fine"')
        task = await finished(api, task_id)
    assert task["state"] == "succeeded" and task["output"] == "late but fine" and task["attempts"] == 1


async def test_an_undecodable_first_frame_is_refused_with_invalid_argument(faults_platform: Platform) -> None:
    async with raw_agent(faults_platform) as agent:
        await agent.send(b"\xff\xff\xff")
        code, details = await agent.status()
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid pweza.v1.AgentMessage" in details and "class" not in details


async def test_a_delegation_whose_input_is_not_json_is_refused_and_the_stream_goes_on(
    faults_platform: Platform, api: httpx.AsyncClient
) -> None:
    async with holding_one_task(faults_platform, api) as (agent, item):
        parent = item.task_id
        request = pb.DelegateRequest(
            request_id="r1", parent_task_id=parent, parent_attempt=item.attempt, pool="echo", input_json=b"[1,", key="k"
        )
        await agent.send(pb.AgentMessage(delegate=request))
        answer = await agent.read()
        while not answer.HasField("delegate_result"):
            answer = await agent.read()
        assert answer.delegate_result.request_id == "r1" and not answer.delegate_result.ok
        assert answer.delegate_result.error.type == "InvalidInput" and not answer.delegate_result.error.retryable
        await agent.result(item, b'"parent done"')
        task = await finished(api, parent)
    assert task["state"] == "succeeded" and task["output"] == "parent done"
    wait_for_log(faults_platform, "InvalidInput", parent)


async def test_assignments_of_large_inputs_leave_in_messages_within_the_agents_limit(
    faults_platform: Platform, api: httpx.AsyncClient
) -> None:
    inputs = [{"blob": "y" * (PAYLOAD_LIMIT - 100), "n": index} for index in range(4)]
    for task_input in inputs:
        (await api.post("/api/v1/tasks", json={"pool": "echo", "input": task_input})).raise_for_status()
    async with raw_agent(faults_platform) as agent:
        welcome = await agent.connect()
        messages: list[pb.Assignments] = []
        while sum(len(message.items) for message in messages) < len(inputs):
            message = await agent.read()
            if message.HasField("assignments"):
                messages.append(message.assignments)
    assert all(message.ByteSize() <= grpc_message_limit(welcome.max_payload_bytes) for message in messages)


def big_output_platform(platform: Platform, concurrency: int) -> None:
    handler = "pweza.testing.handlers:sized_output"
    platform.apply(template(handler=handler, concurrency=concurrency, retry={"limit": 3, "backoff": "50ms"}), pool())
    platform.start_agent("echo")


async def test_an_agent_fails_an_output_above_the_limit_and_its_stream_stays_up(
    faults_platform: Platform, api: httpx.AsyncClient
) -> None:
    big_output_platform(faults_platform, concurrency=2)
    size = 1 << 20  # far above the stream's message limit too: sent, it would cut the stream
    big = (await api.post("/api/v1/tasks", json={"pool": "echo", "input": {"bytes": size}})).json()["id"]
    small = (await api.post("/api/v1/tasks", json={"pool": "echo", "input": {"bytes": 3}})).json()["id"]
    failed, succeeded = await finished(api, big, 30.0), await finished(api, small, 30.0)
    assert failed["state"] == "failed" and failed["attempts"] == 1
    error = failed["error"]
    assert error["type"] == "OutputTooLarge" and error["retryable"] is False
    assert f"{size + 2} bytes" in error["message"] and f"{PAYLOAD_LIMIT} bytes" in error["message"]
    assert succeeded["state"] == "succeeded" and succeeded["output"] == "xxx"
    assert faults_platform.manager_log().count("agent connected") == 1  # one stream throughout


async def test_a_burst_of_large_outputs_reaches_the_manager_on_one_stream(
    faults_platform: Platform, api: httpx.AsyncClient
) -> None:
    big_output_platform(faults_platform, concurrency=8)
    size = PAYLOAD_LIMIT - 1024  # each within the limit; together far above one message's limit
    ids = [
        (await api.post("/api/v1/tasks", json={"pool": "echo", "input": {"bytes": size, "seconds": 1.0}})).json()["id"]
        for _ in range(8)
    ]
    tasks = [await finished(api, task_id, 30.0) for task_id in ids]
    assert [task["state"] for task in tasks] == ["succeeded"] * 8
    assert all(len(task["output"]) == size for task in tasks)
    assert faults_platform.manager_log().count("agent connected") == 1


async def test_a_huge_error_message_is_cut_before_it_is_stored(
    faults_platform: Platform, api: httpx.AsyncClient
) -> None:
    async with holding_one_task(faults_platform, api) as (agent, item):
        task_id = item.task_id
        error = pb.ErrorInfo(type="Broken", message="e" * PAYLOAD_LIMIT, retryable=False)
        result = pb.TaskResult(task_id=item.task_id, attempt=item.attempt, ok=False, error=error)
        await agent.send(pb.AgentMessage(results=pb.Results(results=[result], credit=1)))
        task = await finished(api, task_id)
    assert task["state"] == "failed" and task["error"]["type"] == "Broken"
    assert len(task["error"]["message"]) < 9 * 1024 and task["error"]["message"].endswith(
        f"({PAYLOAD_LIMIT} characters, cut)"
    )


async def test_a_huge_error_type_is_cut_to_a_short_name(faults_platform: Platform, api: httpx.AsyncClient) -> None:
    async with holding_one_task(faults_platform, api) as (agent, item):
        error = pb.ErrorInfo(type="T" * PAYLOAD_LIMIT, message="broken", retryable=False)
        result = pb.TaskResult(task_id=item.task_id, attempt=item.attempt, ok=False, error=error)
        await agent.send(pb.AgentMessage(results=pb.Results(results=[result], credit=1)))
        task = await finished(api, item.task_id)
    assert task["state"] == "failed" and task["error"]["type"] == "T" * 128


async def test_an_agent_refuses_to_delegate_an_input_above_the_limit(
    faults_platform: Platform, api: httpx.AsyncClient
) -> None:
    faults_platform.apply(template(handler="pweza.testing.handlers:delegate_sized", retry={"limit": 3}), pool())
    faults_platform.start_agent("echo")
    size = 1 << 20
    task_input = {"pool": "echo", "bytes": size}
    task_id = (await api.post("/api/v1/tasks", json={"pool": "echo", "input": task_input})).json()["id"]
    task = await finished(api, task_id, 30.0)
    assert task["state"] == "failed" and task["attempts"] == 1
    assert task["error"]["type"] == "InputTooLarge" and task["error"]["retryable"] is False
    assert f"{size + 2} bytes" in task["error"]["message"] and f"{PAYLOAD_LIMIT} bytes" in task["error"]["message"]
    assert faults_platform.manager_log().count("agent connected") == 1


async def test_a_start_time_that_is_not_a_number_is_taken_as_now(
    faults_platform: Platform, api: httpx.AsyncClient
) -> None:
    async with holding_one_task(faults_platform, api) as (agent, item):
        ref = pb.AttemptRef(task_id=item.task_id, attempt=item.attempt, at=float("nan"))
        await agent.send(pb.AgentMessage(started=pb.Started(attempts=[ref])))
        await agent.result(item, b"1")
        task = await finished(api, item.task_id)
    assert task["state"] == "succeeded"
    assert isinstance(task["startedAt"], float) and task["createdAt"] <= task["startedAt"] <= task["finishedAt"]


async def test_a_delegated_input_over_the_limit_as_stored_is_refused_though_its_frame_was_under(
    faults_platform: Platform, api: httpx.AsyncClient
) -> None:
    """The limit holds for the JSON the child would be stored and sent with, as for `POST /tasks`:
    `1e5` arrives as 3 bytes and is stored as `100000.0`."""
    count = PAYLOAD_LIMIT // 6
    input_json = b"[" + b",".join([b"1e5"] * count) + b"]"
    stored = len(orjson.dumps(orjson.loads(input_json)))
    assert len(input_json) < PAYLOAD_LIMIT < stored
    async with holding_one_task(faults_platform, api) as (agent, item):
        request = pb.DelegateRequest(
            request_id="r1", parent_task_id=item.task_id, parent_attempt=item.attempt, pool="echo",
            input_json=input_json, key="big",
        )  # fmt: skip
        await agent.send(pb.AgentMessage(delegate=request))
        answer = await agent.read()
        while not answer.HasField("delegate_result"):
            answer = await agent.read()
        refusal = answer.delegate_result
        assert not refusal.ok and refusal.error.type == "InputTooLarge" and not refusal.error.retryable
        assert refusal.error.message == (
            f"delegate.input is {stored} bytes; the limit is {PAYLOAD_LIMIT} bytes (max_payload_bytes)"
        )
        children = await api.get("/api/v1/tasks", params={"parent": item.task_id})
        assert children.json()["items"] == []


async def test_children_of_deep_delegation_with_long_keys_keep_ids_the_store_can_hold(
    faults_platform: Platform, api: httpx.AsyncClient
) -> None:
    """A child's id is its parent's plus the key: three levels of 64-character keys would make
    one of 200 characters, too long for the tasks' id column (PostgreSQL refuses the insert).
    Each child keeps an id within it, distinct from its siblings', and is found by it."""
    key = "k" * 64
    faults_platform.apply(template(concurrency=8), pool())  # a parent and two children per level
    await submit(api, 1)
    async with RawAgent(faults_platform.grpc_address, faults_platform.agent_token, "echo", slots=8) as agent:
        await agent.connect()
        held = await agent.assignments(1)
        for level in range(3):
            for request_id, sibling_key in ((f"r{level}a", key), (f"r{level}b", key[:-1] + "j")):
                request = pb.DelegateRequest(
                    request_id=request_id, parent_task_id=held[-1].task_id, parent_attempt=held[-1].attempt,
                    pool="echo", input_json=b'{"level": %d}' % level, key=sibling_key,
                )  # fmt: skip
                await agent.send(pb.AgentMessage(delegate=request))
            first, second = await agent.assignments(2)
            assert first.task_id != second.task_id
            assert all(len(child.task_id) <= 128 for child in (first, second)), (first.task_id, second.task_id)
            for child in (first, second):
                shown = await api.get(f"/api/v1/tasks/{child.task_id}")
                assert shown.status_code == 200 and shown.json()["parentId"] == held[-1].task_id
            await agent.result(second, b'"sibling done"', credit=1)
            held.append(first)
