"""Workflow runs and their steps: state that lives in the store, never only in memory."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from pweza.domain.errors import InvalidInput
from pweza.domain.workflows import WorkflowSpec


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
    error: dict[str, Any] | None = None
    items: int | None = None
    approval: dict[str, Any] | None = None


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
