"""The steps of an agent loop as records: each model call and tool call, what was asked and answered.

Every call the `agent` runtime makes goes through a `Journal`: the loop asks it whether the call
at this position, with this request, was made before (and then uses the recorded answer instead
of paying for it again), and otherwise makes the call and hands it the record. A record holds
the digest of the request, not the request: the loop is deterministic given the answers, so the
same position and digest mean the same call. `MemoryJournal` keeps the records of one attempt;
the durable one (`pweza.agent.journaling`) stores each record through the agent channel and asks
the manager before each model call whether a budget allows it, and before a tool call that
needs approval whether a person allowed it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

import orjson

if TYPE_CHECKING:
    from pweza.agent.chat.limits import SharedRoom

CallKind = Literal["model", "tool"]


def digest(kind: CallKind, request: Any) -> str:
    """The request's identity: SHA-256 of its canonical JSON (sorted keys), with its kind."""
    canonical = orjson.dumps({"kind": kind, "request": request}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


@dataclass(frozen=True, slots=True)
class CallRecord:
    index: int
    kind: CallKind
    digest: str
    # model: {"message", "finishReason", "model", "endpoint", "failures"}; tool: {"name", "content", "isError"}
    response: dict[str, Any]
    usage: dict[str, int] | None = None
    seconds: float = 0.0
    replayed: bool = field(default=False, compare=False)

    def as_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "index": self.index,
            "kind": self.kind,
            "requestDigest": self.digest,
            "response": self.response,
            "seconds": round(self.seconds, 3),
        }
        if self.usage is not None:
            record["usage"] = self.usage
        if self.replayed:
            record["replayed"] = True
        return record

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> CallRecord:
        return cls(
            index=int(record["index"]),
            kind=record["kind"],
            digest=str(record["requestDigest"]),
            response=dict(record["response"]),
            usage=record.get("usage"),
            seconds=float(record.get("seconds", 0.0)),
        )


@dataclass(frozen=True, slots=True)
class ToolDecision:
    """A person's answer to a tool call that needed approval."""

    approved: bool
    by: str
    comment: str = ""


class Journal(Protocol):
    def recorded(self, index: int, digest: str) -> CallRecord | None:
        """The record of the call at `index` if it was made with this request digest, else None."""

    async def record(self, record: CallRecord) -> None:
        """Keep a call's record; the loop uses the answer only once this returns."""

    async def before_model_call(self, request: dict[str, Any]) -> None:
        """Called before a model call is made (not before a replay): raises to stop it (a budget)."""

    async def approve(self, key: str, tool: str, arguments: dict[str, Any]) -> ToolDecision:
        """Wait for a person to approve or reject the call `key` of `tool` (requireApproval)."""

    @property
    def streams(self) -> bool:
        """Whether someone may follow the model's replies as they come (then they are streamed)."""

    @property
    def model_room(self) -> SharedRoom | None:
        """Where models' concurrency and rate limits are held across agents (None: in this process)."""

    def stream(self, index: int, text: str, tool: str, arguments: str) -> None:
        """A piece of the reply of the model call at `index`, as it comes: never stored."""


class MemoryJournal:
    """One attempt's records in memory, optionally starting from an earlier attempt's to replay."""

    def __init__(self, earlier: Sequence[CallRecord] = ()) -> None:
        self._earlier = list(earlier)
        self.records: list[CallRecord] = []

    def recorded(self, index: int, digest: str) -> CallRecord | None:
        if index < len(self._earlier) and self._earlier[index].digest == digest:
            return self._earlier[index]
        # Past a difference nothing recorded applies any more: the conversation went elsewhere.
        del self._earlier[index:]
        return None

    async def record(self, record: CallRecord) -> None:
        self.records.append(record)

    async def before_model_call(self, request: dict[str, Any]) -> None:
        return None  # no budgets outside a manager

    @property
    def streams(self) -> bool:
        return False  # no one follows an attempt run on its own

    @property
    def model_room(self) -> SharedRoom | None:
        return None  # limits are this process's own

    def stream(self, index: int, text: str, tool: str, arguments: str) -> None:
        return None

    async def approve(self, key: str, tool: str, arguments: dict[str, Any]) -> ToolDecision:
        # No one can approve an attempt that runs without a manager: refused, never waved through.
        return ToolDecision(False, "pweza", "no one can approve tool calls here: the attempt runs without a manager")


__all__ = ["CallKind", "CallRecord", "Journal", "MemoryJournal", "ToolDecision", "digest"]
