"""Workflow runs and their steps: state that lives in the store, never only in memory."""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from typing import Any, Literal

from pweza.domain.durations import parse_duration
from pweza.domain.errors import InvalidInput
from pweza.domain.tasks import TaskError
from pweza.domain.workflows import Approval, WorkflowSpec


class RunState(enum.StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"

    @property
    def terminal(self) -> bool:
        return self is not RunState.RUNNING


class StepState(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    WAITING_APPROVAL = "waiting_approval"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"

    @property
    def finished(self) -> bool:
        return self in _FINISHED_STEPS


_FINISHED_STEPS = frozenset(
    {StepState.SUCCEEDED, StepState.FAILED, StepState.SKIPPED, StepState.CANCELLED, StepState.TIMED_OUT}
)


@dataclass(slots=True)
class Run:
    id: str
    seq: int
    namespace: str
    workflow: str
    generation: int
    spec: dict[str, Any]
    inputs: dict[str, Any]
    state: RunState = RunState.RUNNING
    outputs: Any = None
    error: str | None = None
    created_at: float = 0.0
    finished_at: float | None = None
    deadline: float | None = None
    retries: int = 0
    owner: str | None = None  # the manager replica driving it (several replicas on one database)


@dataclass(frozen=True, slots=True)
class StepError:
    """Why a step failed. A task's error keeps its `retryable`; the engine's own errors (a bad
    expression, a rejection) have none, and their stored form has no such key."""

    type: str
    message: str
    retryable: bool | None = None

    @classmethod
    def of_task(cls, error: TaskError) -> StepError:
        return cls(error.type, error.message, error.retryable)

    def to_dict(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.retryable is not None:
            shown["retryable"] = self.retryable
        return shown

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepError:
        retryable = data.get("retryable")
        kept = None if retryable is None else bool(retryable)
        return cls(str(data.get("type", "")), str(data.get("message", "")), kept)


Decision = Literal["approved", "rejected"]


@dataclass(frozen=True, slots=True)
class StepApproval:
    """A step's approval: what was asked and when, then (once decided) the decision.

    Not the workflow's `Approval` (what a step asks for); this is what one run of it recorded.
    The stored and API form is the camelCase mapping `to_dict` gives, unchanged from when it
    was a dict."""

    message: str
    requested_at: float
    deadline: float | None = None
    decision: Decision | None = None
    by: str = ""
    comment: str = ""
    at: float | None = None

    @classmethod
    def requested(cls, asked: Approval, now: float) -> StepApproval:
        deadline = now + parse_duration(asked.timeout) if asked.timeout else None
        return cls(asked.message, now, deadline)

    def decided(self, approve: bool, by: str, comment: str, now: float) -> StepApproval:
        decision: Decision = "approved" if approve else "rejected"
        return dataclasses.replace(self, decision=decision, by=by, comment=comment, at=now)

    def to_dict(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"message": self.message, "requestedAt": self.requested_at, "deadline": self.deadline}
        if self.decision is not None:
            shown |= {"decision": self.decision, "by": self.by, "comment": self.comment, "at": self.at}
        return shown

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepApproval:
        decision = data.get("decision")
        return cls(
            message=str(data.get("message", "")),
            requested_at=float(data.get("requestedAt") or 0.0),
            deadline=None if data.get("deadline") is None else float(data["deadline"]),
            decision=decision if decision in ("approved", "rejected") else None,
            by=str(data.get("by", "")),
            comment=str(data.get("comment", "")),
            at=None if data.get("at") is None else float(data["at"]),
        )


@dataclass(slots=True)
class StepRun:
    run_id: str
    name: str
    state: StepState = StepState.PENDING
    retries: int = 0
    attempts: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    output: Any = None
    error: StepError | None = None
    items: int | None = None
    approval: StepApproval | None = None


@dataclass(slots=True)
class RunEvent:
    run_id: str
    at: float
    type: str
    step: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    id: int | None = None


_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


def resolve_inputs(spec: WorkflowSpec, given: dict[str, Any]) -> dict[str, Any]:
    """Defaults filled in and every value type-checked; errors name `inputs.<name>`."""
    unknown = sorted(set(given) - set(spec.inputs))
    if unknown:
        allowed = ", ".join(sorted(spec.inputs)) or "none"
        raise InvalidInput(f"inputs.{unknown[0]}: unknown input (allowed: {allowed})", field=f"inputs.{unknown[0]}")
    resolved: dict[str, Any] = {}
    for name, declared in spec.inputs.items():
        if name in given:
            value = given[name]
        elif declared.default is not None:
            value = declared.default
        elif declared.is_required:
            raise InvalidInput(f"inputs.{name}: required input is missing", field=f"inputs.{name}")
        else:
            continue
        expected = _TYPES[declared.type]
        wrong_bool = isinstance(value, bool) and declared.type in ("number", "integer")
        if not isinstance(value, expected) or wrong_bool:
            raise InvalidInput(
                f"inputs.{name}: expected {declared.type}, got {type(value).__name__} {value!r}"[:300],
                field=f"inputs.{name}",
            )
        resolved[name] = value
    return resolved
