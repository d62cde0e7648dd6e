"""Tool calls that wait for a person: the manager's side of `requireApproval`.

An `agent` attempt about to call a tool its template marks `requireApproval` sends a
ToolApproval (task, attempt, key, tool, arguments). The request is stored with the task's call
journal, as an entry of kind "approval" under attempt 0 (so it belongs to the task, not to one
attempt, and no attempt's replay sees it), before anyone is asked: a retried or resumed attempt,
or the same request re-sent after a reconnect, finds it again by its key and gets the decision
already made, so one call is never asked for twice. A person decides through the REST API, on
any replica: the decision is written to the store and wakes the waiter on this replica at once,
one on another replica within `POLL_SECONDS`. The wait lasts as long as the attempt runs here:
it ends when the attempt is cancelled, times out or leaves this agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from typing import Any

import orjson

from pweza.domain.errors import Conflict, NotFound
from pweza.domain.tasks import APPROVAL_KIND, CallEntry, Task
from pweza.manager.budgets import JournalRefused
from pweza.manager.clock import Clock
from pweza.manager.dispatching import Dispatcher
from pweza.manager.journal import CallJournal
from pweza.manager.sessions import AgentSession
from pweza.store.protocol import Store

APPROVAL_ATTEMPT = 0  # the task's, not one attempt's
POLL_SECONDS = 1.0
MAX_KEY_CHARS = 200
MAX_ARGUMENTS_BYTES = 64 * 1024


class ToolApprovals:
    def __init__(self, store: Store, dispatcher: Dispatcher, journal: CallJournal, clock: Clock) -> None:
        self._store = store
        self._dispatcher = dispatcher
        self._journal = journal
        self._clock = clock
        self._decided: dict[tuple[str, str], asyncio.Event] = {}

    async def request(
        self, session: AgentSession, task_id: str, attempt: int, key: str, tool: str, arguments_json: bytes
    ) -> list[dict[str, Any]]:
        """Record the request (once per task and key) and return, as the reply's records, the
        decision when a person made it; JournalRefused when the attempt stops running here first."""
        task = self._journal.held_task(session, task_id, attempt, "approval")
        arguments = _read_request(key, tool, arguments_json)
        approvals = await self._approvals(task_id)
        entry = _by_key(approvals, key) or await self._add(task, attempt, key, tool, arguments, len(approvals))
        event = self._decided.setdefault((task_id, key), asyncio.Event())
        try:
            while entry.record["state"] == "pending":
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), POLL_SECONDS)
                self._journal.held_task(session, task_id, attempt, "approval")
                entry = _by_key(await self._approvals(task_id), key) or entry
        finally:
            if not event.is_set():
                self._decided.pop((task_id, key), None)
        record = entry.record
        return [{"decision": record["state"], "by": record.get("by", ""), "comment": record.get("comment", "")}]

    async def decide(self, task_id: str, key: str, *, approve: bool, by: str, comment: str) -> CallEntry:
        """Approve or reject the waiting call `key` of the task; its entry as decided."""
        await self._dispatcher.get(task_id)  # NotFound for a task that does not exist
        entry = _by_key(await self._approvals(task_id), key)
        if entry is None:
            raise NotFound(f"tool call {key!r} of task {task_id} not found: the task asked for no such approval")
        if entry.record["state"] != "pending":
            raise _decided_before(task_id, key, entry)
        record = {
            **entry.record, "state": "approved" if approve else "rejected", "by": by,
            "comment": comment, "decidedAt": self._clock.time(),
        }  # fmt: skip
        decided = dataclasses.replace(entry, record=record)
        # Compare-and-set: of two people (on any replicas) deciding at once, one decision stands.
        if not await self._store.replace_call_in_state(decided, "pending"):
            raise _decided_before(task_id, key, _by_key(await self._approvals(task_id), key) or entry)
        event = self._decided.pop((task_id, key), None)
        if event is not None:
            event.set()
        return decided

    async def _approvals(self, task_id: str) -> list[CallEntry]:
        return [
            e
            for e in await self._store.list_calls([task_id])
            if e.attempt == APPROVAL_ATTEMPT and e.kind == APPROVAL_KIND
        ]

    async def _add(
        self, task: Task, attempt: int, key: str, tool: str, arguments: dict[str, Any], position: int
    ) -> CallEntry:
        # One attempt runs at a time and its loop asks for one call at a time: no two requests of
        # a task race for the next position.
        now = self._clock.time()
        record = {"key": key, "tool": tool, "arguments": arguments, "attempt": attempt, "state": "pending",
                  "requestedAt": now}  # fmt: skip
        entry = CallEntry(
            task.id, APPROVAL_ATTEMPT, position, APPROVAL_KIND, record, now,
            namespace=task.namespace, pool=task.pool, run_id=task.labels.get("run", "")[:64],
        )  # fmt: skip
        await self._store.save_calls([entry])
        return entry


def _decided_before(task_id: str, key: str, entry: CallEntry) -> Conflict:
    record = entry.record
    return Conflict(f"the tool call {key!r} of task {task_id} was already {record['state']} by {record.get('by')}")


def _by_key(approvals: list[CallEntry], key: str) -> CallEntry | None:
    return next((entry for entry in approvals if entry.record.get("key") == key), None)


def _read_request(key: str, tool: str, arguments_json: bytes) -> dict[str, Any]:
    """The arguments, if the request has the shape the `agent` runtime sends; else JournalRefused."""
    if not key.startswith("approval-") or not 1 <= len(key) <= MAX_KEY_CHARS:
        raise JournalRefused(f"key must start with 'approval-' and have at most {MAX_KEY_CHARS} characters")
    if not tool or len(tool) > MAX_KEY_CHARS:
        raise JournalRefused(f"tool must be a name of 1 to {MAX_KEY_CHARS} characters")
    if len(arguments_json) > MAX_ARGUMENTS_BYTES:
        raise JournalRefused(f"the arguments must be at most {MAX_ARGUMENTS_BYTES} bytes of JSON")
    try:
        arguments = orjson.loads(arguments_json or b"{}")
    except orjson.JSONDecodeError as error:
        raise JournalRefused(f"the arguments are not JSON: {error}") from None
    if not isinstance(arguments, dict):
        raise JournalRefused("the arguments must be a JSON object")
    return arguments


__all__ = ["ToolApprovals"]
