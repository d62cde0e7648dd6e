"""Request and response bodies of the REST API (the manifests have their own models)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from pweza.domain.durations import DEFAULT_TOKEN_TTL, Duration, parse_duration, parse_ttl
from pweza.domain.manifests import Name
from pweza.domain.pricing import Spent, units
from pweza.domain.records import TokenRecord
from pweza.domain.roles import Role
from pweza.domain.tasks import APPROVAL_KIND, Attempt, CallEntry, Task
from pweza.manager.sessions import TaskRequest

# Keys and ids that are compared with stored integers: the store's integers are 64-bit signed,
# so a larger number in a query is refused (422) instead of failing in the database (500).
MAX_STORED_INT = 2**63 - 1
Continue = Annotated[
    int | None, Query(alias="continue", ge=0, le=MAX_STORED_INT, description="the `continue` of the previous page")
]


class Body(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class TaskSubmission(Body):
    pool: Name
    namespace: Name = "default"
    input: Any = None
    priority: int = Field(default=0, ge=-1000, le=1000)
    timeout: Duration | None = None
    max_retries: int | None = Field(default=None, ge=0, le=100)
    labels: dict[str, str] = Field(default_factory=dict)

    def to_request(self) -> TaskRequest:
        return TaskRequest(
            namespace=self.namespace,
            pool=self.pool,
            input=self.input,
            priority=self.priority,
            timeout_seconds=None if self.timeout is None else parse_duration(self.timeout),
            max_retries=self.max_retries,
            labels=self.labels,
        )


class TaskBatch(Body):
    tasks: list[TaskSubmission] = Field(min_length=1, max_length=10_000)


class TokenCreation(Body):
    name: str = Field(min_length=1, max_length=128)
    role: Role
    # Agent tokens: the pool they serve ("NS/POOL", or "POOL" with `namespace`), or `anyPool`.
    pool: str | None = Field(default=None, max_length=127)
    namespace: Name | None = None
    any_pool: bool = False
    # "30d", "12h", ... or "never" (only when asked for).
    ttl: str = DEFAULT_TOKEN_TTL

    @field_validator("ttl")
    @classmethod
    def _check_ttl(cls, value: str) -> str:
        parse_ttl(value)
        return value

    def ttl_seconds(self) -> float | None:
        return parse_ttl(self.ttl)


def token_json(record: TokenRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "name": record.name,
        "role": record.role.value,
        "pool": record.pool if record.role is Role.AGENT else None,
        "anyPool": record.role is Role.AGENT and record.pool is None,
        "createdAt": record.created_at,
        "expiresAt": record.expires_at,
        "revokedAt": record.revoked_at,
    }


class Decision(Body):
    """An approval's or a rejection's body (of a step, of a tool call)."""

    comment: str = Field(default="", max_length=2000)


def page(items: list[Any], next_key: str | int | None) -> dict[str, Any]:
    return {"items": items, "continue": None if next_key is None else str(next_key)}


def call_json(entry: CallEntry, *, with_response: bool) -> dict[str, Any]:
    """A journal entry as the API shows it: what was called, how long, its tokens (and its answer)."""
    record = entry.record
    response = record.get("response") or {}
    body: dict[str, Any] = {
        "attempt": entry.attempt,
        "index": entry.position,
        "kind": entry.kind,
        "replayed": bool(record.get("replayed", False)),
        "seconds": record.get("seconds", 0.0),
        "recordedAt": entry.recorded_at,
    }
    if entry.kind == "tool":
        body["tool"] = response.get("name")
        body["isError"] = bool(response.get("isError", False))
    else:
        body["model"] = response.get("model")
        body["endpoint"] = response.get("endpoint")
        body["usage"] = record.get("usage")
        if entry.cost_micros is not None:
            body["cost"], body["currency"] = units(entry.cost_micros), entry.currency
    if with_response:
        body["response"] = response
    return body


def approval_json(entry: CallEntry) -> dict[str, Any]:
    """A tool call's approval as the API shows it."""
    record = entry.record
    return {
        "key": record.get("key"),
        "tool": record.get("tool"),
        "arguments": record.get("arguments"),
        "attempt": record.get("attempt"),
        "state": record.get("state"),
        "requestedAt": record.get("requestedAt"),
        "decidedBy": record.get("by"),
        "comment": record.get("comment"),
        "decidedAt": record.get("decidedAt"),
    }


def journal_json(calls: list[CallEntry], *, with_response: bool) -> dict[str, Any]:
    """A task's journal as the API shows it: its model and tool calls, what they paid for, and its
    tool calls that waited (or wait) for approval."""
    approvals = [entry for entry in calls if entry.kind == APPROVAL_KIND]
    made = [entry for entry in calls if entry.kind != APPROVAL_KIND]
    return {
        "journal": [call_json(entry, with_response=with_response) for entry in made],
        "usage": usage_json(made),
        "toolApprovals": [approval_json(entry) for entry in sorted(approvals, key=lambda entry: entry.position)],
    }


def usage_json(calls: list[CallEntry]) -> dict[str, Any]:
    """What the calls paid for (replayed calls were paid by an earlier attempt): tokens, and the
    cost when every paid call had a price, in one currency (else no cost: absent, not 0)."""
    paid = [entry for entry in calls if entry.kind == "model" and not entry.record.get("replayed", False)]
    usages = [entry.record.get("usage") or {} for entry in paid]
    body: dict[str, Any] = {
        "modelCalls": len(paid),
        "promptTokens": sum(usage.get("promptTokens", 0) for usage in usages),
        "completionTokens": sum(usage.get("completionTokens", 0) for usage in usages),
    }
    currencies = {entry.currency for entry in paid}
    if paid and len(currencies) == 1 and None not in currencies:
        body["cost"] = units(sum(entry.cost_micros or 0 for entry in paid))
        body["currency"] = paid[0].currency
    return body


def spent_json(spent: Spent, budget: dict[str, Any]) -> dict[str, Any]:
    """A budget scope's usage beside its limits: tokens, and the cost in the budget's currency (else
    in the one its calls were priced in; absent when there is none)."""
    currency = budget.get("currency", "USD") if budget.get("cost") is not None else spent.currency
    body: dict[str, Any] = {"tokens": spent.tokens, "budgetTokens": budget.get("tokens")}
    if currency is not None:
        body |= {"cost": units(spent.cost(currency)), "currency": currency}
    if budget.get("cost") is not None:
        body["budgetCost"] = budget["cost"]
    return body


def task_json(
    task: Task, attempts: list[Attempt] | None = None, calls: list[CallEntry] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": task.id,
        "namespace": task.namespace,
        "pool": task.pool,
        "state": task.state.value,
        "priority": task.priority,
        "attempts": task.attempts,
        "input": task.input,
        "output": task.output,
        "error": None if task.error is None else task.error.to_dict(),
        "createdAt": task.created_at,
        "startedAt": task.started_at,
        "finishedAt": task.finished_at,
        "agentId": task.agent_id,
        "parentId": task.parent_id,
        "labels": task.labels,
        "timeoutSeconds": task.timeout_seconds,
        "cancelRequested": task.cancel_requested,
    }
    if attempts is not None:
        body["attemptHistory"] = [
            {
                "number": attempt.number,
                "agentId": attempt.agent_id,
                "state": attempt.state.value,
                "startedAt": attempt.started_at,
                "finishedAt": attempt.finished_at,
                "idempotencyKey": attempt.idempotency_key,
                "error": None if attempt.error is None else attempt.error.to_dict(),
            }
            for attempt in attempts
        ]
    if calls is not None:
        body |= journal_json(calls, with_response=True)
    return body
