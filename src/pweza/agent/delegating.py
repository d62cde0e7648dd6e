"""The agent's side of `ctx.delegate`: requests up the stream, results matched back by id.

A request still unanswered when the stream drops is sent again on the next stream; the
manager finds the child by its key, so nothing is started twice.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from typing import Any

import orjson

from pweza.agent.outbox import Outbox
from pweza.agent.sdk import Delegator, TaskFailure
from pweza.domain.limits import too_large
from pweza.domain.tasks import ErrorType
from pweza.v1 import agent_pb2 as pb


class DelegationClient:
    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox
        self._pending: dict[str, tuple[asyncio.Future[Any], pb.DelegateRequest]] = {}

    def for_attempt(self, task_id: str, attempt: int) -> Delegator:
        # Calls without a key are numbered in order, so a retried handler that makes the same
        # calls in the same order finds the children its earlier attempt already finished.
        ordinal = itertools.count(1)

        async def delegate(pool: str, payload: Any, key: str | None) -> Any:
            input_json = orjson.dumps(payload)
            limit = self._outbox.payload_limit
            if limit is not None and len(input_json) > limit:
                message = too_large("the delegated input", len(input_json), limit)
                raise TaskFailure(message, type=ErrorType.INPUT_TOO_LARGE, retryable=False)
            request = pb.DelegateRequest(
                request_id=uuid.uuid4().hex,
                parent_task_id=task_id,
                parent_attempt=attempt,
                pool=pool,
                input_json=input_json,
                key=key or f"call-{next(ordinal)}",
            )
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._pending[request.request_id] = (future, request)
            self._outbox.delegate(request)
            try:
                return await future
            finally:
                self._pending.pop(request.request_id, None)

        return delegate

    def resolve(self, result: pb.DelegateResult) -> None:
        entry = self._pending.get(result.request_id)
        if entry is None or entry[0].done():
            return
        future = entry[0]
        if result.ok:
            future.set_result(orjson.loads(result.output_json) if result.output_json else None)
        else:
            error = result.error
            message = f"delegated task {result.task_id or '?'} failed: {error.message}"
            future.set_exception(TaskFailure(message, type=error.type or "DelegationError", retryable=error.retryable))

    def resend_all(self) -> None:
        for future, request in self._pending.values():
            if not future.done():
                self._outbox.delegate(request)
