"""An `agent` template's modelRef, resolved for the agent's welcome.

Agents cannot read the store, so the manager sends the ModelConfigs a template uses along with
it: the one named by modelRef, then its fallbacks in their order. Keys are not among them (a
ModelConfig only says where its key is).
"""

from __future__ import annotations

from typing import Any

from pweza.domain.durations import parse_duration
from pweza.manager.registry import Registry

DEFAULT_TIMEOUT = "60s"


async def with_models(registry: Registry, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    """The template spec, with `runtime.models` and `runtime.missingModels` added for an agent runtime."""
    runtime = spec.get("runtime") or {}
    ref = runtime.get("modelRef")
    if runtime.get("kind") != "agent" or not isinstance(ref, str):
        return spec
    models: list[dict[str, Any]] = []
    missing: list[str] = []
    primary = await registry.find("ModelConfig", namespace, ref)
    names = [ref]
    if primary is not None:
        names += list(primary.body["spec"].get("fallbacks") or [])
    for name in names:
        stored = primary if name == ref else await registry.find("ModelConfig", namespace, name)
        if stored is None:
            missing.append(name)
        else:
            # The agent reads no durations (that would load pydantic): it gets the timeout in seconds.
            timeout = parse_duration(stored.body["spec"].get("timeout") or DEFAULT_TIMEOUT)
            models.append({"name": name, "spec": stored.body["spec"], "timeoutSeconds": timeout})
    return {**spec, "runtime": {**runtime, "models": models, "missingModels": missing}}
