"""The FastAPI application: routers, problem responses, body limits, request metrics."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from pweza import __version__
from pweza.api import admin, docs, objects, problems, runs, tasks, ui
from pweza.api.middleware import BodyLimit, RequestMetrics
from pweza.api.responses import Status
from pweza.manager.service import Manager

# A request may carry many inputs (a batch of tasks), each checked on its own against the payload
# limit; the whole body may be this many times that limit.
BODY_LIMIT_FACTOR = 16


def create_app(manager: Manager) -> FastAPI:
    app = FastAPI(
        title="pweza-core",
        version=__version__,
        description="Control plane for fleets of AI agents. Every /api/v1 route needs a bearer token.",
        # Served by docs.install from the package's own copies of their scripts, not a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.manager = manager
    problems.install(app)
    # Declared before the generic /{plural} routes so 'tasks' and 'agents' win.
    app.include_router(tasks.router)
    app.include_router(admin.router)
    app.include_router(runs.router)
    app.include_router(objects.router)
    docs.install(app)
    ui.install(app)

    @app.get("/health/live", tags=["health"], response_model=Status)
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/health/ready", tags=["health"], response_model=Status, responses=problems.responses(503))
    async def ready() -> dict[str, str] | JSONResponse:
        if await manager.ready():
            return {"status": "ok"}
        return problems.problem(503, "Not ready", "the store is unreachable or not migrated")

    app.add_middleware(BodyLimit, limit=manager.settings.max_payload_bytes * BODY_LIMIT_FACTOR)
    # Added last, so it runs first: it counts the body limit's 413s too.
    app.add_middleware(RequestMetrics, metrics=manager.metrics)
    return app
