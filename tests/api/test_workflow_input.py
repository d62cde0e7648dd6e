"""Bad workflows and bad run inputs: a 4xx naming the path, and nothing stored."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import pool, template

AGENT = {"pool": "echo"}


def workflow(steps: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "pweza.ai/v1",
        "kind": "Workflow",
        "metadata": {"name": "wf"},
        "spec": {"steps": steps, **spec},
    }


def nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("document", "field", "words"),
    [
        (
            workflow(
                [
                    {"name": "a", "agent": AGENT, "depends": ["c"]},
                    {"name": "b", "agent": AGENT, "depends": ["a"]},
                    {"name": "c", "agent": AGENT, "depends": ["b"]},
                ]
            ),
            "spec.steps",
            "dependency cycle a -> b -> c -> a",
        ),
        (
            workflow([{"name": "a", "agent": AGENT, "depends": ["ghost"]}]),
            "spec.steps[0].depends",
            "unknown step 'ghost'",
        ),
        (
            workflow([{"name": "a", "agent": AGENT}, {"name": "a", "agent": AGENT}]),
            "spec.steps[1].name",
            "duplicate step name",
        ),
        (
            workflow([{"name": "a", "agent": AGENT, "input": {"x": "${{ inputs.n + }}"}}]),
            "spec.steps[0].input.x",
            "not a valid CEL expression",
        ),
        (workflow([{"name": "a", "agent": AGENT, "when": "inputs.x ==="}]), "spec.steps[0].when", "not a valid CEL"),
        (
            workflow([{"name": "a", "agent": AGENT, "input": "${{ inputs.__class__.__mro__ }}"}]),
            "spec.steps[0].input",
            "double underscores are not allowed",
        ),
        (
            workflow([{"name": "a", "agent": AGENT, "foreach": "inputs.__globals__"}]),
            "spec.steps[0].foreach",
            "double underscores are not allowed",
        ),
        (
            workflow([{"name": "a", "agent": AGENT}, {"name": "b", "agent": AGENT, "input": "${{ steps.a.output }}"}]),
            "spec.steps[1].input",
            "not among the steps it depends on",
        ),
        (
            workflow([{"name": "a", "agent": AGENT}], outputs={"x": "${{ steps.zz.output }}"}),
            "spec.outputs.x",
            "unknown step 'zz'",
        ),
        (workflow([{"name": "a", "agent": AGENT, "foreach": "'abc'"}]), "spec.steps[0].foreach", "not a list"),
        (
            workflow([{"name": "a", "agent": AGENT, "input": nested(150)}]),
            "spec.steps[0].input",
            "nested more than 100 levels deep; the limit is 100",
        ),
        (workflow([{"name": "a"}]), "spec.steps[0]", "needs an agent, an approval, or both"),
        (workflow([{"name": "a", "agent": {"pool": "p", "template": "t"}}]), "spec.steps[0].agent", "exactly one"),
        (workflow([{"name": "Bad-Name", "agent": AGENT}]), "spec.steps[0].name", "should match pattern"),
        (workflow([]), "spec.steps", "at least 1 item"),
    ],
)
async def test_bad_workflows_are_refused_naming_the_path(
    api: httpx.AsyncClient, document: dict[str, Any], field: str, words: str
) -> None:
    response = await api.post("/api/v1/workflows", json=document)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["field"] == field, body
    assert words in body["detail"], body
    assert (await api.get("/api/v1/workflows")).json()["items"] == []


async def test_a_workflow_naming_missing_pools_is_stored_with_a_warning(api: httpx.AsyncClient) -> None:
    response = await api.put("/api/v1/workflows/wf", json=workflow([{"name": "a", "agent": {"pool": "later"}}]))
    assert response.status_code == 201
    assert response.json()["warnings"] == ["spec.steps[0].agent.pool: AgentPool 'later' does not exist yet"]


async def test_a_run_whose_pool_is_missing_is_refused_before_it_starts(api: httpx.AsyncClient) -> None:
    """`pweza run --detach` used to exit 0 for a run that had already failed at its first step."""
    await api.put("/api/v1/workflows/wf", json=workflow([{"name": "a", "agent": {"pool": "later"}}]))
    response = await api.post("/api/v1/workflows/wf/runs", json={})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["field"] == "spec.steps[0].agent.pool", body
    assert "step 'a': AgentPool default/later not found" in body["detail"], body
    assert (await api.get("/api/v1/runs")).json()["items"] == []
    await api.put("/api/v1/agenttemplates/echoer", json=template())
    await api.put("/api/v1/agentpools/later", json=pool("later"))
    assert (await api.post("/api/v1/workflows/wf/runs", json={})).status_code == 201


@pytest.fixture
async def with_inputs(api: httpx.AsyncClient) -> httpx.AsyncClient:
    await api.put("/api/v1/agenttemplates/echoer", json=template())
    await api.put("/api/v1/agentpools/echo", json=pool())
    inputs = {
        "count": {"type": "integer"},
        "name": {"type": "string", "default": "x"},
        "tags": {"type": "array", "required": False},
    }
    await api.put("/api/v1/workflows/wf", json=workflow([{"name": "a", "agent": AGENT}], inputs=inputs))
    return api


@pytest.mark.parametrize(
    ("inputs", "field", "words"),
    [
        ({}, "inputs.count", "required input is missing"),
        ({"count": "three"}, "inputs.count", "expected integer, got str"),
        ({"count": True}, "inputs.count", "expected integer, got bool"),
        ({"count": 1, "tags": "a,b"}, "inputs.tags", "expected array"),
        ({"count": 1, "colour": "red"}, "inputs.colour", "unknown input (allowed: count, name, tags)"),
    ],
)
async def test_bad_run_inputs_are_refused_and_no_run_is_stored(
    with_inputs: httpx.AsyncClient, inputs: dict[str, Any], field: str, words: str
) -> None:
    response = await with_inputs.post("/api/v1/workflows/wf/runs", json={"inputs": inputs})
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert words in response.json()["detail"]
    assert (await with_inputs.get("/api/v1/runs")).json()["items"] == []


async def test_good_inputs_get_defaults(with_inputs: httpx.AsyncClient) -> None:
    response = await with_inputs.post("/api/v1/workflows/wf/runs", json={"inputs": {"count": 2}})
    assert response.status_code == 201
    assert response.json()["inputs"] == {"count": 2, "name": "x"}


async def test_unknown_workflow_is_404(api: httpx.AsyncClient) -> None:
    response = await api.post("/api/v1/workflows/nope/runs", json={})
    assert response.status_code == 404
