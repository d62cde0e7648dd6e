"""Tasks and their attempts: the unit of work an agent executes."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # Only named in an annotation: the agent imports this module, and must not load pydantic
    # (pweza.domain.manifests) for it (tests/integration/test_handler_code.py).
    from pweza.domain.manifests import RetryPolicy

# The longest task id the store keeps (its id columns are this wide). Ids the manager makes
# itself (a delegated child's is its parent's plus the key) stay within it.
MAX_TASK_ID_CHARS = 128


class TaskState(enum.StrEnum):
    PENDING = "pending"
    ASSIGNED = "assigned"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset({TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED, TaskState.TIMED_OUT})
ACTIVE_STATES = frozenset({TaskState.ASSIGNED, TaskState.RUNNING})


class ErrorType:
    """Error types the platform itself reports; handlers add their own."""

    AGENT_LOST = "AgentLost"
    TIMEOUT = "Timeout"
    CANCELLED = "Cancelled"
    HANDLER = "HandlerError"
    CONFIG = "ConfigurationError"
    # A payload the other side refused: not JSON, or above `max_payload_bytes`. Never retried:
    # the same handler would produce the same bytes again.
    INVALID_INPUT = "InvalidInput"
    INPUT_TOO_LARGE = "InputTooLarge"
    INVALID_OUTPUT = "InvalidOutput"
    OUTPUT_TOO_LARGE = "OutputTooLarge"


@dataclass(slots=True)
class TaskError:
    type: str
    message: str
    retryable: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "message": self.message, "retryable": self.retryable}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskError:
        return cls(str(data["type"]), str(data["message"]), bool(data.get("retryable", True)))


@dataclass(slots=True)
class Attempt:
    task_id: str
    number: int
    agent_id: str
    started_at: float
    state: TaskState = TaskState.RUNNING
    finished_at: float | None = None
    error: TaskError | None = None

    @property
    def idempotency_key(self) -> str:
        return f"{self.task_id}/{self.number}"


@dataclass(slots=True)
class CallEntry:
    """One model or tool call of an `agent` attempt, as its journal keeps it: the record the agent
    sent (request digest, response, usage) at its position in the attempt's conversation."""

    task_id: str
    attempt: int
    position: int
    kind: str
    record: dict[str, Any]
    recorded_at: float
    # Where the tokens count, for budgets: the task's namespace, pool and run ("" outside a run).
    namespace: str = "default"
    pool: str = ""
    run_id: str = ""
    # The tokens this call paid for: a model call's prompt and completion; 0 for tools and replays.
    tokens: int = 0
    # What those tokens cost in micro-units of `currency`, at the price of the ModelConfig that
    # answered when the call was recorded; None when it had no price (and for tools and replays).
    cost_micros: int | None = None
    currency: str | None = None


# A journal entry that is not a call: a tool call's approval, kept with the task under attempt 0
# (pweza.manager.tool_approvals).
APPROVAL_KIND = "approval"


@dataclass(slots=True)
class Task:
    id: str
    namespace: str
    pool: str
    input: Any
    priority: int = 0
    seq: int = 0
    state: TaskState = TaskState.PENDING
    attempts: int = 0
    max_retries: int | None = None
    timeout_seconds: float | None = None
    created_at: float = 0.0
    not_before: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    output: Any = None
    error: TaskError | None = None
    agent_id: str | None = None
    parent_id: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    cancel_requested: bool = False
    # The retry policy, carried so that whichever replica sees a failure decides the retry the
    # same way; None (tasks stored before it was carried): the pool's template policy.
    retry: RetryPolicy | None = None
    # The manager replica working on it (several replicas on one database), else None.
    owner: str | None = None

    @property
    def pool_key(self) -> tuple[str, str]:
        return (self.namespace, self.pool)
