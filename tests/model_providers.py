"""Stand-ins for hosted model providers, real HTTP servers on loopback: one that fails (503, 429,
too slow) as a provider in trouble does, one that answers from a script. Each records the
requests it got, headers included."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """One answer: a status and a JSON body, or (stream) these events as server-sent events."""

    status: int = 200
    body: Any = None
    stream: list[Any] | None = None
    delay: float = 0.0


def chat_reply(content: str | None = None, tool_calls: list[dict[str, Any]] | None = None, **usage: int) -> Reply:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    body = {
        "model": "stand-in",
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if tool_calls else "stop"}],
        "usage": {"prompt_tokens": usage.get("prompt", 7), "completion_tokens": usage.get("completion", 3)},
    }
    return Reply(body=body)


@dataclass
class StandInProvider:
    """Answers POST …/chat/completions with `script(request_number, body)`; records what it got."""

    script: Callable[[int, dict[str, Any]], Reply]
    # What GET …/models lists; None: it answers 503 there too.
    models: list[str] | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    base_url: str = ""
    # Chats being answered now, and the most there ever were at once.
    in_flight: int = 0
    most_in_flight: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def list_models(self, handler: BaseHTTPRequestHandler) -> None:
        self.requests.append({"path": handler.path, "headers": dict(handler.headers), "body": None})
        listed = {"object": "list", "data": [{"id": m, "object": "model"} for m in self.models or []]}
        data = json.dumps(listed if self.models is not None else {"error": "overloaded"}).encode()
        handler.send_response(200 if self.models is not None else 503)
        handler.send_header("content-type", "application/json")
        handler.send_header("content-length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def answer(self, handler: BaseHTTPRequestHandler) -> None:
        body = json.loads(handler.rfile.read(int(handler.headers.get("content-length", 0))))
        with self._lock:
            number = len(self.requests)
            self.requests.append({"path": handler.path, "headers": dict(handler.headers), "body": body})
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            self._reply(handler, self.script(number, body))
        finally:
            with self._lock:
                self.in_flight -= 1

    def _reply(self, handler: BaseHTTPRequestHandler, reply: Reply) -> None:
        if reply.delay:
            time.sleep(reply.delay)
        if reply.stream is not None:
            data = b"".join(f"data: {json.dumps(event)}\n\n".encode() for event in reply.stream) + b"data: [DONE]\n\n"
            kind = "text/event-stream"
        else:
            data = json.dumps(reply.body if reply.body is not None else {"error": "stand-in"}).encode()
            kind = "application/json"
        try:
            handler.send_response(reply.status)
            handler.send_header("content-type", kind)
            handler.send_header("content-length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (a timeout test)


@contextmanager
def provider(
    script: Callable[[int, dict[str, Any]], Reply], models: list[str] | None = None
) -> Iterator[StandInProvider]:
    stand_in = StandInProvider(script, models)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            stand_in.answer(self)

        def do_GET(self) -> None:
            stand_in.list_models(self)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    stand_in.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        yield stand_in
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def failing_provider(status: int = 503) -> Iterator[StandInProvider]:
    """A provider in trouble: every chat gets `status`."""
    with provider(lambda _n, _body: Reply(status=status, body={"error": {"message": "overloaded"}})) as stand_in:
        yield stand_in
