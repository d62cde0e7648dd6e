"""ModelConfig custom resources: mirrored into the manager, their status read back from it, and
the Secret-backed keys of an agent template's models handed to its pods as variables.

The operator never reads a Secret: a pod's `env[].valueFrom.secretKeyRef` has the kubelet put
the key into the agent's environment, as `PWEZA_MODEL_KEY_<NAME>`, where the agent looks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog
from pydantic import ValidationError

from pweza.domain.kinds import validation_problem
from pweza.domain.manifests import AgentTemplate
from pweza.domain.model_configs import ModelConfig
from pweza.domain.model_keys import secret_env_name
from pweza.operator import metrics
from pweza.operator.conditions import condition, differs, merge
from pweza.operator.syncing import ManagerRejected

if TYPE_CHECKING:
    from pweza.operator.handlers import Context

log = structlog.get_logger(__name__)
API = "pweza.ai/v1"
_MIRRORED_STATUS = ("reachable", "models", "lastError", "checkedAt")


def _clean(body: Any) -> dict[str, Any]:
    data = dict(body)
    return {key: data[key] for key in ("apiVersion", "kind", "metadata", "spec") if key in data}


async def models_of(ctx: Context, template: AgentTemplate, namespace: str) -> list[dict[str, Any]]:
    """The ModelConfig resources an agent template uses, its modelRef's first, then its fallbacks."""
    ref = template.spec.runtime.model_ref
    if template.spec.runtime.kind != "agent" or ref is None:
        return []
    primary = await ctx.kube.get(API, "ModelConfig", ref, namespace)
    if primary is None:
        return []
    found = [primary]
    for name in (primary.get("spec") or {}).get("fallbacks") or []:
        fallback = await ctx.kube.get(API, "ModelConfig", name, namespace)
        if fallback is not None:
            found.append(fallback)
    return found


def key_variables(models: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pod env entries giving each Secret-backed key to the agent under the name it reads."""
    entries = []
    for body in models:
        reference = ((body.get("spec") or {}).get("apiKey") or {}).get("secretKeyRef")
        if reference:
            name = secret_env_name(body["metadata"]["name"])
            source = {"name": reference["name"], "key": reference["key"]}
            entries.append({"name": name, "valueFrom": {"secretKeyRef": source}})
    return entries


async def sync_models(ctx: Context, models: list[dict[str, Any]]) -> None:
    """Put a template's ModelConfigs into the manager before the template, so its agents' welcome has them."""
    if ctx.manager is not None:
        for body in models:
            await ctx.manager.put(body)


async def reconcile_model_config(ctx: Context, namespace: str, name: str) -> None:
    body = await ctx.kube.get(API, "ModelConfig", name, namespace)
    if body is None or body["metadata"].get("deletionTimestamp"):
        return
    generation = body["metadata"].get("generation")
    status = body.get("status") or {}
    new_status: dict[str, Any] = {"observedGeneration": generation}
    try:
        ModelConfig.model_validate(_clean(body))
    except ValidationError as error:
        ready = condition("Ready", False, "InvalidSpec", validation_problem(error).detail, generation)
    else:
        ready = condition("Ready", True, "Accepted", "", generation)
        if ctx.manager is not None:
            try:
                await ctx.manager.put(body)
                seen = await ctx.manager.get("ModelConfig", namespace, name)
                new_status.update({k: v for k, v in (seen.get("status") or {}).items() if k in _MIRRORED_STATUS})
                ready = condition("Ready", True, "Registered", "registered with the manager", generation)
            except ManagerRejected as error:
                ready = condition("Ready", False, "ManagerRejected", str(error), generation)
            except Exception as error:  # noqa: BLE001 - the manager may be down; the resync tries again
                ready = condition("Ready", False, "ManagerUnreachable", str(error), generation)
    new_status["conditions"] = merge(status.get("conditions"), [ready])
    if differs(status, new_status):
        await ctx.kube.patch_status(API, "ModelConfig", name, namespace, new_status)
    metrics.reconciles.labels(kind="ModelConfig", result="ok" if ready["status"] == "True" else "error").inc()
