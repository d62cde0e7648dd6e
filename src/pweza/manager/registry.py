"""Templates, pools (and later workflows): validated manifests kept in the store."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pweza.domain.durations import parse_duration
from pweza.domain.errors import Conflict, InvalidInput, NotFound
from pweza.domain.kinds import KINDS
from pweza.domain.manifests import AgentPool, AgentTemplate, AgentTemplateSpec, Manifest, PoolBudget
from pweza.domain.model_configs import ModelConfig
from pweza.domain.records import StoredObject
from pweza.domain.workflows import Workflow
from pweza.store.protocol import Store

ChangeListener = Callable[[str, str, str], None]
# A pool's policy is trusted this long. A change made here clears it at once; one made through
# another replica sharing the database is seen here within this bound.
POLICY_CACHE_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class PoolPolicy:
    """What the dispatcher needs to know of a pool: its template's execution rules."""

    namespace: str
    pool: str
    template_name: str
    template: AgentTemplateSpec
    budget: PoolBudget | None = None

    @property
    def timeout_seconds(self) -> float:
        return parse_duration(self.template.timeout)


def manifest_body(manifest: Manifest) -> dict[str, Any]:
    body = manifest.model_dump(by_alias=True, exclude_none=True, mode="json")
    body.get("metadata", {}).pop("generation", None)
    body.pop("status", None)
    return body


def with_server_fields(stored: StoredObject) -> dict[str, Any]:
    body = dict(stored.body)
    body["metadata"] = {**body["metadata"], "generation": stored.generation}
    return body


class Registry:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._policies: dict[tuple[str, str], tuple[float, PoolPolicy]] = {}
        self._listeners: list[ChangeListener] = []

    def on_change(self, listener: ChangeListener) -> None:
        self._listeners.append(listener)

    def _changed(self, kind: str, namespace: str, name: str) -> None:
        self._policies.clear()
        for listener in self._listeners:
            listener(kind, namespace, name)

    async def apply(self, manifest: Manifest) -> tuple[StoredObject, list[str]]:
        """Store the object; returns it with warnings (e.g. a pool whose template is missing)."""
        warnings: list[str] = []
        if isinstance(manifest, AgentPool):
            ref = manifest.spec.template_ref
            if await self._store.get_object("AgentTemplate", manifest.metadata.namespace, ref) is None:
                warnings.append(
                    f"spec.templateRef: AgentTemplate {ref!r} does not exist yet in namespace "
                    f"{manifest.metadata.namespace!r}; tasks for this pool wait until it does"
                )
        if isinstance(manifest, Workflow):
            warnings.extend(await self._workflow_warnings(manifest))
        if isinstance(manifest, AgentTemplate) and manifest.spec.tools is not None:
            warnings.extend(await self._tools_warnings(manifest))
        warnings.extend(await self._model_warnings(manifest))
        kind = manifest.kind_name
        stored = await self._store.put_object(
            kind, manifest.metadata.namespace, manifest.metadata.name, manifest_body(manifest)
        )
        self._changed(kind, manifest.metadata.namespace, manifest.metadata.name)
        return stored, warnings

    async def _model_warnings(self, manifest: Manifest) -> list[str]:
        """ModelConfigs a template or a ModelConfig names that do not exist yet."""
        namespace = manifest.metadata.namespace
        named: list[tuple[str, str, str]] = []  # (field, name, what then)
        if isinstance(manifest, AgentTemplate) and manifest.spec.runtime.model_ref is not None:
            then = "its agents cannot serve until it does"
            named.append(("spec.runtime.modelRef", manifest.spec.runtime.model_ref, then))
        if isinstance(manifest, ModelConfig):
            then = "it is skipped as a fallback until it does"
            named += [(f"spec.fallbacks[{i}]", name, then) for i, name in enumerate(manifest.spec.fallbacks)]
        warnings = []
        for field, name, then in named:
            if await self._store.get_object("ModelConfig", namespace, name) is None:
                warnings.append(f"{field}: ModelConfig {name!r} does not exist yet in namespace {namespace!r}; {then}")
        return warnings

    async def _workflow_warnings(self, workflow: Workflow) -> list[str]:
        """Pools and templates a workflow names that do not exist yet: fine now, an error at run time."""
        namespace = workflow.metadata.namespace
        pools = {p.name: p.body for p in await self._store.list_objects("AgentPool", namespace, 10_000)}
        templates = {p["spec"]["templateRef"] for p in pools.values()}
        warnings = []
        for index, step in enumerate(workflow.spec.steps):
            agent = step.agent
            if agent is None:
                continue
            if agent.pool is not None and agent.pool not in pools:
                warnings.append(f"spec.steps[{index}].agent.pool: AgentPool {agent.pool!r} does not exist yet")
            if agent.template is not None and agent.template not in templates:
                warnings.append(
                    f"spec.steps[{index}].agent.template: no AgentPool uses template {agent.template!r} yet"
                )
        return warnings

    async def _tools_warnings(self, template: AgentTemplate) -> list[str]:
        """ToolServers and pools a template's tools block names that do not exist yet."""
        assert template.spec.tools is not None
        namespace, warnings = template.metadata.namespace, []
        for index, ref in enumerate(template.spec.tools.servers):
            if await self._store.get_object("ToolServer", namespace, ref.tool_server) is None:
                warnings.append(
                    f"spec.tools.servers[{index}].toolServer: ToolServer {ref.tool_server!r} does not exist yet; "
                    "attempts fail until it does"
                )
        for index, agent in enumerate(template.spec.tools.agents):
            if await self._store.get_object("AgentPool", namespace, agent.pool) is None:
                warnings.append(f"spec.tools.agents[{index}].pool: AgentPool {agent.pool!r} does not exist yet")
        return warnings

    async def get(self, kind: str, namespace: str, name: str) -> StoredObject:
        stored = await self._store.get_object(kind, namespace, name)
        if stored is None:
            raise NotFound(f"{kind} {namespace}/{name} not found")
        return stored

    async def find(self, kind: str, namespace: str, name: str) -> StoredObject | None:
        return await self._store.get_object(kind, namespace, name)

    async def list(self, kind: str, namespace: str | None, limit: int, after: str | None = None) -> list[StoredObject]:
        return await self._store.list_objects(kind, namespace, limit, after)

    async def delete(self, kind: str, namespace: str, name: str) -> None:
        if kind == "AgentTemplate":
            users = [
                pool.name
                for pool in await self._store.list_objects("AgentPool", namespace, 10_000)
                if pool.body["spec"]["templateRef"] == name
            ]
            if users:
                raise Conflict(
                    f"AgentTemplate {namespace}/{name} is used by pools {', '.join(users)}; "
                    "delete or re-point them first"
                )
        if not await self._store.delete_object(kind, namespace, name):
            raise NotFound(f"{kind} {namespace}/{name} not found")
        self._changed(kind, namespace, name)

    async def pool_policy(self, namespace: str, pool: str) -> PoolPolicy:
        key = (namespace, pool)
        now = time.monotonic()
        cached = self._policies.get(key)
        if cached is not None and now - cached[0] < POLICY_CACHE_SECONDS:
            return cached[1]
        stored_pool = await self._store.get_object("AgentPool", namespace, pool)
        if stored_pool is None:
            raise NotFound(f"AgentPool {namespace}/{pool} not found", field="pool")
        pool_model = AgentPool.model_validate(stored_pool.body)
        ref = pool_model.spec.template_ref
        stored_template = await self._store.get_object("AgentTemplate", namespace, ref)
        if stored_template is None:
            raise InvalidInput(
                f"AgentPool {namespace}/{pool} refers to AgentTemplate {ref!r}, which does not exist",
                field="pool",
            )
        template = AgentTemplate.model_validate(stored_template.body)
        policy = PoolPolicy(namespace, pool, ref, template.spec, pool_model.spec.budget)
        self._policies[key] = (now, policy)
        return policy


def kind_model(kind: str) -> type[Manifest]:
    return KINDS[kind]
