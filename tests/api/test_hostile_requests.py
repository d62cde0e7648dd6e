"""What strangers and careless clients send a real manager over loopback: the token is checked
before any body is read, bodies are limited on the bytes that arrive, numbers JSON cannot carry
are refused naming the field, and made-up methods do not grow the metrics."""

from __future__ import annotations

import re

import httpx
import pytest

from pweza.testing.platform import Platform
from tests.api.conftest import PAYLOAD_LIMIT
from tests.api.rawhttp import chunked_request
from tests.conftest import pool, template

# The module starts one manager process for all its tests.
pytestmark = pytest.mark.timeout(120)

BODY_LIMIT = PAYLOAD_LIMIT * 16


def anonymous(live: Platform) -> httpx.Client:
    return httpx.Client(base_url=live.url, timeout=15.0)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/v1/tasks", b"{not json"),
        ("POST", "/api/v1/tasks", b'{"pool": 5, "priority": "high"}'),
        ("POST", "/api/v1/agentpools", b"[1, 2"),
        ("PUT", "/api/v1/agenttemplates/x", b'{"kind": 1}'),
        ("POST", "/api/v1/workflows/wf/runs", b'{"inputs": []}'),
        ("POST", "/api/v1/tokens", b'{"role": "king"}'),
    ],
)
def test_without_a_token_a_malformed_body_is_401(live: Platform, method: str, path: str, body: bytes) -> None:
    with anonymous(live) as client:
        response = client.request(method, path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == "Bearer"


def test_a_viewer_sending_a_malformed_body_to_a_write_route_is_403(live: Platform, viewer_token: str) -> None:
    with live.client(viewer_token) as client:
        response = client.post("/api/v1/tasks", content=b'{"pool": 5}', headers={"content-type": "application/json"})
    assert response.status_code == 403, response.text
    assert "viewer" in response.json()["detail"]


@pytest.mark.parametrize(("who", "status"), [(None, 401), ("viewer", 403)])
def test_a_refused_caller_is_answered_before_the_body_is_read(
    live: Platform, viewer_token: str, who: str | None, status: int
) -> None:
    """The body is never finished: a manager that read it before checking the token never answers."""
    token = viewer_token if who == "viewer" else None
    answer = chunked_request(
        live.http_port, "POST", "/api/v1/tasks", [b'{"pool": "echo", "input": "'], token=token, finish=False
    )
    assert answer.status == status
    assert answer.headers["content-type"] == "application/problem+json"


def test_without_a_token_a_body_announced_over_the_limit_is_401(live: Platform) -> None:
    with anonymous(live) as client:
        response = client.post("/api/v1/tasks", content=b"x" * (BODY_LIMIT + 1))
    assert response.status_code == 401, response.text


def test_with_a_token_a_body_announced_over_the_limit_is_413(live: Platform) -> None:
    with live.client() as client:
        response = client.post("/api/v1/tasks", content=b"x" * (BODY_LIMIT + 1))
    assert response.status_code == 413, response.text
    assert f"the request body is {BODY_LIMIT + 1} bytes; the limit is {BODY_LIMIT}" in response.json()["detail"]


def test_every_api_route_answers_a_stranger_before_reading_the_body(live: Platform) -> None:
    paths = httpx.get(f"{live.url}/openapi.json", timeout=10.0).json()["paths"]
    routes = [(method.upper(), path) for path, operations in paths.items() for method in operations]
    answers = {}
    for method, path in (route for route in routes if route[1].startswith("/api/")):
        concrete = re.sub(r"\{[^}]+\}", "x", path)
        answer = chunked_request(live.http_port, method, concrete, [b'{"never": "'], finish=False, timeout=5.0)
        answers[f"{method} {path}"] = answer.status
    assert len(answers) > 20
    assert {route: status for route, status in answers.items() if status != 401} == {}


def test_a_chunked_body_over_the_limit_is_413(live: Platform) -> None:
    piece = b"x" * 65536
    chunks = [b'{"step": "', *[piece] * (BODY_LIMIT // len(piece) + 2), b'"}']
    answer = chunked_request(live.http_port, "POST", "/api/v1/runs/nothing/retry", chunks, token=live.admin_token)
    assert answer.status == 413, answer.body
    assert answer.headers["content-type"] == "application/problem+json"
    assert f"limit of {BODY_LIMIT} bytes" in str(answer.json())


def test_a_chunked_body_under_the_limit_is_read(live: Platform) -> None:
    answer = chunked_request(
        live.http_port, "POST", "/api/v1/runs/nothing/retry", [b'{"step": ', b'"a"}'], token=live.admin_token
    )
    assert answer.status == 404  # read, parsed and judged: there is no such run


@pytest.fixture(scope="module")
def echo_pool(live: Platform) -> None:
    live.apply(template(), pool())


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        (b'{"pool": "echo", "input": {"n": [1, 18446744073709551616]}}', "input.n[1]", "out of range"),
        (b'{"pool": "echo", "input": -9223372036854775809}', "input", "out of range"),
        (b'{"pool": "echo", "input": {"x": NaN}}', "input.x", "NaN and Infinity"),
        (b'{"pool": "echo", "input": [Infinity]}', "input[0]", "NaN and Infinity"),
        (b'{"pool": "echo", "input": {"big": 1e400}}', "input.big", "NaN and Infinity"),
        (b'{"pool": "echo", "priority": 18446744073709551616}', "priority", "out of range"),
        (b'{"pool": "echo", "input": "\\ud800"}', "input", "surrogate"),
        # What the parser itself chokes on, said as plainly.
        (b'{"pool": "echo", "input": ' + b"[" * 300 + b"]" * 300 + b"}", "input" + "[0]" * 200, "deeper than 200"),
        (b'{"pool": "echo", "input": ' + b"[" * 5000 + b"]" * 5000 + b"}", "body", "deeper than 200"),
        ('{"pool": "échø"}'.encode("latin-1"), "body", "not JSON in UTF-8"),
        (b'{"pool": "echo", "input": ' + b"9" * 5000 + b"}", "body", "too many digits"),
    ],
)
def test_values_json_cannot_carry_are_422_naming_the_field(
    live: Platform, echo_pool: None, body: bytes, field: str, words: str
) -> None:
    with live.client() as client:
        response = client.post("/api/v1/tasks", content=body, headers={"content-type": "application/json"})
        assert response.status_code == 422, response.text
        problem = response.json()
        assert problem["field"] == field
        assert words in problem["detail"]
        assert client.get("/api/v1/tasks").json()["items"] == []


def test_the_largest_64_bit_integers_are_kept_exactly(live: Platform, echo_pool: None) -> None:
    body = b'{"pool": "echo", "input": {"max": 18446744073709551615, "min": -9223372036854775808}}'
    with live.client() as client:
        created = client.post("/api/v1/tasks", content=body, headers={"content-type": "application/json"})
        assert created.status_code == 201, created.text
        stored = client.get(f"/api/v1/tasks/{created.json()['id']}").json()
        client.post(f"/api/v1/tasks/{created.json()['id']}/cancel")
    assert stored["input"] == {"max": 2**64 - 1, "min": -(2**63)}


def test_made_up_methods_do_not_add_metric_labels(live: Platform) -> None:
    with anonymous(live) as client:
        for index in range(20):
            client.request(f"BREW{index}", "/api/v1/tasks")
            client.request(f"BREW{index}", f"/nowhere/{index}")
    scraped = httpx.get(f"http://127.0.0.1:{live.metrics_port}/metrics", timeout=10.0).text
    methods = set(re.findall(r'^pweza_api_requests_total\{[^}]*method="([^"]*)"', scraped, re.MULTILINE))
    paths = set(re.findall(r'^pweza_api_requests_total\{[^}]*route="([^"]*)"', scraped, re.MULTILINE))
    assert "other" in methods
    assert methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}
    assert "/api/v1/tasks" in paths  # a known route is counted under its template
    assert not any("/nowhere" in path for path in paths)


HUGE = str(2**63)  # one past the store's largest integer


@pytest.mark.parametrize(
    ("path", "headers", "field"),
    [
        (f"/api/v1/audit?before={HUGE}", {}, "before"),
        ("/api/v1/audit?before=-1", {}, "before"),
        (f"/api/v1/runs?continue={HUGE}", {}, "continue"),
        (f"/api/v1/tasks?continue={HUGE}", {}, "continue"),
        (f"/api/v1/runs/x/events?after={HUGE}", {}, "after"),
        ("/api/v1/runs/x/events", {"Last-Event-ID": HUGE}, "Last-Event-ID"),
    ],
)
def test_query_integers_beyond_the_store_are_422_naming_the_parameter(
    live: Platform, path: str, headers: dict[str, str], field: str
) -> None:
    """Found by schemathesis: the audit, runs and tasks cursors reached the database and failed there
    with a 500. Event ids are bounded the same way."""
    with live.client() as client:
        response = client.get(path, headers=headers)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
