"""ToolServer custom resources: mirrored into the manager, which lists their tools; its listing
is written back as the resource's status (tools, toolCount, lastRefreshed, lastError, Ready).

The manager lists a server's tools shortly after it is registered, so the first pass usually
finds no listing yet (Ready False, reason Listing); the resync pass copies it once it is there.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import kopf

from pweza.operator import metrics
from pweza.operator.conditions import condition, merge
from pweza.operator.syncing import ManagerRejected

if TYPE_CHECKING:
    from pweza.operator.handlers import Context

KIND, PLURAL = "ToolServer", "toolservers"
GROUP, VERSION = "pweza.ai", "v1"
API = f"{GROUP}/{VERSION}"
# Copied from the manager's status; a key it no longer has is cleared (null in a merge patch).
LISTING_KEYS = ("tools", "toolCount", "lastRefreshed", "lastError")


async def reconcile_tool_server(ctx: Context, namespace: str, name: str) -> None:
    started = time.perf_counter()
    body = await ctx.kube.get(API, KIND, name, namespace)
    if body is None or ctx.manager is None or body["metadata"].get("deletionTimestamp"):
        return
    status, generation = body.get("status") or {}, body["metadata"].get("generation")
    new_status: dict[str, Any] = {"observedGeneration": generation}
    try:
        await ctx.manager.put(body)
        listing = await ctx.manager.status_of(KIND, namespace, name)
        new_status.update({key: listing.get(key) for key in LISTING_KEYS})
        ready = _listed(listing, generation)
        result = "ok"
    except Exception as error:  # noqa: BLE001 - refused: says why; unreachable: retried by the resync pass
        refused = isinstance(error, ManagerRejected)
        reason, result = ("Invalid", "invalid") if refused else ("ManagerUnreachable", "error")
        ready = condition("Ready", False, reason, str(error), generation)
        metrics.reconcile_errors.labels(kind=KIND, reason=reason).inc()
    new_status["conditions"] = merge(status.get("conditions"), [ready])
    if {key: status.get(key) for key in new_status} != new_status:
        await ctx.kube.patch_status(API, KIND, name, namespace, new_status)
    metrics.reconciles.labels(kind=KIND, result=result).inc()
    metrics.reconcile_duration.labels(kind=KIND).observe(time.perf_counter() - started)


def _listed(listing: dict[str, Any], generation: int | None) -> dict[str, Any]:
    """The manager's Ready condition, for this resource's generation."""
    ready = next((c for c in listing.get("conditions") or [] if c.get("type") == "Ready"), None)
    if ready is None:
        return condition("Ready", False, "Listing", "the manager has not listed the tools yet", generation)
    return condition("Ready", ready.get("status") == "True", ready["reason"], ready.get("message", ""), generation)


def register(registry: kopf.OperatorRegistry, ctx: Context) -> None:
    """Reconcile a ToolServer on every change (and at the operator's start); forget it in the manager when deleted."""

    async def tool_server_changed(namespace: str | None, name: str, **_: Any) -> None:
        await reconcile_tool_server(ctx, namespace or "default", name)

    async def tool_server_deleted(namespace: str | None, name: str, **_: Any) -> None:
        if ctx.manager is not None:
            await ctx.manager.delete(KIND, namespace or "default", name)

    for event in (kopf.on.resume, kopf.on.create, kopf.on.update):
        event(GROUP, VERSION, PLURAL, registry=registry)(tool_server_changed)
    kopf.on.delete(GROUP, VERSION, PLURAL, optional=True, registry=registry)(tool_server_deleted)
