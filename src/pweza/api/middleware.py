"""ASGI middleware: the request body limit, counted on the bytes as they arrive, and the request
metrics, whose labels come from a fixed set whatever a client sends."""

from __future__ import annotations

import time

import orjson
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pweza.api.problems import PROBLEM
from pweza.manager.metrics import Metrics

# Any other method a client makes up is counted as "other": each new label value is a new series.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class BodyTooLarge(HTTPException):
    """Raised from `receive` once the body passes the limit. An HTTPException, because FastAPI
    turns anything else raised while it reads a body into '400 error parsing the body'."""

    def __init__(self, detail: str) -> None:
        super().__init__(413, detail)


class BodyLimit:
    """Refuse a body over `limit` bytes when it is first read: at once when Content-Length says so,
    otherwise as soon as that many bytes have arrived (a chunked body has no length to check).
    Nothing happens before the app reads the body, so a caller without a valid token is told 401
    (the routes check the token first) whatever the body is."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length", b"")
        announced = int(length) if length.isdigit() else 0
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            if announced > self.limit:
                raise BodyTooLarge(f"the request body is {announced} bytes; the limit is {self.limit}")
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(f"the request body is over the limit of {self.limit} bytes")
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except BodyTooLarge as error:  # read outside a route (the routes answer it themselves)
            if started:
                raise
            await _send_problem(send, 413, "Payload too large", str(error.detail))


async def _send_problem(send: Send, status: int, title: str, detail: str) -> None:
    body = orjson.dumps({"type": "about:blank", "title": title, "status": status, "detail": detail})
    headers = [(b"content-type", PROBLEM.encode()), (b"content-length", str(len(body)).encode())]
    # The rest of the body is not read: the connection cannot be reused, so say it is closed.
    headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RequestMetrics:
    """Count and time every request by method, route template (never the raw path) and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # if the app fails before it answers

        async def watched_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, watched_send)
        finally:
            method = scope["method"] if scope["method"] in KNOWN_METHODS else "other"
            route = scope.get("route")
            template = str(getattr(route, "path", "unmatched"))
            self.metrics.api_requests.labels(method, template, str(status)).inc()
            self.metrics.api_duration.labels(method, template).observe(time.perf_counter() - started)
