"""MockLLM: a stand-in for a hosted, OpenAI-compatible chat-completions API.

A hosted model cannot run here, so tests of the `llm` runtime talk to this instead: a real
HTTP server on loopback that answers `POST /v1/chat/completions` deterministically (it
reverses the user message) and records every request it got, headers included.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self


class MockLLM:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
                owner.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                if self.path != "/v1/chat/completions":
                    self.send_error(404)
                    return
                user = next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user")
                reply = {
                    "id": "mock-1",
                    "model": body["model"],
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": user[::-1]}}],
                    "usage": {"prompt_tokens": len(user.split()), "completion_tokens": len(user.split())},
                }
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()
