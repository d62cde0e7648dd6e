"""A request for work made into a task the dispatcher can take: the one way for every path.

Tasks are asked for by a client (`POST /tasks`, `pweza task submit`), by a workflow step and by
a handler delegating to another pool. Each goes through `resolve_task`, so the pool's policy,
the defaults taken from its template and the payload limit hold alike on all three.
"""

from __future__ import annotations

import dataclasses

from pweza.domain.errors import InvalidInput
from pweza.domain.limits import check_payload
from pweza.manager.dispatching import Dispatcher
from pweza.manager.registry import Registry
from pweza.manager.sessions import TaskRequest


async def resolve_task(
    registry: Registry, dispatcher: Dispatcher, request: TaskRequest, *, payload_limit: int, field: str
) -> TaskRequest:
    """The request as the dispatcher takes it: its input within the payload limit, its pool's
    template found, and the timeout and retry policy the request leaves open taken from that
    template. `field` names the request in errors (`tasks[3]`, `steps.fetch[0]`): PayloadTooLarge
    for `FIELD.input`; NotFound for a missing pool; InvalidInput, for `FIELD.pool`, for a pool
    whose template is missing."""
    check_payload(request.input, f"{field}.input", payload_limit)
    try:
        policy = await registry.pool_policy(request.namespace, request.pool)
    except InvalidInput as error:
        raise InvalidInput(error.detail, field=f"{field}.pool") from None
    # Tasks stored before they carried their policy fall back on the pool's (see Dispatcher._policy).
    dispatcher.remember_retry_policy((request.namespace, request.pool), policy.template.retry)
    return dataclasses.replace(
        request,
        timeout_seconds=request.timeout_seconds or policy.timeout_seconds,
        retry=request.retry or policy.template.retry,
    )
