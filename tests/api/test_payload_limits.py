"""The one payload limit (PWEZA_MAX_PAYLOAD_BYTES) holds for run inputs and for the inputs of
the tasks that workflow steps make, as it does for `POST /tasks`: on a real manager. A task's input
over it is refused in the same words whichever way the task was asked for (a delegation's:
tests/integration/test_agent_stream_faults.py)."""

from __future__ import annotations

import time
from typing import Any

import orjson

from pweza.testing.platform import Platform
from tests.api.conftest import PAYLOAD_LIMIT
from tests.conftest import pool, template

# How every refusal of a task's input ends, whichever way the task was asked for.
LIMIT_WORDS = f"the limit is {PAYLOAD_LIMIT} bytes (max_payload_bytes)"


def doubling_workflow(name: str) -> dict[str, Any]:
    """One step whose input is twice the run's input `s`."""
    return {
        "apiVersion": "pweza.ai/v1",
        "kind": "Workflow",
        "metadata": {"name": name},
        "spec": {
            "inputs": {"s": {"type": "string"}},
            "steps": [
                {"name": "twice", "agent": {"pool": "echo"}, "input": {"a": "${{ inputs.s }}", "b": "${{ inputs.s }}"}}
            ],
        },
    }


def wait_finished(live: Platform, run_id: str, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    with live.client() as client:
        while time.monotonic() < deadline:
            run: dict[str, Any] = client.get(f"/api/v1/runs/{run_id}").json()
            if run["state"] != "running":
                return run
            time.sleep(0.1)
    raise TimeoutError(f"run {run_id} still running after {timeout}s: {run['steps']}")


def test_a_run_input_over_the_limit_is_413_and_no_run_is_stored(live: Platform) -> None:
    live.apply(template(), pool(), doubling_workflow("big-inputs"))
    with live.client() as client:
        response = client.post("/api/v1/workflows/big-inputs/runs", json={"inputs": {"s": "x" * (PAYLOAD_LIMIT + 1)}})
        assert response.status_code == 413, response.text
        problem = response.json()
        assert problem["field"] == "inputs"
        assert f"the limit is {PAYLOAD_LIMIT}" in problem["detail"]
        assert client.get("/api/v1/runs", params={"workflow": "big-inputs"}).json()["items"] == []


def test_a_step_input_over_the_limit_fails_the_step_naming_size_and_limit(live: Platform) -> None:
    live.apply(template(), pool(), doubling_workflow("doubling"))
    half = "x" * (PAYLOAD_LIMIT * 3 // 4)  # the run's input is under the limit, the step's is over it
    with live.client() as client:
        started = client.post("/api/v1/workflows/doubling/runs", json={"inputs": {"s": half}})
        assert started.status_code == 201, started.text
    run = wait_finished(live, started.json()["id"])  # no agent is needed: the step must fail before any task
    assert run["state"] == "failed"
    (step,) = run["steps"]
    assert step["state"] == "failed"
    assert step["error"]["type"] == "PayloadTooLarge"
    size = len(orjson.dumps({"a": half, "b": half}))
    assert step["error"]["message"] == f"steps.twice[0].input is {size} bytes; {LIMIT_WORDS}"
    with live.client() as client:
        assert client.get("/api/v1/tasks", params={"pool": "echo"}).json()["items"] == []


def test_a_submitted_task_input_over_the_limit_is_refused_in_the_words_of_every_path(live: Platform) -> None:
    live.apply(template(), pool())
    big = "x" * PAYLOAD_LIMIT
    with live.client() as client:
        single = client.post("/api/v1/tasks", json={"pool": "echo", "input": big})
        batch = client.post(
            "/api/v1/tasks:batch", json={"tasks": [{"pool": "echo", "input": 1}, {"pool": "echo", "input": big}]}
        )
    size = PAYLOAD_LIMIT + 2  # the quotes
    assert single.status_code == 413, single.text
    assert single.json()["detail"] == f"tasks.input is {size} bytes; {LIMIT_WORDS}"
    assert batch.status_code == 413, batch.text
    assert (batch.json()["field"], batch.json()["detail"]) == (
        "tasks[1].input",
        f"tasks[1].input is {size} bytes; {LIMIT_WORDS}",
    )
