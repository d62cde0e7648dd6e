"""Delegation: a handler starts child tasks on other pools and awaits their results.

Children are durable tasks with `parent_id` set and a key (the caller's, or the call's
ordinal within the attempt). A retried parent asking again for the same key gets the
child that already succeeded instead of a new one; a failed child is replaced.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections import defaultdict
from typing import Any

import structlog

from pweza.domain.errors import InvalidInput, NotFound, PayloadTooLarge
from pweza.domain.records import TaskFilter
from pweza.domain.tasks import MAX_TASK_ID_CHARS, ErrorType, Task, TaskError, TaskState
from pweza.manager.dispatching import Dispatcher
from pweza.manager.intake import resolve_task
from pweza.manager.registry import Registry
from pweza.manager.sessions import DelegatedResult, TaskRequest
from pweza.store.protocol import Store

log = structlog.get_logger(__name__)
MAX_DEPTH = 8
KEY_LABEL = "delegate-key"
_SAFE_KEY = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class Delegations:
    def __init__(self, store: Store, dispatcher: Dispatcher, registry: Registry, *, payload_limit: int) -> None:
        self._store = store
        self._payload_limit = payload_limit
        self._dispatcher = dispatcher
        self._registry = registry
        # child task id -> (parent task id, request id) of callers waiting for it
        self._waiting: dict[str, list[tuple[str, str]]] = defaultdict(list)
        dispatcher.add_listener(self._on_finished, interest=self._waiting.__contains__)

    async def request(self, agent_id: str, request_id: str, parent_id: str, pool: str, payload: Any, key: str) -> None:
        """Start (or find) the child and answer the agent when it is done."""
        parent = self._dispatcher.live(parent_id)
        holder = self._dispatcher.holder(parent_id)
        if parent is None or holder is None or holder.id != agent_id:
            self._answer(
                agent_id, request_id, DelegatedResult("", False, error=_error("parent task is not running here"))
            )
            return
        depth = int(parent.labels.get("depth", "0")) + 1
        if depth > MAX_DEPTH:
            self._answer(
                agent_id, request_id, DelegatedResult("", False, error=_error(f"delegation deeper than {MAX_DEPTH}"))
            )
            return
        children = await self._store.list_tasks(TaskFilter(parent_id=parent_id), limit=10_000)
        same_key = sorted((t for t in children if t.labels.get(KEY_LABEL) == key), key=lambda t: t.seq)
        latest = self._dispatcher.live(same_key[-1].id) or same_key[-1] if same_key else None
        if latest is not None and latest.state is TaskState.SUCCEEDED:
            self._answer(agent_id, request_id, _result(latest))
            return
        if latest is not None and not latest.state.terminal:
            self._waiting[latest.id].append((parent_id, request_id))
            return
        labels = {k: v for k, v in parent.labels.items() if k in ("run", "step")}
        labels.update({KEY_LABEL: key, "depth": str(depth)})
        suffix = "" if not same_key else f"~{uuid.uuid4().hex[:6]}"
        child_id = _child_id(parent_id, key, suffix)
        asked = TaskRequest(parent.namespace, pool, payload, labels=labels, parent_id=parent_id, id=child_id)
        try:
            child = await resolve_task(
                self._registry, self._dispatcher, asked, payload_limit=self._payload_limit, field="delegate"
            )
        except PayloadTooLarge as error:
            refusal = TaskError(ErrorType.INPUT_TOO_LARGE, error.detail, False)
            self._answer(agent_id, request_id, DelegatedResult("", False, error=refusal.to_dict()))
            return
        except (NotFound, InvalidInput) as error:
            self._answer(agent_id, request_id, DelegatedResult("", False, error=_error(error.detail)))
            return
        self._waiting[child_id].append((parent_id, request_id))
        await self._dispatcher.submit([child])

    def _on_finished(self, task: Task) -> None:
        for parent_id, request_id in self._waiting.pop(task.id, []):
            holder = self._dispatcher.holder(parent_id)
            if holder is None:
                continue  # the parent's attempt ended; a retry will find this child by its key
            holder.link.send_delegate_result(request_id, _result(task))

    def _answer(self, agent_id: str, request_id: str, result: DelegatedResult) -> None:
        for session in self._dispatcher.sessions():
            if session.id == agent_id:
                session.link.send_delegate_result(request_id, result)


def _child_id(parent_id: str, key: str, suffix: str) -> str:
    """The parent's id and the key: readable, and within the store's id columns however deep."""
    wanted = f"{parent_id}:{_id_part(key)}{suffix}"
    if len(wanted) <= MAX_TASK_ID_CHARS:
        return wanted
    # Deep delegation with long keys: the start of it kept for people, a digest of all of it
    # for uniqueness (children are found again by parent and key label, never by id).
    digest = hashlib.sha256(wanted.encode()).hexdigest()[:32]
    return f"{wanted[: MAX_TASK_ID_CHARS - len(digest) - 1]}~{digest}"


def _id_part(key: str) -> str:
    """The key as it may appear in a task id (and so in a URL path)."""
    if _SAFE_KEY.fullmatch(key):
        return key
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _error(message: str) -> dict[str, Any]:
    return {"type": "DelegationError", "message": message, "retryable": False}


def _result(task: Task) -> DelegatedResult:
    if task.state is TaskState.SUCCEEDED:
        return DelegatedResult(task.id, True, output=task.output)
    error = task.error.to_dict() if task.error else {"type": task.state.value, "message": task.state.value}
    return DelegatedResult(task.id, False, error=error)
