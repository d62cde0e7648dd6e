"""The FastAPI application: routers, problem responses, body limits, request metrics."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from pweza import __version__
from pweza.api import admin, objects, problems, runs, tasks
from pweza.manager.service import Manager

Handler = Callable[[Request], Awaitable[Response]]


def create_app(manager: Manager) -> FastAPI:
    app = FastAPI(
        title="pweza-core",
        version=__version__,
        description="Control plane for fleets of AI agents. Every /api/v1 route needs a bearer token.",
    )
    app.state.manager = manager
    problems.install(app)
    # Declared before the generic /{plural} routes so 'tasks' and 'agents' win.
    app.include_router(tasks.router)
    app.include_router(admin.router)
    app.include_router(runs.router)
    app.include_router(objects.router)

    @app.get("/health/live", tags=["health"])
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/health/ready", tags=["health"], response_model=None)
    async def ready() -> dict[str, str] | JSONResponse:
        if await manager.ready():
            return {"status": "ok"}
        return problems.problem(503, "Not ready", "the store is unreachable or not migrated")

    # Requests may carry many inputs (a batch of tasks); each input is also checked on its own.
    body_limit = manager.settings.max_payload_bytes * 16

    @app.middleware("http")
    async def guard_and_measure(request: Request, call_next: Handler) -> Response:
        started = time.perf_counter()
        length = request.headers.get("content-length")
        # Refused before the body is read.
        if length is not None and length.isdigit() and int(length) > body_limit:
            response: Response = problems.problem(
                413, "Payload too large", f"request body is {length} bytes; the limit is {body_limit}"
            )
        else:
            response = await call_next(request)
        route = request.scope.get("route")
        template = getattr(route, "path", "unmatched")
        manager.metrics.api_requests.labels(request.method, template, str(response.status_code)).inc()
        manager.metrics.api_duration.labels(request.method, template).observe(time.perf_counter() - started)
        return response

    return app
