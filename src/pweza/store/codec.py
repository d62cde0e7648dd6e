"""Row <-> record conversions shared by the SQL backends."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from pweza.domain.records import AuditEntry, StoredObject, TokenRecord
from pweza.domain.roles import Role
from pweza.domain.tasks import Attempt, Task, TaskError, TaskState


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def loads(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


def _error_text(error: TaskError | None) -> str | None:
    return None if error is None else dumps(error.to_dict())


def _error(text: str | None) -> TaskError | None:
    return None if text is None else TaskError.from_dict(orjson.loads(text))


def task_row(task: Task) -> dict[str, Any]:
    return {
        "id": task.id,
        "seq": task.seq,
        "namespace": task.namespace,
        "pool": task.pool,
        "state": task.state.value,
        "priority": task.priority,
        "attempts": task.attempts,
        "max_retries": task.max_retries,
        "timeout_seconds": task.timeout_seconds,
        "input": dumps(task.input),
        "output": None if task.output is None else dumps(task.output),
        "error": _error_text(task.error),
        "created_at": task.created_at,
        "not_before": task.not_before,
        "started_at": task.started_at,
        "finished_at": task.finished_at,
        "agent_id": task.agent_id,
        "parent_id": task.parent_id,
        "labels": dumps(task.labels),
        "cancel_requested": task.cancel_requested,
    }


def task_from_row(row: Mapping[str, Any]) -> Task:
    return Task(
        id=row["id"],
        seq=row["seq"],
        namespace=row["namespace"],
        pool=row["pool"],
        state=TaskState(row["state"]),
        priority=row["priority"],
        attempts=row["attempts"],
        max_retries=row["max_retries"],
        timeout_seconds=row["timeout_seconds"],
        input=loads(row["input"]),
        output=loads(row["output"]),
        error=_error(row["error"]),
        created_at=row["created_at"],
        not_before=row["not_before"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        agent_id=row["agent_id"],
        parent_id=row["parent_id"],
        labels=loads(row["labels"]) or {},
        cancel_requested=bool(row["cancel_requested"]),
    )


def attempt_row(attempt: Attempt) -> dict[str, Any]:
    return {
        "task_id": attempt.task_id,
        "number": attempt.number,
        "agent_id": attempt.agent_id,
        "state": attempt.state.value,
        "started_at": attempt.started_at,
        "finished_at": attempt.finished_at,
        "error": _error_text(attempt.error),
    }


def attempt_from_row(row: Mapping[str, Any]) -> Attempt:
    return Attempt(
        task_id=row["task_id"],
        number=row["number"],
        agent_id=row["agent_id"],
        state=TaskState(row["state"]),
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        error=_error(row["error"]),
    )


def object_from_row(row: Mapping[str, Any]) -> StoredObject:
    return StoredObject(
        kind=row["kind"],
        namespace=row["namespace"],
        name=row["name"],
        generation=row["generation"],
        body=orjson.loads(row["body"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def token_from_row(row: Mapping[str, Any]) -> TokenRecord:
    return TokenRecord(
        id=row["id"],
        name=row["name"],
        role=Role(row["role"]),
        hash=row["hash"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )


def audit_from_row(row: Mapping[str, Any]) -> AuditEntry:
    return AuditEntry(
        id=row["id"],
        at=row["at"],
        actor=row["actor"],
        action=row["action"],
        target=row["target"],
        detail=orjson.loads(row["detail"]),
    )
