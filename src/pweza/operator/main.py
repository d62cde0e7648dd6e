"""`pweza operator`: leader election, then kopf running the handlers; metrics, health and the
admission webhook (on every replica, leader or not) on the side."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from dataclasses import dataclass, field

import kopf
import structlog
from aiohttp import web
from prometheus_client import start_http_server

from pweza.operator import metrics
from pweza.operator.admission import AdmissionServer, WebhookOptions
from pweza.operator.handlers import Context, register, resync_forever
from pweza.operator.kube import Kube
from pweza.operator.leadership import LeaderElector, LostLeadership
from pweza.operator.resources import OperatorConfig
from pweza.operator.syncing import ManagerSync

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class OperatorOptions:
    kubeconfig: str | None = None
    namespaces: list[str] = field(default_factory=list)
    manager_url: str | None = None
    manager_token: str | None = None
    resources: OperatorConfig = field(default_factory=OperatorConfig)
    lease_name: str = "pweza-operator"
    lease_namespace: str = "default"
    lease_seconds: int = 15
    identity: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    metrics_port: int = 8000
    health_port: int = 8081
    host: str = "0.0.0.0"
    resync_seconds: float = 30.0
    # None: no admission webhook (e.g. a cluster whose chart has it turned off).
    webhook: WebhookOptions | None = None


async def _health_server(options: OperatorOptions, elector: LeaderElector) -> web.AppRunner:
    async def healthz(_: web.Request) -> web.Response:
        # Alive whether leading or standing by: a standby must not be restarted for waiting.
        return web.json_response(
            {"status": "ok", "leader": metrics.leader._value.get() == 1, "identity": elector.identity}
        )

    async def readyz(_: web.Request) -> web.Response:
        # Ready while the API server answers the Lease calls; not ready does not mean restart.
        ready = elector.in_contact()
        return web.json_response({"ready": ready, "identity": elector.identity}, status=200 if ready else 503)

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, options.host, options.health_port).start()
    return runner


async def run_operator(options: OperatorOptions) -> int:
    """Run until SIGTERM (exit 0) or until leadership is lost (exit 1, to restart as a standby)."""
    logging.getLogger("kopf").setLevel(logging.WARNING)
    # The webhook first: its certificate files are checked before anything else (a bad pair
    # exits at once), and a pod reports healthy only once it answers admission reviews.
    webhook = AdmissionServer(options.webhook) if options.webhook is not None else None
    if webhook is not None:
        await webhook.start()
    try:
        kube = await Kube.connect(options.kubeconfig, options.resources.field_manager)
    except BaseException:
        if webhook is not None:
            await webhook.stop()
        raise
    elector = LeaderElector(
        kube,
        name=options.lease_name,
        namespace=options.lease_namespace,
        identity=options.identity,
        lease_seconds=options.lease_seconds,
        renew_seconds=max(1.0, options.lease_seconds / 3),
        retry_seconds=max(0.5, options.lease_seconds / 7),
    )
    metrics_server, _ = start_http_server(options.metrics_port, options.host, metrics.registry)
    health = await _health_server(options, elector)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    manager = ManagerSync(options.manager_url, options.manager_token) if options.manager_url else None
    stopping = asyncio.create_task(stop.wait())
    try:
        acquiring = asyncio.create_task(elector.acquire())
        await asyncio.wait({acquiring, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            acquiring.cancel()
            return 0
        metrics.leader.set(1)
        registry = kopf.OperatorRegistry()
        context = Context(kube, options.resources, manager, options.resync_seconds)
        register(registry, context)
        settings = kopf.OperatorSettings()
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="kopf.pweza.ai")
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="kopf.pweza.ai")
        settings.posting.level = logging.WARNING
        settings.networking.request_timeout = 30
        kopf_stop = asyncio.Event()
        # kopf names this process after POD_ID, else after the login name, which a container
        # running as a uid without a passwd entry (uid 1000 on a distroless base) does not have:
        # getpwuid() fails and the operator never starts.
        os.environ.setdefault("POD_ID", options.identity)
        operator = asyncio.create_task(
            kopf.operator(
                registry=registry,
                settings=settings,
                standalone=True,  # leadership is ours (the Lease), not kopf's peering
                clusterwide=not options.namespaces,
                namespaces=options.namespaces,
                stop_flag=kopf_stop,
            )
        )
        keeping = asyncio.create_task(elector.keep())
        resyncing = asyncio.create_task(resync_forever(context, options.namespaces))
        done, _ = await asyncio.wait({operator, keeping, stopping}, return_when=asyncio.FIRST_COMPLETED)
        kopf_stop.set()
        keeping.cancel()
        resyncing.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(operator, 20)
        metrics.leader.set(0)
        if keeping in done and isinstance(keeping.exception(), LostLeadership):
            log.error("lost leadership; exiting to restart as a standby", reason=str(keeping.exception()))
            return 1
        if operator in done and operator.exception() is not None:
            log.error("operator stopped", error=str(operator.exception()))
            return 1
        await elector.release()
        return 0
    finally:
        stopping.cancel()
        if manager is not None:
            await manager.close()
        await health.cleanup()
        metrics_server.shutdown()
        if webhook is not None:
            # Last: a replica stopping keeps answering the API server while the others take over.
            await webhook.stop()
