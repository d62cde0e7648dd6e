"""What the dispatcher knows of connected agents and the attempts they hold."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from pweza.domain.manifests import RetryPolicy
from pweza.domain.tasks import Attempt, TaskError


@dataclass(frozen=True, slots=True)
class AssignmentMessage:
    task_id: str
    attempt: int
    input: Any
    timeout_seconds: float
    labels: dict[str, str]

    @property
    def idempotency_key(self) -> str:
        return f"{self.task_id}/{self.attempt}"


@dataclass(frozen=True, slots=True)
class DelegatedResult:
    task_id: str
    ok: bool
    output: Any = None
    error: dict[str, Any] | None = None


class AgentLink(Protocol):
    """The way down to one agent; the gRPC layer implements it on the agent's stream."""

    def send_assignments(self, items: list[AssignmentMessage]) -> None: ...

    def send_cancel(self, task_ids: list[str], reason: str) -> None: ...

    def send_drain(self, grace_seconds: float) -> None: ...

    def send_delegate_result(self, request_id: str, task: DelegatedResult) -> None: ...

    def send_results_ack(self, attempts: list[tuple[str, int]]) -> None:
        """These results are written (or were known already): the agent may forget them."""

    def close(self) -> None:
        """End the stream (the manager gave up on it)."""


class AgentEvents(Protocol):
    """The way up from agents: what their streams tell the dispatcher, each about one session.

    Every call about an attempt is checked against the session holding its lease (see the
    dispatcher); `connect` refuses a second live stream of one agent id with Conflict."""

    def connect(self, session: AgentSession, in_flight: list[tuple[str, int]]) -> None: ...

    def disconnect(self, agent_id: str, session: AgentSession | None = None) -> None: ...

    def on_result(
        self, session: AgentSession, task_id: str, number: int, output: Any, error: TaskError | None
    ) -> None: ...

    def on_started(self, session: AgentSession, starts: list[tuple[str, int, float]]) -> None: ...

    def on_heartbeat(self, session: AgentSession, refs: list[tuple[str, int]]) -> None: ...

    def on_credit(self, session: AgentSession, slots: int) -> None: ...

    def on_ready(self, session: AgentSession, slots: int, error: str) -> None: ...


@dataclass(slots=True)
class AgentSession:
    id: str
    namespace: str
    pool: str
    template: str
    capabilities: list[str]
    slots: int
    link: AgentLink
    hostname: str = ""
    pid: int = 0
    # The token the agent connected with: a lease held by one stream is taken over by a
    # reconnecting one only if both came with the same token.
    token_id: str = ""
    credits: int = 0
    running: set[str] = field(default_factory=set)
    draining: bool = False
    # The template's concurrency: the most slots a Ready may give the agent.
    max_slots: int = 0
    # Why the agent cannot serve (its Ready said so, e.g. its handler does not import): it is
    # listed as unhealthy and sent nothing.
    error: str = ""
    connected_at: float = 0.0
    last_seen: float = 0.0

    @property
    def pool_key(self) -> tuple[str, str]:
        return (self.namespace, self.pool)

    @property
    def state(self) -> str:
        if self.error:
            return "unhealthy"
        if self.draining:
            return "draining"
        return "busy" if self.running else "idle"

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "namespace": self.namespace,
            "pool": self.pool,
            "template": self.template,
            "capabilities": self.capabilities,
            "state": self.state,
            "slots": self.slots,
            "freeSlots": self.credits,
            "error": self.error or None,
            "running": sorted(self.running),
            "hostname": self.hostname,
            "pid": self.pid,
            "connectedAt": self.connected_at,
            "lastSeen": self.last_seen,
        }


@dataclass(slots=True)
class Lease:
    """An attempt in flight: who holds it, until when, and its hard deadline.

    `holder` is the session (one agent stream) that may report on the attempt: results, starts
    and heartbeats from any other session are refused. None until an agent claims it (an attempt
    recovered after a restart or adopted from a dead replica waits for `attempt.agent_id`).
    """

    attempt: Attempt
    expires: float
    deadline: float | None
    cancel_sent_at: float | None = None
    holder: AgentSession | None = None


@dataclass(frozen=True, slots=True)
class TaskRequest:
    namespace: str
    pool: str
    input: Any
    priority: int = 0
    timeout_seconds: float | None = None
    max_retries: int | None = None
    labels: dict[str, str] = field(default_factory=dict)
    parent_id: str | None = None
    id: str | None = None
    retry: RetryPolicy | None = None  # None: the pool's template policy
