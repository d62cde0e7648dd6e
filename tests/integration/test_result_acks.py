"""Results survive the manager: the agent keeps each one until the manager says it is written.

A manager SIGKILLed after an agent handed it a result, but before it wrote it, used to lose that
result: its successor saw the attempt as lost once the agent reconnected without it, and ran
the task again. Now the manager acknowledges every result once it is durable (ResultsAck); the
agent keeps what is unacknowledged, lists it as in flight on its next stream and sends it again.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import orjson
import pytest

from pweza.testing.platform import Platform
from pweza.testing.waiting import eventually
from pweza.v1 import agent_pb2 as pb
from tests.conftest import pool, template
from tests.integration.raw_agent import RawAgent

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def test_a_result_the_killed_manager_never_wrote_is_sent_again_and_the_task_is_not_run_twice(
    platform: Platform, tmp_path: Path
) -> None:
    platform.apply(template(handler="pweza.testing.handlers:record_when_told", retry={"backoff": "100ms"}), pool())
    platform.start_agent("echo", agent_id="keeper")
    platform.wait_for_agents(1)
    started, go, log = tmp_path / "started", tmp_path / "go", tmp_path / "runs.log"
    task_input = {"started": str(started), "go": str(go), "log": str(log)}
    with platform.client() as client:
        task_id = client.post("/api/v1/tasks", json={"pool": "echo", "input": task_input}).json()["id"]
    eventually(started.exists, timeout=30, what="the handler to start")
    manager = platform.manager
    assert manager is not None
    # Stopped, the manager reads nothing: the result the handler now sends waits in the socket's
    # buffers, and dies with the manager.
    manager.send_signal(signal.SIGSTOP)
    try:
        go.touch()
        eventually(lambda: log.exists() and log.read_text(), timeout=30, what="the handler to finish")
        time.sleep(1.0)  # the agent hands the result to its stream
    finally:
        platform.kill_manager()
    platform.start_manager()
    task = platform.wait_task(task_id, timeout=60)
    with platform.client() as client:
        history = client.get(f"/api/v1/tasks/{task_id}").json()["attemptHistory"]
    assert task["state"] == "succeeded", task
    assert [(attempt["agentId"], attempt["state"]) for attempt in history] == [("keeper", "succeeded")]
    assert len(log.read_text().splitlines()) == 1, log.read_text()


async def test_the_manager_acknowledges_each_result_once_written_and_a_repeated_one_too(platform: Platform) -> None:
    platform.apply(template(concurrency=4), pool())
    with platform.client() as client:
        task_id = client.post("/api/v1/tasks", json={"pool": "echo", "input": {"n": 1}}).json()["id"]
    async with RawAgent(platform.grpc_address, platform.agent_token, "echo") as agent:
        welcome = await agent.connect()
        assert welcome.acknowledges_results
        (item,) = await agent.assignments(1)
        await agent.result(item, orjson.dumps({"done": True}))
        acks = await _next_ack(agent)
        assert [(ref.task_id, ref.attempt) for ref in acks.attempts] == [(task_id, item.attempt)]
        with platform.client() as client:
            assert client.get(f"/api/v1/tasks/{task_id}").json()["state"] == "succeeded"
        # The same result again (as after a reconnect, when the first ack was lost): acknowledged,
        # and the task it already finished is left as it was.
        await agent.result(item, orjson.dumps({"done": "twice"}), credit=0)
        acks = await _next_ack(agent)
        assert [(ref.task_id, ref.attempt) for ref in acks.attempts] == [(task_id, item.attempt)]
    with platform.client() as client:
        assert client.get(f"/api/v1/tasks/{task_id}").json()["output"] == {"done": True}


async def _next_ack(agent: RawAgent) -> pb.ResultsAck:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        message = await agent.read(timeout=max(0.1, deadline - time.monotonic()))
        if message.HasField("results_ack"):
            return message.results_ack
    raise AssertionError("no ResultsAck within 10 s")
