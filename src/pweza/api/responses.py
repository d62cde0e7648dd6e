"""What the REST API answers, as models: OpenAPI documents every route's response from these.

The routes build their bodies as plain dicts (the shapes the CLI and clients rely on) and FastAPI
checks each against the route's model on the way out. A key that is absent from a body (`steps`
outside a single run, `attemptHistory` outside a single task) stays absent: routes leave out what
is unset (see `GuardedRoute`).
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from pweza.domain.roles import Role
from pweza.domain.runs import RunState, StepState
from pweza.domain.tasks import TaskState

T = TypeVar("T")


class Out(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class Page(Out, Generic[T]):
    """One page of a listing; pass `continue` back as the `continue` parameter for the next."""

    items: list[T]
    continue_: str | None = Field(alias="continue", description="None on the last page")


class Status(Out):
    status: str = Field(examples=["ok"])


# -- tasks ---------------------------------------------------------------------
class ErrorInfo(Out):
    type: str = Field(description="the error type: a handler's, or one of the platform's (Timeout, AgentLost, ...)")
    message: str
    retryable: bool


class AttemptInfo(Out):
    number: int
    agent_id: str
    state: TaskState
    started_at: float
    finished_at: float | None
    idempotency_key: str
    error: ErrorInfo | None


class ToolApprovalInfo(Out):
    """A tool call the template marks requireApproval: what it would do, and who decided."""

    key: str = Field(description="approval-{tool}-{n}: the n-th call of the tool in the conversation")
    tool: str
    arguments: dict[str, Any]
    attempt: int = Field(description="the attempt that asked first")
    state: str = Field(description="pending, approved or rejected")
    requested_at: float
    decided_by: str | None = None
    comment: str | None = None
    decided_at: float | None = None


class CallInfo(Out):
    """One model or tool call of an `agent` attempt, from the task's journal."""

    attempt: int
    index: int = Field(description="the call's place in the attempt's conversation, from 0")
    kind: str = Field(description="model or tool")
    replayed: bool = Field(description="answered from an earlier attempt's record instead of being made again")
    seconds: float
    recorded_at: float
    tool: str | None = Field(default=None, description="a tool call's tool")
    is_error: bool | None = Field(default=None, description="a tool call's answer was an error")
    model: str | None = Field(default=None, description="the model that answered a model call")
    endpoint: str | None = Field(default=None, description="the ModelConfig endpoint that answered")
    usage: dict[str, int] | None = Field(default=None, description="a model call's reported tokens")
    cost: float | None = Field(
        default=None, description="what a model call cost, at its ModelConfig's price when it was recorded"
    )
    currency: str | None = None
    response: dict[str, Any] | None = Field(default=None, description="the recorded answer, in GET /tasks/{id}")


class UsageInfo(Out):
    """The model calls a task's (or a step's) attempts paid for and their tokens, as the endpoints reported."""

    model_calls: int
    prompt_tokens: int
    completion_tokens: int
    cost: float | None = Field(
        default=None,
        description="what they cost, at the prices of the ModelConfigs that answered when each was recorded; "
        "absent when a call had no price (or the calls were priced in more than one currency)",
    )
    currency: str | None = None


class RunUsage(Out):
    tokens: int = Field(description="the model tokens the calls paid for (a run's: its delegated tasks' included)")
    cost: float | None = Field(
        default=None, description="what they cost, in `currency`; absent when no call had a price in it"
    )
    currency: str | None = Field(default=None, description="the budget's currency, else that of the calls' prices")
    budget_tokens: int | None = Field(description="the budget's tokens, if it has them")
    budget_cost: float | None = Field(default=None, description="the budget's cost, if it has one")


class NamespaceUsage(RunUsage):
    namespace: str
    period: str = Field(description="the window summed, up to now: the namespace budget's period, else 24h")


class TaskInfo(Out):
    id: str
    namespace: str
    pool: str
    state: TaskState
    priority: int
    attempts: int
    input: Any
    output: Any
    error: ErrorInfo | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    agent_id: str | None
    parent_id: str | None
    labels: dict[str, str]
    timeout_seconds: float | None
    cancel_requested: bool
    attempt_history: list[AttemptInfo] | None = Field(default=None, description="only in GET /tasks/{id}")
    journal: list[CallInfo] | None = Field(
        default=None, description="only in GET /tasks/{id}: the model and tool calls its attempts made"
    )
    usage: UsageInfo | None = Field(default=None, description="only in GET /tasks/{id}: what the journal paid for")
    tool_approvals: list[ToolApprovalInfo] | None = Field(
        default=None, description="only in GET /tasks/{id}: its tool calls that wait or waited for a person"
    )


class TaskRef(Out):
    id: str
    state: TaskState


class SubmittedBatch(Out):
    items: list[TaskRef]


class AgentInfo(Out):
    id: str
    namespace: str
    pool: str
    template: str
    capabilities: list[str]
    state: str = Field(examples=["idle", "busy", "draining", "unhealthy"])
    slots: int
    free_slots: int
    error: str | None
    running: list[str]
    hostname: str
    pid: int
    connected_at: float
    last_seen: float
    replica: str | None = Field(description="the manager replica it is connected to (None: a single manager)")


class ReplicaInfo(Out):
    id: str
    expires_in_seconds: float
    holds_duties: bool


class ReplicaPage(Page[ReplicaInfo]):
    replica: str | None = Field(description="the replica that answered (None: a single manager)")


# -- tokens and audit ------------------------------------------------------------
class TokenInfo(Out):
    id: str
    name: str
    role: Role
    pool: str | None
    any_pool: bool
    created_at: float
    expires_at: float | None
    revoked_at: float | None


class NewToken(TokenInfo):
    token: str = Field(description="the secret: shown once, never stored")


class Caller(Out):
    name: str
    role: Role
    permissions: list[str] = Field(examples=[["read", "write"]])
    expires_at: float | None


class AuditInfo(Out):
    id: int
    at: float
    actor: str
    action: str
    target: str
    detail: dict[str, Any]


# -- runs ----------------------------------------------------------------------
class ChildTask(Out):
    """A task delegated below a step's task, with those it delegated in turn."""

    task_id: str
    pool: str
    state: TaskState
    attempts: int
    output: Any
    error: ErrorInfo | None
    children: list[ChildTask]


class StepInfo(Out):
    name: str
    state: StepState
    attempts: int
    retries: int
    started_at: float | None
    finished_at: float | None
    output: Any
    error: dict[str, Any] | None
    items: int | None
    approval: dict[str, Any] | None
    task_id: str | None = Field(default=None, description="the step's task, once a one-task step has started")
    children: list[ChildTask] | None = None
    item_states: dict[str, int] | None = Field(
        default=None, description="a foreach step's item tasks counted by state (items not yet submitted are absent)"
    )
    journal: list[CallInfo] | None = Field(
        default=None, description="the model and tool calls of the step's task, when its runtime journals them"
    )
    usage: UsageInfo | None = Field(default=None, description="what the step task's journal paid for")
    tool_approvals: list[ToolApprovalInfo] | None = Field(
        default=None, description="the step task's tool calls that wait or waited for a person"
    )


class RunInfo(Out):
    id: str
    namespace: str
    workflow: str
    generation: int
    state: RunState
    inputs: dict[str, Any]
    outputs: Any
    error: str | None
    created_at: float
    finished_at: float | None
    deadline: float | None
    retries: int
    steps: list[StepInfo] | None = Field(default=None, description="in the views of one run")
    spec: dict[str, Any] | None = Field(
        default=None, description="the workflow's spec the run follows, in the views of one run"
    )
    usage: RunUsage | None = Field(default=None, description="in the views of one run: model tokens, cost and budget")


class EventInfo(Out):
    id: int | None
    at: float
    type: str
    step: str | None
    data: dict[str, Any]


# -- objects -------------------------------------------------------------------
class ObjectDocument(Out):
    """A pweza.ai/v1 object as stored, with the generation and creationTimestamp the manager adds."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    api_version: str = Field(examples=["pweza.ai/v1"])
    kind: str = Field(examples=["AgentPool"])
    metadata: dict[str, Any]
    spec: dict[str, Any] | None = None


class Created(Out):
    object: ObjectDocument
    warnings: list[str] = Field(description="what may not work yet, e.g. a pool whose template is missing")


class Applied(Created):
    changed: bool = Field(description="false when the object was already exactly so")
