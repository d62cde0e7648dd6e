"""Row <-> record conversions shared by the SQL backends."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from pweza.domain.records import AuditEntry, StoredObject, TokenRecord
from pweza.domain.roles import Role
from pweza.domain.runs import Run, RunEvent, RunState, StepRun, StepState
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
        "owner": task.owner,
        "retry": None if task.retry is None else dumps(task.retry),
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
        owner=row["owner"],
        retry=loads(row["retry"]),
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
        pool=row["pool"],
        expires_at=row["expires_at"],
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


def run_row(run: Run) -> dict[str, Any]:
    return {
        "id": run.id,
        "seq": run.seq,
        "namespace": run.namespace,
        "workflow": run.workflow,
        "generation": run.generation,
        "spec": dumps(run.spec),
        "inputs": dumps(run.inputs),
        "state": run.state.value,
        "outputs": None if run.outputs is None else dumps(run.outputs),
        "error": run.error,
        "created_at": run.created_at,
        "finished_at": run.finished_at,
        "deadline": run.deadline,
        "retries": run.retries,
        "owner": run.owner,
    }


def run_from_row(row: Mapping[str, Any]) -> Run:
    return Run(
        id=row["id"],
        seq=row["seq"],
        namespace=row["namespace"],
        workflow=row["workflow"],
        generation=row["generation"],
        spec=orjson.loads(row["spec"]),
        inputs=orjson.loads(row["inputs"]),
        state=RunState(row["state"]),
        outputs=loads(row["outputs"]),
        error=row["error"],
        created_at=row["created_at"],
        finished_at=row["finished_at"],
        deadline=row["deadline"],
        retries=row["retries"],
        owner=row["owner"],
    )


def step_row(step: StepRun) -> dict[str, Any]:
    return {
        "run_id": step.run_id,
        "name": step.name,
        "state": step.state.value,
        "retries": step.retries,
        "attempts": step.attempts,
        "started_at": step.started_at,
        "finished_at": step.finished_at,
        "output": None if step.output is None else dumps(step.output),
        "error": None if step.error is None else dumps(step.error),
        "items": step.items,
        "approval": None if step.approval is None else dumps(step.approval),
    }


def step_from_row(row: Mapping[str, Any]) -> StepRun:
    return StepRun(
        run_id=row["run_id"],
        name=row["name"],
        state=StepState(row["state"]),
        retries=row["retries"],
        attempts=row["attempts"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        output=loads(row["output"]),
        error=loads(row["error"]),
        items=row["items"],
        approval=loads(row["approval"]),
    )


def event_row(event: RunEvent) -> dict[str, Any]:
    return {
        "run_id": event.run_id,
        "at": event.at,
        "type": event.type,
        "step": event.step,
        "data": dumps(event.data),
    }


def event_from_row(row: Mapping[str, Any]) -> RunEvent:
    return RunEvent(
        id=row["id"],
        run_id=row["run_id"],
        at=row["at"],
        type=row["type"],
        step=row["step"],
        data=orjson.loads(row["data"]),
    )
