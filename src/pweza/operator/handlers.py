"""kopf handlers: every change, and a periodic resync, converge the cluster on the resources.

Reconciliation is level-triggered: each pass computes the whole desired state from the
AgentPool and its AgentTemplate and server-side applies it, so a deleted or edited
Deployment is put back by the next event or resync. A broken object gets a condition
saying why instead of an exception loop.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import kopf
import structlog
from pydantic import ValidationError

from pweza.domain.kinds import validation_problem
from pweza.domain.manifests import AgentPool, AgentTemplate
from pweza.operator import metrics, resources, tool_servers
from pweza.operator.conditions import condition, differs, merge
from pweza.operator.kube import Kube
from pweza.operator.model_configs import key_variables, models_of, reconcile_model_config, sync_models
from pweza.operator.syncing import ManagerRejected, ManagerSync
from pweza.operator.tool_servers import reconcile_tool_server

log = structlog.get_logger(__name__)
GROUP, VERSION = "pweza.ai", "v1"
API = f"{GROUP}/{VERSION}"


@dataclass(slots=True)
class Context:
    kube: Kube
    config: resources.OperatorConfig
    manager: ManagerSync | None
    resync_seconds: float = 30.0


def _clean(body: Any) -> dict[str, Any]:
    data = dict(body)
    return {key: data[key] for key in ("apiVersion", "kind", "metadata", "spec") if key in data}


async def reconcile_pool(ctx: Context, namespace: str, name: str) -> None:
    started = time.perf_counter()
    try:
        result = await _reconcile_pool(ctx, namespace, name)
        metrics.reconciles.labels(kind="AgentPool", result=result).inc()
    except Exception:
        metrics.reconciles.labels(kind="AgentPool", result="error").inc()
        metrics.reconcile_errors.labels(kind="AgentPool", reason="exception").inc()
        raise
    finally:
        metrics.reconcile_duration.labels(kind="AgentPool").observe(time.perf_counter() - started)


async def _reconcile_pool(ctx: Context, namespace: str, name: str) -> str:
    body = await ctx.kube.get(API, "AgentPool", name, namespace)
    if body is None or body["metadata"].get("deletionTimestamp"):
        return "gone"
    generation = body["metadata"].get("generation")
    status = body.get("status") or {}
    try:
        pool = AgentPool.model_validate(_clean(body))
    except ValidationError as error:
        await _pool_broken(ctx, body, "InvalidSpec", validation_problem(error).detail)
        return "invalid"
    template_body = await ctx.kube.get(API, "AgentTemplate", pool.spec.template_ref, namespace)
    if template_body is None:
        message = f"AgentTemplate {pool.spec.template_ref!r} not found in namespace {namespace!r}"
        await _pool_broken(ctx, body, "TemplateNotFound", message)
        return "waiting"
    template = AgentTemplate.model_validate(_clean(template_body))
    uid = body["metadata"]["uid"]
    template_generation = int(template_body["metadata"].get("generation", 1))
    models = await models_of(ctx, template, namespace)
    await ctx.kube.apply(resources.service_account(pool, uid))
    deployment = await ctx.kube.apply(
        resources.deployment(pool, template, template_generation, uid, ctx.config, key_variables(models))
    )
    hpa = resources.autoscaler(pool, uid)
    if hpa is not None:
        if pool.spec.replicas is None:
            # The HPA reads and writes the scale subresource, whose replicas field must exist.
            await ctx.kube.merge_patch(
                API, "AgentPool", name, namespace, {"spec": {"replicas": pool.spec.desired_replicas}}
            )
        await ctx.kube.apply(hpa)
    else:
        await ctx.kube.delete("autoscaling/v2", "HorizontalPodAutoscaler", resources.deployment_name(name), namespace)
    sync_problem = None
    if ctx.manager is not None:
        try:
            await sync_models(ctx, models)
            await ctx.manager.put(template_body)
            await ctx.manager.put(body)
        except ManagerRejected as error:
            sync_problem = f"the manager refused it: {error}"
        except Exception as error:  # noqa: BLE001 - the manager may be down; agents wait for it
            sync_problem = f"the manager is unreachable: {error}"
    desired = pool.spec.desired_replicas
    dep_status = deployment.get("status") or {}
    ready = int(dep_status.get("readyReplicas") or 0)
    updated = int(dep_status.get("updatedReplicas") or 0)
    rolling = dep_status.get("observedGeneration", 0) < deployment["metadata"].get("generation", 0) or updated < desired
    conditions = [
        condition(
            "Ready",
            ready >= desired,
            "AllReplicasReady" if ready >= desired else "ReplicasNotReady",
            f"{ready}/{desired} agents ready",
            generation,
        ),
        condition(
            "Progressing",
            rolling,
            "RollingOut" if rolling else "Stable",
            f"{updated}/{desired} agents on template generation {template_generation}",
            generation,
        ),
        condition(
            "Degraded",
            sync_problem is not None,
            "ManagerSyncFailed" if sync_problem else "AsExpected",
            sync_problem or "",
            generation,
        ),
    ]
    new_status = {
        "replicas": desired,
        "readyReplicas": ready,
        "selector": resources.selector_string(name),
        "template": f"{pool.spec.template_ref}@{template_generation}",
        "observedGeneration": generation,
        "conditions": merge(status.get("conditions"), conditions),
    }
    if differs(status, new_status):
        await ctx.kube.patch_status(API, "AgentPool", name, namespace, new_status)
    return "ok"


async def _pool_broken(ctx: Context, body: dict[str, Any], reason: str, message: str) -> None:
    metrics.reconcile_errors.labels(kind="AgentPool", reason=reason).inc()
    meta = body["metadata"]
    status = body.get("status") or {}
    generation = meta.get("generation")
    conditions = [
        condition("Ready", False, reason, message, generation),
        condition("Progressing", False, reason, message, generation),
        condition("Degraded", True, reason, message, generation),
    ]
    new_status = {
        "observedGeneration": generation,
        "replicas": status.get("replicas", 0),
        "readyReplicas": status.get("readyReplicas", 0),
        "selector": resources.selector_string(meta["name"]),
        "conditions": merge(status.get("conditions"), conditions),
    }
    if differs(status, new_status):
        await ctx.kube.patch_status(API, "AgentPool", meta["name"], meta["namespace"], new_status)
    log.warning("agent pool not reconciled", pool=f"{meta['namespace']}/{meta['name']}", reason=reason, detail=message)


async def reconcile_template(ctx: Context, namespace: str, name: str) -> None:
    started = time.perf_counter()
    pools = [
        p for p in await ctx.kube.list(API, "AgentPool", namespace) if (p.get("spec") or {}).get("templateRef") == name
    ]
    for pool in pools:
        await reconcile_pool(ctx, namespace, pool["metadata"]["name"])
    body = await ctx.kube.get(API, "AgentTemplate", name, namespace)
    if body is not None:
        generation = body["metadata"].get("generation")
        conditions = [condition("Ready", True, "Accepted", f"used by {len(pools)} pools", generation)]
        if ctx.manager is not None:
            try:
                await ctx.manager.put(body)
            except ManagerRejected as error:
                conditions = [condition("Ready", False, "ManagerRejected", str(error), generation)]
            except Exception as error:  # noqa: BLE001
                conditions = [condition("Ready", False, "ManagerUnreachable", str(error), generation)]
        status = body.get("status") or {}
        new_status = {
            "pools": len(pools),
            "observedGeneration": generation,
            "conditions": merge(status.get("conditions"), conditions),
        }
        if differs(status, new_status):
            await ctx.kube.patch_status(API, "AgentTemplate", name, namespace, new_status)
    metrics.reconciles.labels(kind="AgentTemplate", result="ok").inc()
    metrics.reconcile_duration.labels(kind="AgentTemplate").observe(time.perf_counter() - started)


async def reconcile_workflow(ctx: Context, namespace: str, name: str, *, with_runs: bool = False) -> None:
    started = time.perf_counter()
    body = await ctx.kube.get(API, "Workflow", name, namespace)
    if body is None or ctx.manager is None:
        return
    generation = body["metadata"].get("generation")
    status = body.get("status") or {}
    new_status: dict[str, Any] = {"observedGeneration": generation}
    try:
        await ctx.manager.put(body)
        new_status["registeredGeneration"] = generation
        ready = condition(
            "Ready", True, "Registered", f"generation {generation} registered with the manager", generation
        )
        if with_runs or status.get("registeredGeneration") != generation:
            runs = await ctx.manager.recent_runs(namespace, name)
            counts: dict[str, int] = {}
            for run in runs:
                counts[run["state"]] = counts.get(run["state"], 0) + 1
            new_status["recentRuns"] = counts
            if runs:
                latest = runs[0]
                new_status["lastRun"] = {"id": latest["id"], "state": latest["state"], "createdAt": latest["createdAt"]}
        result = "ok"
    except ManagerRejected as error:
        ready = condition("Ready", False, "Invalid", str(error), generation)
        metrics.reconcile_errors.labels(kind="Workflow", reason="Invalid").inc()
        result = "invalid"
    except Exception as error:  # noqa: BLE001 - retried by the resync timer
        ready = condition("Ready", False, "ManagerUnreachable", str(error), generation)
        metrics.reconcile_errors.labels(kind="Workflow", reason="ManagerUnreachable").inc()
        result = "error"
    new_status["conditions"] = merge(status.get("conditions"), [ready])
    if differs(status, new_status):
        await ctx.kube.patch_status(API, "Workflow", name, namespace, new_status)
    metrics.reconciles.labels(kind="Workflow", result=result).inc()
    metrics.reconcile_duration.labels(kind="Workflow").observe(time.perf_counter() - started)


async def resync_forever(ctx: Context, namespaces: list[str]) -> None:
    """Level-triggered repair: every pass reconciles every pool, workflow and ToolServer, whatever events
    were missed. (A loop here rather than kopf timers: timers put finalizers on every object.)"""
    targets: list[str | None] = list(namespaces) or [None]
    while True:
        await asyncio.sleep(ctx.resync_seconds)
        for namespace in targets:
            for kind, reconcile in (
                ("ModelConfig", reconcile_model_config),
                ("AgentPool", reconcile_pool),
                ("Workflow", _reconcile_workflow_with_runs),
                ("ToolServer", reconcile_tool_server),
            ):
                try:
                    items = await ctx.kube.list(API, kind, namespace)
                except Exception as error:  # noqa: BLE001 - the API may be briefly away; try next pass
                    log.warning("resync list failed", kind=kind, error=str(error))
                    continue
                for item in items:
                    meta = item["metadata"]
                    try:
                        await reconcile(ctx, meta["namespace"], meta["name"])
                    except Exception as error:  # noqa: BLE001 - one broken object must not stop the pass
                        log.warning(
                            "resync failed", kind=kind, name=f"{meta['namespace']}/{meta['name']}", error=str(error)
                        )


async def _reconcile_workflow_with_runs(ctx: Context, namespace: str, name: str) -> None:
    await reconcile_workflow(ctx, namespace, name, with_runs=True)


def register(registry: kopf.OperatorRegistry, ctx: Context) -> None:
    """Attach the handlers to a registry (one per operator process, no globals)."""

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return ctx.kube.connection_info()

    @kopf.on.resume(GROUP, VERSION, "agentpools", registry=registry)
    @kopf.on.create(GROUP, VERSION, "agentpools", registry=registry)
    @kopf.on.update(GROUP, VERSION, "agentpools", registry=registry)
    async def pool_changed(namespace: str | None, name: str, **_: Any) -> None:
        await reconcile_pool(ctx, namespace or "default", name)

    @kopf.on.delete(GROUP, VERSION, "agentpools", optional=True, registry=registry)
    async def pool_deleted(namespace: str | None, name: str, **_: Any) -> None:
        # Owned objects go with the pool through their owner references.
        if ctx.manager is not None:
            await ctx.manager.delete("AgentPool", namespace or "default", name)

    @kopf.on.event(
        "apps", "v1", "deployments", labels={"app.kubernetes.io/managed-by": resources.MANAGED_BY}, registry=registry
    )
    async def deployment_event(event: Any, namespace: str | None, labels: Any, **_: Any) -> None:
        pool = labels.get(resources.POOL_LABEL)
        if pool and event.get("type") in ("MODIFIED", "DELETED", None):
            await reconcile_pool(ctx, namespace or "default", pool)

    @kopf.on.resume(GROUP, VERSION, "agenttemplates", registry=registry)
    @kopf.on.create(GROUP, VERSION, "agenttemplates", registry=registry)
    @kopf.on.update(GROUP, VERSION, "agenttemplates", registry=registry)
    async def template_changed(namespace: str | None, name: str, **_: Any) -> None:
        await reconcile_template(ctx, namespace or "default", name)

    @kopf.on.delete(GROUP, VERSION, "agenttemplates", optional=True, registry=registry)
    async def template_deleted(namespace: str | None, name: str, **_: Any) -> None:
        ns = namespace or "default"
        for pool in await ctx.kube.list(API, "AgentPool", ns):
            if (pool.get("spec") or {}).get("templateRef") == name:
                await reconcile_pool(ctx, ns, pool["metadata"]["name"])
        if ctx.manager is not None:
            await ctx.manager.delete("AgentTemplate", ns, name)

    @kopf.on.resume(GROUP, VERSION, "modelconfigs", registry=registry)
    @kopf.on.create(GROUP, VERSION, "modelconfigs", registry=registry)
    @kopf.on.update(GROUP, VERSION, "modelconfigs", registry=registry)
    async def model_config_changed(namespace: str | None, name: str, **_: Any) -> None:
        ns = namespace or "default"
        await reconcile_model_config(ctx, ns, name)
        # Its key's Secret reference is in the pods of the pools whose templates use it.
        for pool in await ctx.kube.list(API, "AgentPool", ns):
            await reconcile_pool(ctx, ns, pool["metadata"]["name"])

    @kopf.on.delete(GROUP, VERSION, "modelconfigs", optional=True, registry=registry)
    async def model_config_deleted(namespace: str | None, name: str, **_: Any) -> None:
        if ctx.manager is not None:
            await ctx.manager.delete("ModelConfig", namespace or "default", name)

    @kopf.on.resume(GROUP, VERSION, "workflows", registry=registry)
    @kopf.on.create(GROUP, VERSION, "workflows", registry=registry)
    @kopf.on.update(GROUP, VERSION, "workflows", registry=registry)
    async def workflow_changed(namespace: str | None, name: str, **_: Any) -> None:
        await reconcile_workflow(ctx, namespace or "default", name)

    @kopf.on.delete(GROUP, VERSION, "workflows", optional=True, registry=registry)
    async def workflow_deleted(namespace: str | None, name: str, **_: Any) -> None:
        if ctx.manager is not None:
            await ctx.manager.delete("Workflow", namespace or "default", name)

    tool_servers.register(registry, ctx)
