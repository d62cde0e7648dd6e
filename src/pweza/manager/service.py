"""The Manager: one object the transports talk to, tying the parts of the service together."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from pweza.domain.errors import InvalidInput, NotFound
from pweza.domain.records import AuditEntry, TaskFilter, TokenRecord
from pweza.domain.roles import Role
from pweza.domain.tasks import Task
from pweza.manager.auth import Principal, TokenService
from pweza.manager.config import Settings
from pweza.manager.delegation import Delegations
from pweza.manager.dispatching import Dispatcher
from pweza.manager.housekeeping import Housekeeping
from pweza.manager.metrics import Metrics
from pweza.manager.payloads import check_payload
from pweza.manager.registry import Registry
from pweza.manager.replicas import replicas_for
from pweza.manager.sessions import TaskRequest
from pweza.manager.workflows import WorkflowEngine
from pweza.store.protocol import Store


class Manager:
    def __init__(self, store: Store, settings: Settings, metrics: Metrics | None = None) -> None:
        self.store = store
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.registry = Registry(store)
        self.tokens = TokenService(store)
        # One manager alone, or one of several replicas sharing the database: the store says which.
        self.replicas = replicas_for(store, settings)
        self.replica = self.replicas.name
        self.dispatcher = Dispatcher(store, settings, self.metrics, self.replicas)
        self.workflows = WorkflowEngine(
            store,
            self.dispatcher,
            self.registry,
            self.metrics,
            self.replicas.run_ownership(),
            payload_limit=settings.max_payload_bytes,
        )
        self.delegations = Delegations(store, self.dispatcher, self.registry)
        self.housekeeping = Housekeeping(store, settings, self.metrics, self.dispatcher, self.workflows, self.replicas)
        self.started_at = time.time()

    async def start(self) -> None:
        await self.store.open()
        await self.dispatcher.start()
        await self.workflows.start()
        await self.housekeeping.start()

    async def stop(self) -> None:
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
        resolved: list[TaskRequest] = []
        for index, request in enumerate(requests):
            where = f"[{index}]" if len(requests) > 1 else ""
            check_payload(request.input, f"tasks{where}.input", self.settings.max_payload_bytes)
            try:
                policy = await self.registry.pool_policy(request.namespace, request.pool)
            except InvalidInput as error:
                raise InvalidInput(error.detail, field=f"tasks{where}.pool") from None
            self.dispatcher.remember_retry_policy((request.namespace, request.pool), policy.template.retry)
            resolved.append(
                TaskRequest(
                    namespace=request.namespace,
                    pool=request.pool,
                    input=request.input,
                    priority=request.priority,
                    timeout_seconds=request.timeout_seconds or policy.timeout_seconds,
                    max_retries=request.max_retries,
                    labels=request.labels,
                    parent_id=request.parent_id,
                    id=request.id,
                    retry=policy.template.retry.model_dump(mode="json"),
                )
            )
        tasks = await self.dispatcher.submit(resolved)
        self.metrics.coordination.inc(len(tasks))
        if audit:
            target = tasks[0].id if len(tasks) == 1 else f"{len(tasks)} tasks"
            await self.audit(who, "task.submit", target, pools=sorted({t.pool for t in tasks}))
        return tasks

    async def list_tasks(self, where: TaskFilter, limit: int, after_seq: int | None) -> list[Task]:
        stored = await self.store.list_tasks(where, limit, after_seq)
        # The store may lag the live state by one write batch; the dispatcher's copy is newer.
        return [self.dispatcher.live(task.id) or task for task in stored]

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
