"""The Manager: the one door of the service. The transports (REST, the agent channel) call its
commands, which audit what they change, and read through `manager.queries`; they never reach
the store, the dispatcher, the registry or the workflow engine themselves."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pweza.domain.errors import Conflict, NotFound
from pweza.domain.manifests import Manifest
from pweza.domain.records import AuditEntry, StoredObject, TokenRecord
from pweza.domain.roles import Role
from pweza.domain.runs import Run
from pweza.domain.tasks import CallEntry, Task
from pweza.manager.auth import Principal, TokenService
from pweza.manager.clock import SYSTEM_CLOCK, Clock
from pweza.manager.config import Settings
from pweza.manager.delegation import Delegations
from pweza.manager.dispatching import Dispatcher
from pweza.manager.housekeeping import Housekeeping
from pweza.manager.intake import resolve_task
from pweza.manager.journal import CallJournal
from pweza.manager.live_replies import LiveReplies
from pweza.manager.metrics import Metrics
from pweza.manager.model_refs import with_models
from pweza.manager.model_slots import ModelSlots
from pweza.manager.queries import Queries
from pweza.manager.registry import PoolPolicy, Registry
from pweza.manager.replicas import replicas_for
from pweza.manager.sessions import AgentEvents, TaskRequest
from pweza.manager.tool_approvals import ToolApprovals
from pweza.manager.tool_catalog import ToolCatalog
from pweza.manager.workflows import WorkflowEngine
from pweza.store.protocol import Store


class Manager:
    def __init__(
        self, store: Store, settings: Settings, metrics: Metrics | None = None, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self.store = store
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.registry = Registry(store)
        self.tokens = TokenService(store)
        # One manager alone, or one of several replicas sharing the database: the store says which.
        self.replicas = replicas_for(store, settings)
        self.replica = self.replicas.name
        self.dispatcher = Dispatcher(store, settings, self.metrics, self.replicas, clock)
        self.workflows = WorkflowEngine(
            store,
            self.dispatcher,
            self.registry,
            self.metrics,
            self.replicas.run_ownership(),
            payload_limit=settings.max_payload_bytes,
            clock=clock,
        )
        self.delegations = Delegations(store, self.dispatcher, self.registry, payload_limit=settings.max_payload_bytes)
        self.journal = CallJournal(
            store, self.dispatcher, self.registry, self.metrics, clock, settings.budgets.namespaces
        )
        self.live_replies = LiveReplies(self.dispatcher, self.replicas)
        self.tool_approvals = ToolApprovals(store, self.dispatcher, self.journal, clock)
        self.model_slots = ModelSlots(store, self.registry, self.metrics, clock)
        self.housekeeping = Housekeeping(
            store, settings, self.metrics, self.dispatcher, self.workflows, self.replicas, clock
        )
        self.tool_catalog = ToolCatalog(self.registry, enabled=settings.tool_discovery)
        self.queries = Queries(
            store, self.dispatcher, self.workflows, self.registry, self.tokens, self.housekeeping, self.tool_catalog
        )
        self.queries.model_status.enabled = settings.model_status_probes
        self.queries.budgets = self.journal.budgets
        self.queries.live_replies = self.live_replies
        self.started_at = time.time()

    async def start(self) -> None:
        await self.store.open()
        await self.dispatcher.start()
        await self.workflows.start()
        await self.housekeeping.start()
        await self.tool_catalog.start()

    async def stop(self) -> None:
        await self.live_replies.stop()
        await self.tool_catalog.stop()
        await self.housekeeping.stop()
        await self.workflows.stop()
        await self.dispatcher.stop()
        await self.store.close()

    async def ready(self) -> bool:
        return await self.store.check_ready()

    async def audit(self, who: Principal, action: str, target: str, **detail: Any) -> None:
        entry = AuditEntry(time.time(), f"{who.name}({who.token_id})", action, target, detail)
        await self.store.append_audit(entry)

    async def submit_tasks(self, who: Principal, requests: Sequence[TaskRequest], *, audit: bool = True) -> list[Task]:
        """Validate pools and sizes, resolve the template's defaults, store durably, dispatch."""
        resolved = [
            await resolve_task(
                self.registry,
                self.dispatcher,
                request,
                payload_limit=self.settings.max_payload_bytes,
                field=f"tasks[{index}]" if len(requests) > 1 else "tasks",
            )
            for index, request in enumerate(requests)
        ]
        tasks = await self.dispatcher.submit(resolved)
        self.metrics.coordination.inc(len(tasks))
        if audit:
            target = tasks[0].id if len(tasks) == 1 else f"{len(tasks)} tasks"
            await self.audit(who, "task.submit", target, pools=sorted({t.pool for t in tasks}))
        return tasks

    async def cancel_task(self, who: Principal, task_id: str) -> Task:
        task = await self.dispatcher.cancel(task_id)
        self.metrics.coordination.inc()
        await self.audit(who, "task.cancel", task_id)
        return task

    async def list_agents(self, pool: str | None = None) -> list[dict[str, Any]]:
        """Every connected agent: this replica's as they are now, the other replicas' as those
        last published them (within a heartbeat); each says which replica it is connected to."""
        agents = [session.describe() | {"replica": self.replica} for session in self.dispatcher.sessions()]
        agents += [described | {"replica": replica} for replica, described in await self.replicas.agents_elsewhere()]
        return sorted((a for a in agents if pool is None or a["pool"] == pool), key=lambda a: str(a["id"]))

    async def drain_agent(self, agent_id: str, grace_seconds: float) -> tuple[dict[str, Any], bool]:
        """Drain an agent wherever it is connected; the agent, and whether the drain was only
        forwarded to the replica it is connected to (it happens there within moments)."""
        try:
            return self.dispatcher.drain(agent_id, grace_seconds).describe() | {"replica": self.replica}, False
        except NotFound:
            pass  # connected elsewhere, if anywhere
        replica, described = await self.replicas.drain_elsewhere(agent_id, grace_seconds)
        return described | {"state": "draining", "replica": replica}, True

    async def create_token(
        self,
        who: Principal | None,
        name: str,
        role: Role,
        *,
        pool: str | None = None,
        any_pool: bool = False,
        ttl_seconds: float | None = None,
    ) -> tuple[TokenRecord, str]:
        """A new token and its secret (see `TokenService.create` for `pool` and `any_pool`)."""
        record, secret = await self.tokens.create(name, role, pool=pool, any_pool=any_pool, ttl_seconds=ttl_seconds)
        if who is not None:
            detail: dict[str, Any] = {"name": name, "role": role.value, "expiresAt": record.expires_at}
            if role is Role.AGENT:
                detail["pool"] = record.pool or "*"
            await self.audit(who, "token.create", record.id, **detail)
        return record, secret

    async def authenticate(self, token: str | None) -> Principal:
        return await self.tokens.authenticate(token)

    async def revoke_token(self, who: Principal, token_id: str) -> None:
        await self.tokens.revoke(token_id)
        await self.audit(who, "token.revoke", token_id)

    # -- objects ---------------------------------------------------------------
    async def create_object(self, who: Principal, manifest: Manifest) -> tuple[StoredObject, list[str]]:
        """Store a new object (Conflict if it exists); the stored object and warnings about it."""
        kind, key = manifest.kind_name, "/".join(manifest.key)
        if await self.registry.find(kind, *manifest.key) is not None:
            raise Conflict(f"{kind} {key} already exists; use PUT to replace it")
        stored, warnings = await self.registry.apply(manifest)
        await self.audit(who, f"{kind.lower()}.create", key)
        return stored, warnings

    async def apply_object(self, who: Principal, manifest: Manifest) -> Applied:
        """Create or replace an object; audited only when that changed it."""
        kind = manifest.kind_name
        existed = await self.registry.find(kind, *manifest.key)
        stored, warnings = await self.registry.apply(manifest)
        changed = existed is None or existed.generation != stored.generation
        if changed:
            await self.audit(who, f"{kind.lower()}.apply", "/".join(manifest.key), generation=stored.generation)
        return Applied(stored, warnings, created=existed is None, changed=changed)

    async def delete_object(self, who: Principal, kind: str, namespace: str, name: str) -> None:
        await self.registry.delete(kind, namespace, name)
        await self.audit(who, f"{kind.lower()}.delete", f"{namespace}/{name}")

    # -- runs ------------------------------------------------------------------
    async def start_run(self, who: Principal, namespace: str, workflow: str, inputs: dict[str, Any]) -> Run:
        run = await self.workflows.start_run(namespace, workflow, inputs)
        self.metrics.coordination.inc()
        await self.audit(who, "run.start", run.id, workflow=f"{namespace}/{workflow}")
        return run

    async def cancel_run(self, who: Principal, run_id: str) -> None:
        await self.workflows.cancel(run_id)
        await self.audit(who, "run.cancel", run_id)

    async def retry_run(self, who: Principal, run_id: str, step: str | None) -> None:
        await self.workflows.retry(run_id, step)
        await self.audit(who, "run.retry", run_id, step=step)

    async def decide_step(self, who: Principal, run_id: str, step: str, *, approve: bool, comment: str) -> None:
        """Approve or reject a step waiting for approval."""
        await self.workflows.decide(run_id, step, approve, who.name, comment)
        action = "run.approve" if approve else "run.reject"
        await self.audit(who, action, f"{run_id}/{step}", comment=comment)

    async def decide_tool_call(
        self, who: Principal, task_id: str, key: str, *, approve: bool, comment: str
    ) -> CallEntry:
        """Approve or reject a tool call an agent waits on (requireApproval)."""
        decided = await self.tool_approvals.decide(task_id, key, approve=approve, by=who.name, comment=comment)
        action = "task.approve_tool" if approve else "task.reject_tool"
        await self.audit(who, action, f"{task_id}/{key}", comment=comment)
        return decided

    # -- the agent channel -----------------------------------------------------
    @property
    def agent_events(self) -> AgentEvents:
        """Where an agent's stream reports: connects, results, starts, heartbeats, credits."""
        return self.dispatcher

    async def agent_pool(self, namespace: str, pool: str) -> tuple[PoolPolicy, dict[str, Any]]:
        """The policy of the pool an agent serves and its template's spec, for the agent's welcome."""
        policy = await self.registry.pool_policy(namespace, pool)
        template = await self.registry.get("AgentTemplate", namespace, policy.template_name)
        # Tasks stored before they carried their policy fall back on the pool's (see Dispatcher._policy).
        self.dispatcher.remember_retry_policy((namespace, pool), policy.template.retry)
        spec: dict[str, Any] = await with_models(self.registry, namespace, template.body["spec"])
        return policy, await self._with_tool_servers(namespace, spec)

    async def _with_tool_servers(self, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
        """The template's spec with the ToolServers its tools block names (name -> spec), which the
        agent connects to itself; one that does not exist is left out (the agent's attempt says so)."""
        names = [ref["toolServer"] for ref in (spec.get("tools") or {}).get("servers") or []]
        servers = {}
        for name in names:
            found = await self.registry.find("ToolServer", namespace, name)
            if found is not None:
                servers[name] = found.body["spec"]
        return {**spec, "toolServers": servers} if names else spec

    async def delegate(self, agent_id: str, request_id: str, parent_id: str, pool: str, payload: Any, key: str) -> None:
        """A handler's request for a child task on `pool`; the agent is answered when the child is done."""
        await self.delegations.request(agent_id, request_id, parent_id, pool, payload, key)


@dataclass(frozen=True, slots=True)
class Applied:
    stored: StoredObject
    warnings: list[str]
    created: bool
    changed: bool
