"""The manager's log says what went wrong, one JSON line each, without secrets."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from pweza.testing.platform import Platform
from pweza.testing.processes import agent_command
from tests.conftest import pool, template
from tests.integration.test_embedded import wait_for
from tests.integration.test_handler_code import log_events

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
SECRET_INPUT = "input-that-must-not-be-logged-7f3a"
WORKFLOW = {
    "apiVersion": "pweza.ai/v1",
    "kind": "Workflow",
    "metadata": {"name": "failing"},
    "spec": {
        "steps": [{"name": "break", "agent": {"pool": "breakers"}, "input": {"flag": "${{ inputs.flag }}"}}],
        "inputs": {"flag": {"type": "string"}},
    },
}


def wait_logged(platform: Platform, event: str, count: int = 1) -> list[dict[str, Any]]:
    wait_for(lambda: len(log_events(platform.manager_log(), event)) >= count, 30, f"{count} {event!r} lines")
    return log_events(platform.manager_log(), event)


def test_every_failed_attempt_is_logged_with_its_task_step_run_pool_agent_and_error(
    platform: Platform, tmp_path: Any
) -> None:
    flag = tmp_path / "broken"
    flag.write_text("")
    platform.apply(
        template("breaker", "pweza.testing.handlers:fail_if_file"),
        pool("breakers", "breaker"),
        template("sleeper", "pweza.testing.handlers:sleep", timeout="500ms", retry={"limit": 0}),
        pool("sleepers", "sleeper"),
        WORKFLOW,
    )
    platform.start_agent("breakers", agent_id="breaker-0")
    platform.start_agent("sleepers", agent_id="sleeper-0")
    with platform.client() as client:
        run = client.post("/api/v1/workflows/failing/runs", json={"inputs": {"flag": str(flag)}}).json()
        slow = client.post("/api/v1/tasks", json={"pool": "sleepers", "input": {"seconds": 30, "s": SECRET_INPUT}})
    [failed, *_] = wait_logged(platform, "task attempt failed")
    assert failed["level"] == "warning"
    assert failed["run"] == run["id"] and failed["step"] == "break" and failed["pool"] == "default/breakers"
    assert failed["agent"] == "breaker-0" and failed["attempt"] == 1 and failed["task"]
    assert failed["error_type"] == "Broken" and failed["error"] == f"{flag} is present"
    assert failed["retryable"] is False and failed["outcome"] == "failed"
    timed_out = [e for e in wait_logged(platform, "task attempt failed", 2) if e["task"] == slow.json()["id"]]
    assert timed_out and timed_out[0]["error_type"] == "Timeout" and timed_out[0]["outcome"] == "timed_out"
    assert timed_out[0]["agent"] == "sleeper-0" and timed_out[0]["run"] is None
    log = platform.manager_log()
    assert SECRET_INPUT not in log and platform.admin_token not in log and platform.agent_token not in log


def test_a_refused_agent_is_logged_with_the_reason_and_without_its_token(platform: Platform) -> None:
    platform.apply(template(), pool())
    wrong_token = "pwz_" + "x" * 40
    args = agent_command("echo", platform.grpc_address, "intruder", None)
    refused = subprocess.run(args, env={**platform.env, "PWEZA_TOKEN": wrong_token}, capture_output=True, timeout=60)
    assert refused.returncode == 2, refused.stderr
    args = agent_command("no-such-pool", platform.grpc_address, "lost", None)
    lost = subprocess.run(
        args, env={**platform.env, "PWEZA_TOKEN": platform.agent_token}, capture_output=True, timeout=60
    )
    assert lost.returncode == 2, lost.stderr
    logged = {entry["agent"]: entry for entry in wait_logged(platform, "agent refused", 2)}
    assert logged["intruder"]["code"] == "UNAUTHENTICATED" and logged["intruder"]["pool"] == "default/echo"
    assert logged["lost"]["code"] == "FAILED_PRECONDITION" and "no-such-pool" in logged["lost"]["reason"]
    assert all(entry["level"] == "warning" and entry["peer"] for entry in logged.values())
    log = platform.manager_log()
    assert wrong_token not in log and platform.agent_token not in log
