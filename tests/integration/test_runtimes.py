"""The built-in runtime kinds other than python: http, shell and llm (against MockLLM)."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from pweza.testing.mock_llm import MockLLM
from pweza.testing.platform import Platform
from tests.conftest import pool

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def template(name: str, runtime: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "pweza.ai/v1",
        "kind": "AgentTemplate",
        "metadata": {"name": name},
        "spec": {"runtime": runtime, "retry": {"limit": 1, "backoff": "50ms"}, **spec},
    }


def run_task(platform: Platform, pool_name: str, payload: Any) -> dict[str, Any]:
    with platform.client() as client:
        task_id = client.post("/api/v1/tasks", json={"pool": pool_name, "input": payload}).json()["id"]
    return platform.wait_task(task_id, timeout=60)


@pytest.fixture
def http_endpoint() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            seen.append({"headers": dict(self.headers), "body": body})
            status = 503 if body.get("fail") else (404 if body.get("missing") else 200)
            data = json.dumps({"doubled": body.get("n", 0) * 2}).encode()
            self.send_response(status)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/work", seen
    server.shutdown()
    server.server_close()


def test_http_runtime_posts_the_input_and_classifies_errors(
    platform: Platform, http_endpoint: tuple[str, list[dict[str, Any]]]
) -> None:
    url, seen = http_endpoint
    platform.apply(template("web", {"kind": "http", "url": url, "headers": {"x-team": "core"}}), pool("web", "web"))
    platform.start_agent("web")
    platform.wait_for_agents(1)
    ok = run_task(platform, "web", {"n": 21})
    assert ok["state"] == "succeeded" and ok["output"] == {"doubled": 42}
    headers = {k.lower(): v for k, v in seen[0]["headers"].items()}
    assert headers["x-team"] == "core" and headers["idempotency-key"] == f"{ok['id']}/1"
    retried = run_task(platform, "web", {"fail": True})
    assert retried["state"] == "failed" and retried["attempts"] == 2, "a 503 is retried"
    assert retried["error"]["type"] == "HttpError" and "503" in retried["error"]["message"]
    final = run_task(platform, "web", {"missing": True})
    assert final["state"] == "failed" and final["attempts"] == 1, "a 404 is not retried"


def test_shell_runtime_speaks_json_on_stdin_and_stdout(platform: Platform) -> None:
    script = "import json,sys; d=json.load(sys.stdin); print(json.dumps({'words': len(d['text'].split())}))"
    failing = "import sys; sys.stderr.write('disk full'); sys.exit(3)"
    platform.apply(
        template("count", {"kind": "shell", "command": [sys.executable, "-c", script]}), pool("count", "count")
    )
    platform.apply(
        template("broken", {"kind": "shell", "command": [sys.executable, "-c", failing]}), pool("broken", "broken")
    )
    platform.start_agent("count")
    platform.start_agent("broken")
    platform.wait_for_agents(2)
    assert run_task(platform, "count", {"text": "one two three"})["output"] == {"words": 3}
    failed = run_task(platform, "broken", {})
    assert failed["state"] == "failed" and failed["error"]["type"] == "ShellError"
    assert "disk full" in failed["error"]["message"]


def test_llm_runtime_calls_an_openai_compatible_api(platform: Platform) -> None:
    with MockLLM() as llm:
        runtime = {
            "kind": "llm",
            "baseUrl": llm.base_url,
            "model": "mock-1",
            "prompt": "Be brief.",
            "apiKeyEnv": "MOCK_KEY",
        }
        spec = {"environment": [{"name": "MOCK_KEY", "value": "sk-test-123"}]}
        platform.apply(template("writer", runtime, **spec), pool("writer", "writer"))
        platform.start_agent("writer")
        platform.wait_for_agents(1)
        task = run_task(platform, "writer", "hello agents")
        assert task["state"] == "succeeded", task
        assert task["output"]["content"] == "stnega olleh"
        assert task["output"]["model"] == "mock-1"
        request = llm.requests[0]
        assert request["body"]["messages"][0] == {"role": "system", "content": "Be brief."}
        assert {k.lower(): v for k, v in request["headers"].items()}["authorization"] == "Bearer sk-test-123"
    log = "".join(p.read_text() for p in platform.workdir.glob("agent-*.log"))
    assert "sk-test-123" not in log, "the API key must never be logged"
