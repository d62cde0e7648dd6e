"""Running the Core Manager: HTTP, gRPC and metrics servers around one Manager."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

import structlog
import uvicorn
from prometheus_client import start_http_server

from pweza.api.app import create_app
from pweza.manager.config import Settings
from pweza.manager.service import Manager
from pweza.rpc.server import start_grpc_server
from pweza.store.sqlite import open_store

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Endpoints:
    http: str
    grpc: str
    metrics: str | None


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the process's owner decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


ReadyHook = Callable[[Manager, Endpoints], Awaitable[None]]


def _url_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "") else (f"[{host}]" if ":" in host else host)


async def serve(settings: Settings, stop: asyncio.Event, on_ready: ReadyHook | None = None) -> None:
    """Run until `stop` is set, then shut down in order: HTTP, gRPC, dispatcher, store."""
    manager = Manager(open_store(settings.database_url), settings)
    await manager.start()
    grpc_server, grpc_port = await start_grpc_server(manager, f"{settings.host}:{settings.grpc_port}")
    metrics_url = None
    metrics_server = None
    if settings.metrics_enabled:
        metrics_server, _ = start_http_server(settings.metrics_port, settings.host, manager.metrics.registry)
        metrics_url = f"http://{_url_host(settings.host)}:{settings.metrics_port}/metrics"
    config = uvicorn.Config(
        create_app(manager),
        host=settings.host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
        lifespan="off",
        ssl_certfile=str(settings.tls_cert_file) if settings.tls_enabled else None,
        ssl_keyfile=str(settings.tls_key_file) if settings.tls_enabled else None,
    )
    http_server = _Server(config)
    http_task = asyncio.create_task(http_server.serve())
    try:
        while not http_server.started:
            if http_task.done():
                http_task.result()
                raise RuntimeError(f"HTTP server did not start on port {settings.http_port}")
            await asyncio.sleep(0.02)
        scheme = "https" if settings.tls_enabled else "http"
        endpoints = Endpoints(
            http=f"{scheme}://{_url_host(settings.host)}:{settings.http_port}",
            grpc=f"{_url_host(settings.host)}:{grpc_port}",
            metrics=metrics_url,
        )
        log.info("manager ready", http=endpoints.http, grpc=endpoints.grpc, metrics=endpoints.metrics)
        if on_ready is not None:
            await on_ready(manager, endpoints)
        await stop.wait()
    finally:
        http_server.should_exit = True
        await asyncio.gather(http_task, return_exceptions=True)
        await grpc_server.stop(grace=2.0)
        if metrics_server is not None:
            metrics_server.shutdown()
        await manager.stop()
        log.info("manager stopped")
