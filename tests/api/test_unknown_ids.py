"""Every route given an id that names nothing answers 404 problem+json; 409 is kept for a real
run in the wrong state (cancelling a run twice, approving a step of an ended run)."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pytest

from pweza.testing.platform import Platform

PLURALS = ("agenttemplates", "agentpools", "workflows")
# Every /api/v1 route with a path parameter, as a user would call it with an unknown id. PUT
# /{plural}/{name} is left out: it creates the object.
UNKNOWN: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/api/v1/tasks/{task_id}", None),
    ("GET", "/api/v1/tasks/{task_id}/wait?timeout=0.1", None),
    ("POST", "/api/v1/tasks/{task_id}/cancel", None),
    ("POST", "/api/v1/tasks/{task_id}/approvals/{key}/approve", {}),
    ("POST", "/api/v1/tasks/{task_id}/approvals/{key}/reject", {"comment": "no"}),
    ("POST", "/api/v1/agents/{agent_id}/drain", None),
    ("GET", "/api/v1/agents/{agent_id}/logs", None),
    ("GET", "/api/v1/tasks/{task_id}/logs", None),
    ("DELETE", "/api/v1/tokens/{token_id}", None),
    ("POST", "/api/v1/workflows/{name}/runs", {"inputs": {}}),
    ("GET", "/api/v1/runs/{run_id}", None),
    ("POST", "/api/v1/runs/{run_id}/cancel", None),
    ("POST", "/api/v1/runs/{run_id}/retry", {}),
    ("POST", "/api/v1/runs/{run_id}/retry", {"step": "review"}),
    ("POST", "/api/v1/runs/{run_id}/steps/{step}/approve", {"comment": "ok"}),
    ("POST", "/api/v1/runs/{run_id}/steps/{step}/reject", {}),
    ("GET", "/api/v1/runs/{run_id}/events?follow=false", None),
    ("GET", "/api/v1/runs/{run_id}/events", None),
    ("GET", "/api/v1/{plural}", None),
    ("POST", "/api/v1/{plural}", {}),
    *[("GET", f"/api/v1/{plural}/{{name}}", None) for plural in PLURALS],
    *[("DELETE", f"/api/v1/{plural}/{{name}}", None) for plural in PLURALS],
]
# Not ids of anything stored: every namespace has a usage (nothing used, when nothing ran there).
NAMES_NOT_IDS = {("GET", "/api/v1/namespaces/{namespace}/usage")}
APPROVAL_ONLY = {
    "apiVersion": "pweza.ai/v1",
    "kind": "Workflow",
    "metadata": {"name": "gate"},
    "spec": {"steps": [{"name": "review", "approval": {"message": "go on?"}}]},
}


def concrete(path: str) -> str:
    # An unknown plural is an unknown kind of object: also a 404.
    return path.replace("{plural}", "nothings").replace("{step}", "review").replace("{", "").replace("}", "-nope")


@pytest.mark.parametrize(("method", "path", "body"), UNKNOWN, ids=[f"{m} {p} {b}" for m, p, b in UNKNOWN])
def test_an_unknown_id_is_404_problem(live: Platform, method: str, path: str, body: dict[str, Any] | None) -> None:
    with live.client() as client:
        response = client.request(method, concrete(path), json=body)
    assert response.status_code == 404, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 404 and problem["title"] == "Not found"
    assert "not found" in problem["detail"] or "not connected" in problem["detail"] or "no such" in problem["detail"]


def test_every_route_with_an_id_is_covered(live: Platform) -> None:
    paths = httpx.get(f"{live.url}/openapi.json", verify=live.verify, timeout=10.0).json()["paths"]
    with_ids = {
        (method.upper(), path)
        for path, operations in paths.items()
        for method in operations
        if "{" in path and method != "put"
    } - NAMES_NOT_IDS
    covered = {
        (method, re.sub(r"/(agenttemplates|agentpools|workflows)/\{name\}$", "/{plural}/{name}", path.split("?")[0]))
        for method, path, _ in UNKNOWN
    }
    assert with_ids <= covered, f"routes without an unknown-id test: {sorted(with_ids - covered)}"


def test_an_ended_run_is_409_naming_its_state(live: Platform) -> None:
    live.apply(APPROVAL_ONLY)
    with live.client() as client:
        run = client.post("/api/v1/workflows/gate/runs", json={"inputs": {}})
        assert run.status_code == 201, run.text
        run_id = run.json()["id"]
        waiting = _wait_for_step(client, run_id, "waiting_approval")
        assert waiting["state"] == "running"
        assert client.post(f"/api/v1/runs/{run_id}/cancel").status_code == 200
        for method, path, body in [
            ("POST", f"/api/v1/runs/{run_id}/cancel", None),
            ("POST", f"/api/v1/runs/{run_id}/steps/review/approve", {}),
            ("POST", f"/api/v1/runs/{run_id}/steps/review/reject", {}),
        ]:
            response = client.request(method, path, json=body)
            assert response.status_code == 409, (path, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            assert f"run {run_id} is cancelled" in response.json()["detail"]


def _wait_for_step(client: httpx.Client, run_id: str, state: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run: dict[str, Any] = client.get(f"/api/v1/runs/{run_id}").json()
        if any(step["state"] == state for step in run["steps"]):
            return run
        time.sleep(0.05)
    raise TimeoutError(f"no step of run {run_id} became {state} within {timeout}s")
