"""The durable journal of an `agent` attempt: its call records kept by the manager, in the store.

`ChannelJournal` is the `Journal` the model loop writes to when the agent runs under a manager:
each record goes up the stream as a JournalAppend, and `record` returns only when the manager's
JournalReply says it is stored, so an answer is never used before it would survive a crash. A
retried or resumed attempt first loads what its task's earlier attempts recorded and replays
it. A request still unanswered when the stream drops is sent again after the next Welcome
(an append is keyed by task, attempt and record index, so a repeat replaces itself). Before each
model call the journal asks the manager for a permit: a used-up budget fails the attempt with
BudgetExceeded, which is not retried. Before a tool call that needs approval it sends a
ToolApproval and waits, as long as it takes, for the decision. The model's replies are streamed
up as they come (ModelStream), for whoever follows the run live; they are not stored. Before a
request to a model with concurrency or rate limits it asks the manager for room (ModelSlot),
since those limits hold across every agent and replica, and releases it when the request ends.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import orjson

from pweza.agent.calls import CallRecord, MemoryJournal, ToolDecision
from pweza.agent.outbox import Outbox
from pweza.agent.sdk import TaskFailure
from pweza.v1 import agent_pb2 as pb

if TYPE_CHECKING:  # the chat package loads httpx: an agent without an `agent` runtime does not
    from pweza.agent.chat.endpoints import Endpoint
    from pweza.agent.chat.limits import SharedRoom


class JournalClient:
    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox
        self._pending: dict[str, tuple[asyncio.Future[pb.JournalReply], pb.AgentMessage]] = {}

    async def open(self, task_id: str, attempt: int) -> ChannelJournal:
        """The attempt's journal, holding the earlier attempts' records to replay (none for a first attempt)."""
        earlier: list[CallRecord] = []
        if attempt > 1:
            request = pb.JournalLoad(request_id=uuid.uuid4().hex, task_id=task_id, attempt=attempt)
            reply = await self._ask(request.request_id, pb.AgentMessage(journal_load=request))
            earlier = [CallRecord.from_json(item) for item in orjson.loads(reply.records_json or b"[]")]
        return ChannelJournal(self, task_id, attempt, earlier)

    async def append(self, task_id: str, attempt: int, record: CallRecord) -> None:
        request = pb.JournalAppend(
            request_id=uuid.uuid4().hex, task_id=task_id, attempt=attempt, record_json=orjson.dumps(record.as_json())
        )
        await self._ask(request.request_id, pb.AgentMessage(journal_append=request))

    async def permit(self, task_id: str, attempt: int, max_tokens: int) -> None:
        request = pb.CallPermit(
            request_id=uuid.uuid4().hex, task_id=task_id, attempt=attempt, max_tokens=max(0, min(max_tokens, 2**32 - 1))
        )
        await self._ask(request.request_id, pb.AgentMessage(call_permit=request))

    async def approval(
        self, task_id: str, attempt: int, key: str, tool: str, arguments: dict[str, Any]
    ) -> ToolDecision:
        request = pb.ToolApproval(
            request_id=uuid.uuid4().hex, task_id=task_id, attempt=attempt, key=key, tool=tool,
            arguments_json=orjson.dumps(arguments),
        )  # fmt: skip
        reply = await self._ask(request.request_id, pb.AgentMessage(tool_approval=request))
        answers = orjson.loads(reply.records_json or b"[]")
        answer = answers[0] if isinstance(answers, list) and answers and isinstance(answers[0], dict) else {}
        return ToolDecision(
            answer.get("decision") == "approved", str(answer.get("by") or "?"), str(answer.get("comment") or "")
        )

    @asynccontextmanager
    async def slot(self, endpoint: Endpoint, timeout: float, *, wait: bool) -> AsyncIterator[None]:
        """Room for one request to `endpoint` within its limits, as the manager holds them for
        every agent and replica: TimeoutError when none came in `timeout` (none when not `wait`)."""
        request = pb.ModelSlot(request_id=uuid.uuid4().hex, model=endpoint.name, wait_seconds=timeout if wait else 0.0)
        reply = await self._ask(request.request_id, pb.AgentMessage(model_slot=request))
        answers = orjson.loads(reply.records_json or b"[]")
        lease = str(answers[0].get("lease") or "") if answers and isinstance(answers[0], dict) else ""
        try:
            yield
        finally:
            if lease:
                release = pb.ModelSlotRelease(lease=lease)
                self._outbox.request(pb.AgentMessage(model_slot_release=release))

    def stream(self, task_id: str, attempt: int, index: int, text: str, tool: str, arguments: str) -> None:
        piece = pb.ModelStream(task_id=task_id, attempt=attempt, call=index, text=text, tool=tool, arguments=arguments)
        self._outbox.request(pb.AgentMessage(model_stream=piece))

    async def _ask(self, request_id: str, message: pb.AgentMessage) -> pb.JournalReply:
        future: asyncio.Future[pb.JournalReply] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = (future, message)
        self._outbox.request(message)
        try:
            reply = await future
        finally:
            self._pending.pop(request_id, None)
        if not reply.ok and reply.error_type == "ModelBusy":
            raise TimeoutError(reply.error)  # the chat client tries the next fallback
        if not reply.ok and reply.error_type == "BudgetExceeded":
            raise TaskFailure(reply.error, type="BudgetExceeded", retryable=False)
        if not reply.ok:
            # The manager refused (the attempt is no longer ours, a malformed record): the answer
            # cannot be kept, so it must not be used. Retryable: a later attempt replays what was kept.
            raise TaskFailure(f"the call journal refused: {reply.error}", type="JournalRefused", retryable=True)
        return reply

    def resolve(self, reply: pb.JournalReply) -> None:
        entry = self._pending.get(reply.request_id)
        if entry is not None and not entry[0].done():
            entry[0].set_result(reply)

    def resend_all(self) -> None:
        for future, message in self._pending.values():
            if not future.done():
                self._outbox.request(message)


class ChannelJournal(MemoryJournal):
    """An attempt's records, each stored through the manager before the loop uses it."""

    def __init__(self, client: JournalClient, task_id: str, attempt: int, earlier: list[CallRecord]) -> None:
        super().__init__(earlier)
        self._client = client
        self._task_id = task_id
        self._attempt = attempt

    @property
    def replayable(self) -> int:
        """How many records the earlier attempts left to replay."""
        return len(self._earlier)

    async def record(self, record: CallRecord) -> None:
        await self._client.append(self._task_id, self._attempt, record)
        await super().record(record)

    async def before_model_call(self, request: dict[str, Any]) -> None:
        limit = request.get("max_tokens")
        await self._client.permit(self._task_id, self._attempt, limit if isinstance(limit, int) else 0)

    async def approve(self, key: str, tool: str, arguments: dict[str, Any]) -> ToolDecision:
        return await self._client.approval(self._task_id, self._attempt, key, tool, arguments)

    @property
    def streams(self) -> bool:
        return True

    @property
    def model_room(self) -> SharedRoom:
        return self._client

    def stream(self, index: int, text: str, tool: str, arguments: str) -> None:
        self._client.stream(self._task_id, self._attempt, index, text, tool, arguments)
