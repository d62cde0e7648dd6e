"""Bad input gets a precise 4xx problem naming the field, never a 500, and nothing is stored."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from pweza.domain.roles import Role
from tests.conftest import Tokens, pool, template


async def count_objects(api: httpx.AsyncClient) -> int:
    pools = (await api.get("/api/v1/agentpools")).json()["items"]
    templates = (await api.get("/api/v1/agenttemplates")).json()["items"]
    return len(pools) + len(templates)


@pytest.mark.parametrize(
    ("plural", "document", "field"),
    [
        ("agentpools", pool(scaling={"minReplicas": 3, "maxReplicas": 2}), "spec.scaling"),
        ("agentpools", pool(scaling={"maxReplicas": 101}), "spec.scaling.maxReplicas"),
        ("agentpools", {"apiVersion": "pweza.ai/v1", "kind": "AgentPool", "metadata": {"name": "x"}}, "spec"),
        ("agenttemplates", template(retry={"limit": -1}), "spec.retry.limit"),
        ("agenttemplates", {**template(), "apiVersion": "pweza.ai/v2"}, "apiVersion"),
        ("agenttemplates", pool(), "kind"),
        ("agenttemplates", "just a string", None),
    ],
)
async def test_malformed_manifests_are_refused(
    api: httpx.AsyncClient, plural: str, document: Any, field: str | None
) -> None:
    response = await api.post(f"/api/v1/{plural}", json=document)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body.get("field") == field
    if field:
        assert field in body["detail"]
    assert await count_objects(api) == 0


async def test_body_that_is_not_json_is_a_4xx(api: httpx.AsyncClient) -> None:
    response = await api.post("/api/v1/agentpools", content=b"{not json", headers={"content-type": "application/json"})
    assert 400 <= response.status_code < 500


async def test_put_with_a_name_differing_from_the_url_is_refused(api: httpx.AsyncClient) -> None:
    response = await api.put("/api/v1/agenttemplates/other", json=template())
    assert response.status_code == 422
    assert response.json()["field"] == "metadata.name"
    assert await count_objects(api) == 0


async def test_unknown_resource_kind_is_404(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/v1/agentz")
    assert response.status_code == 404
    assert "agentpools" in response.json()["detail"]


async def test_submitting_to_an_unknown_pool_is_404_and_stores_nothing(api: httpx.AsyncClient) -> None:
    response = await api.post("/api/v1/tasks", json={"pool": "nowhere", "input": {}})
    assert response.status_code == 404
    assert response.json()["field"] == "pool"
    assert (await api.get("/api/v1/tasks")).json()["items"] == []


async def test_pool_whose_template_is_missing_gets_a_warning_and_tasks_a_clear_error(
    api: httpx.AsyncClient,
) -> None:
    created = await api.post("/api/v1/agentpools", json=pool(template_ref="later"))
    assert created.status_code == 201
    assert "does not exist yet" in created.json()["warnings"][0]
    response = await api.post("/api/v1/tasks", json={"pool": "echo", "input": {}})
    assert response.status_code == 422
    assert "AgentTemplate 'later'" in response.json()["detail"]


async def test_oversize_task_input_is_413_and_not_stored(api: httpx.AsyncClient) -> None:
    await api.post("/api/v1/agenttemplates", json=template())
    await api.post("/api/v1/agentpools", json=pool())
    response = await api.post("/api/v1/tasks", json={"pool": "echo", "input": "x" * 70_000})
    assert response.status_code == 413
    assert response.json()["field"] == "tasks.input"
    huge = await api.post("/api/v1/tasks", json={"pool": "echo", "input": "x" * 200_000})
    assert huge.status_code == 413
    enormous = await api.post("/api/v1/tasks:batch", json={"tasks": [{"pool": "echo", "input": "x" * 60_000}] * 20})
    assert enormous.status_code == 413
    assert "request body is" in enormous.json()["detail"], "refused before the body is read"
    assert (await api.get("/api/v1/tasks")).json()["items"] == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"input": {}}, "pool"),
        ({"pool": "echo", "priority": 5000}, "priority"),
        ({"pool": "echo", "timeout": "forever"}, "timeout"),
        ({"pool": "echo", "extra": 1}, "extra"),
    ],
)
async def test_bad_task_submissions_name_the_field(api: httpx.AsyncClient, body: dict[str, Any], field: str) -> None:
    response = await api.post("/api/v1/tasks", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field


async def test_a_viewer_cannot_write_and_nothing_is_stored(api: httpx.AsyncClient, tokens: Tokens) -> None:
    viewer = {"Authorization": f"Bearer {tokens[Role.VIEWER]}"}
    response = await api.post("/api/v1/agenttemplates", json=template(), headers=viewer)
    assert response.status_code == 403
    assert "viewer" in response.json()["detail"]
    assert await count_objects(api) == 0


async def test_deleting_a_template_in_use_is_a_conflict(api: httpx.AsyncClient) -> None:
    await api.post("/api/v1/agenttemplates", json=template())
    await api.post("/api/v1/agentpools", json=pool())
    response = await api.delete("/api/v1/agenttemplates/echoer")
    assert response.status_code == 409
    assert "echo" in response.json()["detail"]


async def test_mutations_are_audited_with_who_and_what(api: httpx.AsyncClient) -> None:
    await api.put("/api/v1/agenttemplates/echoer", json=template())
    await api.put("/api/v1/agenttemplates/echoer", json=template())  # unchanged: not a mutation
    await api.delete("/api/v1/agenttemplates/echoer")
    entries = (await api.get("/api/v1/audit")).json()["items"]
    assert [e["action"] for e in entries] == ["agenttemplate.delete", "agenttemplate.apply"]
    assert entries[0]["actor"].startswith("test-admin")


async def test_lists_paginate_with_a_continue_key(api: httpx.AsyncClient) -> None:
    for index in range(5):
        await api.post("/api/v1/agenttemplates", json=template(name=f"t{index}"))
    first = (await api.get("/api/v1/agenttemplates", params={"limit": 2})).json()
    second = (await api.get("/api/v1/agenttemplates", params={"limit": 2, "continue": first["continue"]})).json()
    third = (await api.get("/api/v1/agenttemplates", params={"limit": 2, "continue": second["continue"]})).json()
    names = [i["metadata"]["name"] for page in (first, second, third) for i in page["items"]]
    assert names == ["t0", "t1", "t2", "t3", "t4"]
    assert third["continue"] is None
