"""Plain records the store keeps besides tasks: objects, tokens, audit entries."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pweza.domain.roles import Role
from pweza.domain.tasks import TaskState


@dataclass(slots=True)
class StoredObject:
    kind: str
    namespace: str
    name: str
    generation: int
    body: dict[str, Any]
    created_at: float
    updated_at: float


@dataclass(slots=True)
class TokenRecord:
    id: str
    name: str
    role: Role
    hash: str
    created_at: float
    revoked_at: float | None = None
    # An agent token's pool as "namespace/pool"; None: any pool (only when asked for explicitly,
    # or an agent token made before tokens were bound to pools).
    pool: str | None = None
    # When it stops working (Unix seconds); None: never.
    expires_at: float | None = None


@dataclass(slots=True)
class AuditEntry:
    at: float
    actor: str
    action: str
    target: str
    detail: dict[str, Any] = field(default_factory=dict)
    id: int | None = None


@dataclass(frozen=True, slots=True)
class TaskFilter:
    namespace: str | None = None
    pool: str | None = None
    state: TaskState | None = None
    parent_id: str | None = None


@dataclass(frozen=True, slots=True)
class RunFilter:
    namespace: str | None = None
    workflow: str | None = None
    state: str | None = None
