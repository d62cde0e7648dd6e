"""The OpenAPI document the manager serves describes every route's answer: a typed success body
and the problem responses (RFC 9457) the route can give."""

from __future__ import annotations

from typing import Any

import httpx

PROBLEM = "application/problem+json"
EVERY_API_ROUTE = {"401", "403", "422", "503"}
# What else a route can answer besides EVERY_API_ROUTE (404 too for each path with a parameter).
CONFLICTS = {
    ("post", "/api/v1/tasks/{task_id}/cancel"),
    ("post", "/api/v1/runs/{run_id}/cancel"),
    ("post", "/api/v1/runs/{run_id}/retry"),
    ("post", "/api/v1/runs/{run_id}/steps/{step}/approve"),
    ("post", "/api/v1/runs/{run_id}/steps/{step}/reject"),
    ("post", "/api/v1/{plural}"),
    ("delete", "/api/v1/{plural}/{name}"),
}
NAMING_OTHERS = {("post", "/api/v1/tasks"), ("post", "/api/v1/tasks:batch")}  # 404: the pool


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].removeprefix("#/components/schemas/")
        schema = document["components"]["schemas"][name]
    return schema


def _typed(document: dict[str, Any], schema: dict[str, Any]) -> bool:
    """A schema that says something: an object with properties, or a scalar or array type."""
    resolved = _resolve(document, schema)
    if resolved.get("type") == "object":
        return bool(resolved.get("properties"))
    return "type" in resolved or "anyOf" in resolved


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in {"get", "post", "put", "delete", "patch"}
    ]


async def test_every_route_documents_a_typed_success_response(api: httpx.AsyncClient) -> None:
    document = (await api.get("/openapi.json")).json()
    untyped = []
    for method, path, operation in _operations(document):
        successes = {status: body for status, body in operation["responses"].items() if status.startswith("2")}
        assert successes, f"{method} {path} documents no success"
        for status, body in successes.items():
            if status == "204":
                assert "content" not in body, f"{method} {path}: 204 with a body"
                continue
            schemas = [media["schema"] for media in body.get("content", {}).values()]
            if not schemas or not all(_typed(document, schema) for schema in schemas):
                untyped.append(f"{method.upper()} {path} {status}: {body.get('content')}")
    assert not untyped, "\n".join(untyped)


async def test_every_api_route_documents_the_problems_it_can_answer(api: httpx.AsyncClient) -> None:
    document = (await api.get("/openapi.json")).json()
    missing = []
    for method, path, operation in _operations(document):
        if not path.startswith("/api/"):
            continue
        expected = set(EVERY_API_ROUTE)
        if "{" in path or (method, path) in NAMING_OTHERS:
            expected.add("404")
        if (method, path) in CONFLICTS:
            expected.add("409")
        if "requestBody" in operation:
            expected.add("413")
        for status in sorted(expected):
            documented = operation["responses"].get(status, {}).get("content", {})
            if PROBLEM not in documented or not _typed(document, documented[PROBLEM]["schema"]):
                missing.append(f"{method.upper()} {path}: {status}")
    assert not missing, "\n".join(missing)


async def test_readiness_documents_its_503(api: httpx.AsyncClient) -> None:
    document = (await api.get("/openapi.json")).json()
    responses = document["paths"]["/health/ready"]["get"]["responses"]
    assert PROBLEM in responses["503"]["content"]
