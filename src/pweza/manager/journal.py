"""The manager's side of the call journal: an `agent` attempt's model and tool calls, stored.

An agent sends each call record of an attempt it holds; the record is written to the store and
only then acknowledged, and the agent uses the call's answer only after that. A retried attempt
(after a failure, a lost agent, a manager restart) loads the records of its task's latest
earlier attempt that recorded any, and replays them instead of calling again. Nothing an agent
says is taken on trust: it must hold the attempt it writes for, and a record must have the
shape the runtime writes.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import orjson
import structlog

from pweza.domain.tasks import CallEntry
from pweza.manager.clock import Clock
from pweza.manager.dispatching import Dispatcher
from pweza.manager.sessions import AgentSession
from pweza.store.protocol import Store

log = structlog.get_logger(__name__)
# More calls than any loop makes (max turns are at most a few hundred, each with a few tools).
MAX_CALLS_PER_ATTEMPT = 10_000
_KINDS = ("model", "tool")


class JournalRefused(Exception):
    """Why a journal request is refused: sent back to the agent as the reply's error."""


class CallJournal:
    def __init__(self, store: Store, dispatcher: Dispatcher, clock: Clock) -> None:
        self._store = store
        self._dispatcher = dispatcher
        self._clock = clock

    async def append(self, session: AgentSession, task_id: str, attempt: int, record_json: bytes) -> None:
        """Store one call record of an attempt `session` holds; durable when this returns."""
        self._require_holder(session, task_id, attempt)
        record = _read_record(record_json)
        entry = CallEntry(task_id, attempt, record["index"], record["kind"], record, self._clock.time())
        await self._store.save_calls([entry])

    async def load(self, session: AgentSession, task_id: str, attempt: int) -> list[dict[str, Any]]:
        """The records to replay for `attempt`: those of the latest earlier attempt that has any."""
        self._require_holder(session, task_id, attempt)
        by_attempt: dict[int, list[CallEntry]] = defaultdict(list)
        for entry in await self._store.list_calls([task_id]):
            if entry.attempt < attempt:
                by_attempt[entry.attempt].append(entry)
        if not by_attempt:
            return []
        latest = by_attempt[max(by_attempt)]
        return [entry.record for entry in sorted(latest, key=lambda entry: entry.position)]

    def _require_holder(self, session: AgentSession, task_id: str, attempt: int) -> None:
        if not self._dispatcher.holds(session, task_id, attempt, "journal"):
            raise JournalRefused(f"attempt {attempt} of task {task_id} is not running on this agent")


def _read_record(record_json: bytes) -> dict[str, Any]:
    """The record if it has the shape the `agent` runtime writes, else JournalRefused saying what is wrong."""
    try:
        record = orjson.loads(record_json)
    except orjson.JSONDecodeError as error:
        raise JournalRefused(f"the record is not JSON: {error}") from None
    if not isinstance(record, dict):
        raise JournalRefused("the record must be a JSON object")
    index = record.get("index")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < MAX_CALLS_PER_ATTEMPT:
        raise JournalRefused(f"index must be an integer from 0 to {MAX_CALLS_PER_ATTEMPT - 1}")
    if record.get("kind") not in _KINDS:
        raise JournalRefused(f"kind must be one of {', '.join(_KINDS)}")
    key = record.get("requestDigest")
    if not isinstance(key, str) or not 1 <= len(key) <= 128:
        raise JournalRefused("requestDigest must be a string of 1 to 128 characters")
    if not isinstance(record.get("response"), dict):
        raise JournalRefused("response must be a JSON object")
    usage = record.get("usage")
    if usage is not None and not (
        isinstance(usage, dict) and all(isinstance(v, int) and not isinstance(v, bool) for v in usage.values())
    ):
        raise JournalRefused("usage must be an object of integers")
    return record
