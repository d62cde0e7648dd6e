"""The role matrix, route by route: every /api/v1 route is listed here or the test fails."""

from __future__ import annotations

import httpx
import pytest

from pweza.api.app import create_app
from pweza.domain.roles import Permission, Role, allows
from pweza.manager.service import Manager
from tests.conftest import Tokens

# (method, route template) -> the permission it needs, and a concrete URL to call it with.
MATRIX: dict[tuple[str, str], tuple[Permission, str]] = {
    ("GET", "/api/v1/{plural}"): (Permission.READ, "/api/v1/agentpools"),
    ("POST", "/api/v1/{plural}"): (Permission.WRITE, "/api/v1/agentpools"),
    ("GET", "/api/v1/{plural}/{name}"): (Permission.READ, "/api/v1/agentpools/x"),
    ("PUT", "/api/v1/{plural}/{name}"): (Permission.WRITE, "/api/v1/agentpools/x"),
    ("DELETE", "/api/v1/{plural}/{name}"): (Permission.WRITE, "/api/v1/agentpools/x"),
    ("POST", "/api/v1/tasks"): (Permission.WRITE, "/api/v1/tasks"),
    ("POST", "/api/v1/tasks:batch"): (Permission.WRITE, "/api/v1/tasks:batch"),
    ("GET", "/api/v1/tasks"): (Permission.READ, "/api/v1/tasks"),
    ("GET", "/api/v1/tasks/{task_id}"): (Permission.READ, "/api/v1/tasks/missing"),
    ("GET", "/api/v1/tasks/{task_id}/wait"): (Permission.READ, "/api/v1/tasks/missing/wait?timeout=0.01"),
    ("POST", "/api/v1/tasks/{task_id}/cancel"): (Permission.WRITE, "/api/v1/tasks/missing/cancel"),
    ("POST", "/api/v1/tasks/{task_id}/approvals/{key}/approve"): (
        Permission.WRITE,
        "/api/v1/tasks/missing/approvals/approval-t-1/approve",
    ),
    ("POST", "/api/v1/tasks/{task_id}/approvals/{key}/reject"): (
        Permission.WRITE,
        "/api/v1/tasks/missing/approvals/approval-t-1/reject",
    ),
    ("GET", "/api/v1/agents"): (Permission.READ, "/api/v1/agents"),
    ("GET", "/api/v1/replicas"): (Permission.READ, "/api/v1/replicas"),
    ("GET", "/api/v1/whoami"): (Permission.READ, "/api/v1/whoami"),
    ("GET", "/api/v1/namespaces/{namespace}/usage"): (Permission.READ, "/api/v1/namespaces/default/usage"),
    ("POST", "/api/v1/agents/{agent_id}/drain"): (Permission.WRITE, "/api/v1/agents/missing/drain"),
    ("GET", "/api/v1/agents/{agent_id}/logs"): (Permission.READ, "/api/v1/agents/missing/logs"),
    ("GET", "/api/v1/tasks/{task_id}/logs"): (Permission.READ, "/api/v1/tasks/missing/logs"),
    ("POST", "/api/v1/tokens"): (Permission.ADMIN, "/api/v1/tokens"),
    ("GET", "/api/v1/tokens"): (Permission.ADMIN, "/api/v1/tokens"),
    ("DELETE", "/api/v1/tokens/{token_id}"): (Permission.ADMIN, "/api/v1/tokens/missing"),
    ("GET", "/api/v1/audit"): (Permission.ADMIN, "/api/v1/audit"),
    ("POST", "/api/v1/workflows/{name}/runs"): (Permission.WRITE, "/api/v1/workflows/missing/runs"),
    ("GET", "/api/v1/runs"): (Permission.READ, "/api/v1/runs"),
    ("GET", "/api/v1/runs/{run_id}"): (Permission.READ, "/api/v1/runs/missing"),
    ("POST", "/api/v1/runs/{run_id}/cancel"): (Permission.WRITE, "/api/v1/runs/missing/cancel"),
    ("POST", "/api/v1/runs/{run_id}/retry"): (Permission.WRITE, "/api/v1/runs/missing/retry"),
    ("POST", "/api/v1/runs/{run_id}/steps/{step}/approve"): (Permission.WRITE, "/api/v1/runs/missing/steps/a/approve"),
    ("POST", "/api/v1/runs/{run_id}/steps/{step}/reject"): (Permission.WRITE, "/api/v1/runs/missing/steps/a/reject"),
    ("GET", "/api/v1/runs/{run_id}/events"): (Permission.READ, "/api/v1/runs/missing/events"),
}


def api_routes(manager: Manager) -> set[tuple[str, str]]:
    paths = create_app(manager).openapi()["paths"]
    return {(method.upper(), path) for path, ops in paths.items() if path.startswith("/api/") for method in ops}


async def test_every_api_route_is_in_the_matrix(manager: Manager) -> None:
    assert api_routes(manager) == set(MATRIX)


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("route", sorted(MATRIX))
async def test_role_may_call_route_only_with_permission(
    api: httpx.AsyncClient, tokens: Tokens, role: Role, route: tuple[str, str]
) -> None:
    permission, url = MATRIX[route]
    response = await api.request(route[0], url, headers={"Authorization": f"Bearer {tokens[role]}"}, json={})
    if allows(role, permission):
        assert response.status_code not in (401, 403), response.text
    else:
        assert response.status_code == 403, response.text
        assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("route", sorted(MATRIX))
async def test_every_route_refuses_missing_and_wrong_tokens(api: httpx.AsyncClient, route: tuple[str, str]) -> None:
    _, url = MATRIX[route]
    for headers in (
        {"Authorization": ""},
        {"Authorization": "Bearer pwz_not-a-token"},
        {"Authorization": "Basic eDp5"},
    ):
        response = await api.request(route[0], url, headers=headers, json={})
        assert response.status_code == 401, (headers, response.text)


async def test_health_needs_no_token(api: httpx.AsyncClient) -> None:
    for path in ("/health/live", "/health/ready", "/openapi.json"):
        response = await api.get(path, headers={"Authorization": ""})
        assert response.status_code == 200, path


async def test_revoked_token_stops_working(api: httpx.AsyncClient, tokens: Tokens) -> None:
    created = (await api.post("/api/v1/tokens", json={"name": "temp", "role": "viewer"})).json()
    viewer = {"Authorization": f"Bearer {created['token']}"}
    assert (await api.get("/api/v1/agentpools", headers=viewer)).status_code == 200
    assert (await api.delete(f"/api/v1/tokens/{created['id']}")).status_code == 204
    assert (await api.get("/api/v1/agentpools", headers=viewer)).status_code == 401
    listed = (await api.get("/api/v1/tokens")).json()["items"]
    assert all("token" not in item and "hash" not in item for item in listed)
