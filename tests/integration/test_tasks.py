"""The platform as users run it: a manager and agents as real processes on loopback."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path

import grpc
import httpx
import pytest

from pweza.testing.platform import Platform
from pweza.v1 import agent_pb2 as pb
from pweza.v1 import agent_pb2_grpc as pb_grpc
from tests.conftest import pool, template

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def wait_until(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return
        time.sleep(0.05)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def count_states(client: httpx.Client, pool_name: str) -> Counter[str]:
    counts: Counter[str] = Counter()
    cursor = None
    while True:
        params: dict[str, object] = {"pool": pool_name, "limit": 1000}
        if cursor:
            params["continue"] = cursor
        page = client.get("/api/v1/tasks", params=params).json()
        counts.update(task["state"] for task in page["items"])
        cursor = page["continue"]
        if cursor is None:
            return counts


def test_500_tasks_across_3_agents_all_succeed(platform: Platform) -> None:
    platform.apply(template(concurrency=8), pool())
    for _ in range(3):
        platform.start_agent("echo")
    platform.wait_for_agents(3)
    with platform.client() as client:
        batch = [{"pool": "echo", "input": {"n": n}} for n in range(500)]
        ids = [item["id"] for item in client.post("/api/v1/tasks:batch", json={"tasks": batch}).json()["items"]]
        wait_until(lambda: count_states(client, "echo")["succeeded"] == 500, 120, "500 succeeded tasks")
        sample = [client.get(f"/api/v1/tasks/{task_id}").json() for task_id in ids[::50]]
    assert [task["output"] for task in sample] == [{"n": n} for n in range(0, 500, 50)]
    assert all(task["attempts"] == 1 for task in sample)
    agents = Counter(task["agentId"] for task in sample)
    with platform.client() as client:
        every = client.get("/api/v1/tasks", params={"limit": 1000}).json()["items"]
    assert len({task["agentId"] for task in every}) == 3, "work should spread over all three agents"
    assert agents


def test_agent_killed_mid_task_has_it_rerun_elsewhere_after_the_lease(platform: Platform, tmp_path: Path) -> None:
    platform.apply(template(handler="pweza.testing.handlers:block_first_attempt", retry={"backoff": "100ms"}), pool())
    first = platform.start_agent("echo", agent_id="first")
    platform.wait_for_agents(1)
    marker = tmp_path / "started"
    with platform.client() as client:
        task_id = client.post("/api/v1/tasks", json={"pool": "echo", "input": {"started": str(marker)}}).json()["id"]
    wait_until(marker.exists, 30, "the first attempt to start")
    platform.start_agent("echo", agent_id="second")
    platform.wait_for_agents(2)
    first.send_signal(signal.SIGKILL)
    task = platform.wait_task(task_id, timeout=60)
    with platform.client() as client:
        history = client.get(f"/api/v1/tasks/{task_id}").json()["attemptHistory"]
    assert task["state"] == "succeeded"
    assert task["output"]["attempt"] == 2
    assert int(marker.read_text()) == first.pid != task["output"]["pid"]
    assert [(a["agentId"], a["state"]) for a in history] == [("first", "failed"), ("second", "succeeded")]
    assert history[0]["error"]["type"] == "AgentLost"
    assert history[0]["idempotencyKey"] != history[1]["idempotencyKey"]


def test_manager_killed_and_restarted_loses_no_submitted_task(platform: Platform) -> None:
    platform.apply(template(concurrency=4), pool())
    platform.start_agent("echo")
    platform.wait_for_agents(1)
    accepted: list[str] = []
    with platform.client() as client:
        for n in range(150):
            response = client.post("/api/v1/tasks", json={"pool": "echo", "input": {"n": n}})
            assert response.status_code == 201
            accepted.append(response.json()["id"])
    platform.kill_manager()
    platform.start_manager()
    platform.wait_for_agents(1, timeout=30)
    with platform.client() as client:
        wait_until(lambda: count_states(client, "echo")["succeeded"] == 150, 60, "all accepted tasks to succeed")
        states = count_states(client, "echo")
    assert states == Counter({"succeeded": 150})


def test_cancellation_reaches_the_running_handler(platform: Platform, tmp_path: Path) -> None:
    platform.apply(template(handler="pweza.testing.handlers:sleep"), pool())
    platform.start_agent("echo")
    platform.wait_for_agents(1)
    marker = tmp_path / "cancelled"
    with platform.client() as client:
        task_id = client.post(
            "/api/v1/tasks", json={"pool": "echo", "input": {"seconds": 120, "marker": str(marker)}}
        ).json()["id"]
        wait_until(lambda: client.get(f"/api/v1/tasks/{task_id}").json()["state"] == "running", 30, "running")
        assert client.post(f"/api/v1/tasks/{task_id}/cancel").status_code == 200
    task = platform.wait_task(task_id, timeout=30)
    assert task["state"] == "cancelled"
    wait_until(marker.exists, 10, "the handler to see its cancellation")
    with platform.client() as client:
        again = client.post(f"/api/v1/tasks/{task_id}/cancel")
    assert again.status_code == 409


def test_a_slow_task_times_out(platform: Platform) -> None:
    platform.apply(template(handler="pweza.testing.handlers:sleep", timeout="500ms", retry={"limit": 0}), pool())
    platform.start_agent("echo")
    platform.wait_for_agents(1)
    with platform.client() as client:
        task_id = client.post("/api/v1/tasks", json={"pool": "echo", "input": {"seconds": 60}}).json()["id"]
    task = platform.wait_task(task_id, timeout=30)
    assert task["state"] == "timed_out"
    assert task["error"]["type"] == "Timeout"


def test_retryable_failures_are_retried_until_success(platform: Platform) -> None:
    platform.apply(template(handler="pweza.testing.handlers:fail_until", retry={"limit": 3, "backoff": "50ms"}), pool())
    platform.start_agent("echo")
    platform.wait_for_agents(1)
    with platform.client() as client:
        task_id = client.post("/api/v1/tasks", json={"pool": "echo", "input": {"succeed_on": 3}}).json()["id"]
        task = platform.wait_task(task_id)
        history = client.get(f"/api/v1/tasks/{task_id}").json()["attemptHistory"]
    assert task["state"] == "succeeded" and task["output"] == {"attempt": 3}
    assert [a["state"] for a in history] == ["failed", "failed", "succeeded"]
    assert history[0]["error"]["type"] == "RuntimeError"


def test_priority_orders_waiting_tasks(platform: Platform, tmp_path: Path) -> None:
    platform.apply(template(handler="pweza.testing.handlers:record", concurrency=1), pool())
    log = tmp_path / "order.log"
    with platform.client() as client:
        for n, priority in enumerate([0, 0, 10, 0, 5]):
            client.post(
                "/api/v1/tasks",
                json={"pool": "echo", "priority": priority, "input": {"log": str(log), "value": n}},
            )
    platform.start_agent("echo")
    with platform.client() as client:
        wait_until(lambda: count_states(client, "echo")["succeeded"] == 5, 30, "5 tasks")
        order = [
            t["output"]["value"]
            for t in sorted(client.get("/api/v1/tasks").json()["items"], key=lambda t: t["startedAt"])
        ]
    assert order == [2, 4, 0, 1, 3]


def _connect(platform: Platform, token: str) -> grpc.RpcError:
    with grpc.insecure_channel(platform.grpc_address) as channel:
        stub = pb_grpc.AgentChannelStub(channel)
        hello = pb.AgentMessage(hello=pb.Hello(pool="echo", token=token, free_slots=1))
        with pytest.raises(grpc.RpcError) as caught:
            for _ in stub.Connect(iter([hello]), timeout=10):
                pass
        return caught.value


def test_agent_stream_with_a_bad_token_is_refused(platform: Platform) -> None:
    platform.apply(template(), pool())
    assert _connect(platform, "pwz_wrong").code() == grpc.StatusCode.UNAUTHENTICATED
    assert _connect(platform, platform.admin_token).code() == grpc.StatusCode.PERMISSION_DENIED
    with platform.client() as client:
        assert client.get("/api/v1/agents").json()["items"] == []


def test_agent_process_with_a_bad_token_exits_with_a_clear_message(platform: Platform) -> None:
    platform.apply(template(), pool())
    process = platform.start_agent("echo", extra=["--token", "pwz_wrong"])
    assert process.wait(30) == 2


def test_sigterm_drains_an_agent_after_its_in_flight_task(platform: Platform) -> None:
    platform.apply(template(handler="pweza.testing.handlers:sleep"), pool())
    agent = platform.start_agent("echo")
    platform.wait_for_agents(1)
    with platform.client() as client:
        task_id = client.post("/api/v1/tasks", json={"pool": "echo", "input": {"seconds": 1.5}}).json()["id"]
        wait_until(lambda: client.get(f"/api/v1/tasks/{task_id}").json()["state"] == "running", 30, "running")
    os.kill(agent.pid, signal.SIGTERM)
    assert agent.wait(30) == 0
    assert platform.wait_task(task_id, timeout=10)["state"] == "succeeded"


def test_drain_via_the_api_stops_new_work_for_that_agent(platform: Platform) -> None:
    platform.apply(template(), pool())
    agent = platform.start_agent("echo", agent_id="drain-me")
    platform.wait_for_agents(1)
    with platform.client() as client:
        assert client.post("/api/v1/agents/drain-me/drain").json()["state"] == "draining"
    assert agent.wait(30) == 0


def test_metrics_are_exported(platform: Platform) -> None:
    platform.apply(template(), pool())
    platform.start_agent("echo")
    platform.wait_for_agents(1)
    with platform.client() as client:
        task_id = client.post("/api/v1/tasks", json={"pool": "echo", "input": 1}).json()["id"]
    platform.wait_task(task_id)
    text = httpx.get(f"http://127.0.0.1:{platform.metrics_port}/metrics").text
    for name in (
        "pweza_api_requests_total",
        "pweza_api_request_duration_seconds",
        'pweza_tasks_total{pool="default/echo",state="succeeded"} 1.0',
        "pweza_task_duration_seconds",
        "pweza_pool_pending_tasks",
        'pweza_agents{pool="default/echo",state="idle"} 1.0',
        "pweza_database_errors_total",
        "agent_coordination_requests_total",
    ):
        assert name in text, name


def test_the_agents_metric_shows_an_agent_busy_while_its_task_runs(platform: Platform, tmp_path: Path) -> None:
    # Counted when scraped: kept up on connects only, it said idle all along (and cost a pass
    # over every session per connect).
    platform.apply(template(handler="pweza.testing.handlers:block_then_record"), pool())
    platform.start_agent("echo")
    platform.wait_for_agents(1)
    marker = tmp_path / "started"
    metrics = f"http://127.0.0.1:{platform.metrics_port}/metrics"
    with platform.client() as client:
        task_id = client.post("/api/v1/tasks", json={"pool": "echo", "input": {"started": str(marker)}}).json()["id"]
        wait_until(marker.exists, 30, "the handler to start")
        assert 'pweza_agents{pool="default/echo",state="busy"} 1.0' in httpx.get(metrics).text
        client.post(f"/api/v1/tasks/{task_id}/cancel").raise_for_status()
    platform.wait_task(task_id)
    wait_until(lambda: 'pweza_agents{pool="default/echo",state="idle"} 1.0' in httpx.get(metrics).text, 30, "idle")
