"""Workflow runs: start, inspect, cancel, retry, approve or reject, and follow their events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse
from pydantic import Field

from pweza.api import problems
from pweza.api.responses import EventInfo, Page, RunInfo
from pweza.api.routing import GuardedRoute
from pweza.api.schemas import MAX_STORED_INT, Body, Continue, Decision, journal_json, page, spent_json
from pweza.api.security import ManagerDep, Reader, Writer
from pweza.domain.errors import InvalidInput
from pweza.domain.manifests import Name
from pweza.domain.records import RunFilter
from pweza.domain.runs import Run, RunEvent, RunState
from pweza.manager.live_replies import ReplyPiece
from pweza.manager.queries import StepView, TaskTree
from pweza.manager.service import Manager

router = APIRouter(prefix="/api/v1", tags=["runs"], route_class=GuardedRoute)
_CHILD_DEPTH = 4


class RunStart(Body):
    inputs: dict[str, Any] = Field(default_factory=dict)


class RetryRequest(Body):
    step: str | None = None


def run_json(run: Run, steps: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": run.id,
        "namespace": run.namespace,
        "workflow": run.workflow,
        "generation": run.generation,
        "state": run.state.value,
        "inputs": run.inputs,
        "outputs": run.outputs,
        "error": run.error,
        "createdAt": run.created_at,
        "finishedAt": run.finished_at,
        "deadline": run.deadline,
        "retries": run.retries,
    }
    if steps is not None:
        body["steps"] = steps
    return body


def _tree_json(trees: list[TaskTree]) -> list[dict[str, Any]]:
    return [
        {
            "taskId": tree.task.id,
            "pool": tree.task.pool,
            "state": tree.task.state.value,
            "attempts": tree.task.attempts,
            "output": tree.task.output,
            "error": None if tree.task.error is None else tree.task.error.to_dict(),
            "children": _tree_json(tree.children),
        }
        for tree in trees
    ]


def _step_json(view: StepView) -> dict[str, Any]:
    step = view.step
    body: dict[str, Any] = {
        "name": step.name,
        "state": step.state.value,
        "attempts": view.attempts,
        "retries": step.retries,
        "startedAt": step.started_at,
        "finishedAt": step.finished_at,
        "output": step.output,
        "error": None if step.error is None else step.error.to_dict(),
        "items": step.items,
        "approval": None if step.approval is None else step.approval.to_dict(),
    }
    if view.item_states is not None:
        body["itemStates"] = view.item_states
    if view.task_id is not None:
        body["taskId"] = view.task_id
        body["children"] = _tree_json(view.children)
    if view.calls:
        body |= journal_json(view.calls, with_response=False)
    return body


async def load_run(manager: Manager, run_id: str) -> dict[str, Any]:
    view = await manager.queries.run(run_id)
    body = run_json(view.run, [_step_json(step) for step in view.steps]) | {"spec": view.run.spec}
    body["usage"] = spent_json(view.spent, view.run.spec.get("budget") or {})
    return body


@router.post("/workflows/{name}/runs", status_code=201, response_model=RunInfo)
async def start_run(
    name: Name, body: RunStart, manager: ManagerDep, who: Writer, namespace: Annotated[str, Query()] = "default"
) -> dict[str, Any]:
    run = await manager.start_run(who, namespace, name, body.inputs)
    return await load_run(manager, run.id)


@router.get("/runs", response_model=Page[RunInfo])
async def list_runs(
    manager: ManagerDep,
    _: Reader,
    namespace: str | None = None,
    workflow: str | None = None,
    state: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    continue_: Continue = None,
) -> dict[str, Any]:
    if state is not None and state not in {s.value for s in RunState}:
        allowed = ", ".join(s.value for s in RunState)
        raise InvalidInput(f"state: {state!r} is not a run state ({allowed})", field="state")
    runs = await manager.queries.runs(RunFilter(namespace, workflow, state), limit + 1, continue_)
    next_key = runs[limit - 1].seq if len(runs) > limit else None
    return page([run_json(run) for run in runs[:limit]], next_key)


@router.get("/runs/{run_id}", response_model=RunInfo)
async def get_run(run_id: str, manager: ManagerDep, _: Reader) -> dict[str, Any]:
    return await load_run(manager, run_id)


@router.post("/runs/{run_id}/cancel", response_model=RunInfo, responses=problems.responses(409))
async def cancel_run(run_id: str, manager: ManagerDep, who: Writer) -> dict[str, Any]:
    await manager.cancel_run(who, run_id)
    return await load_run(manager, run_id)


@router.post("/runs/{run_id}/retry", response_model=RunInfo, responses=problems.responses(409))
async def retry_run(run_id: str, body: RetryRequest, manager: ManagerDep, who: Writer) -> dict[str, Any]:
    await manager.retry_run(who, run_id, body.step)
    return await load_run(manager, run_id)


@router.post("/runs/{run_id}/steps/{step}/approve", response_model=RunInfo, responses=problems.responses(409))
async def approve_step(run_id: str, step: str, body: Decision, manager: ManagerDep, who: Writer) -> dict[str, Any]:
    await manager.decide_step(who, run_id, step, approve=True, comment=body.comment)
    return await load_run(manager, run_id)


@router.post("/runs/{run_id}/steps/{step}/reject", response_model=RunInfo, responses=problems.responses(409))
async def reject_step(run_id: str, step: str, body: Decision, manager: ManagerDep, who: Writer) -> dict[str, Any]:
    await manager.decide_step(who, run_id, step, approve=False, comment=body.comment)
    return await load_run(manager, run_id)


# The events route answers a page (follow=false) or a server-sent event stream (follow=true).
EVENTS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the run's events: a page, or with follow=true a stream that ends with the run",
        "model": Page[EventInfo],
        "content": {
            "text/event-stream": {
                "schema": {
                    "type": "string",
                    "description": (
                        "`id: N`, `event: TYPE`, `data: EVENT` for each stored event; `event: model.delta`, "
                        "`data: {step, taskId, attempt, call, text | tool, arguments}` (no id, never stored) "
                        "for each piece of a model reply as it is generated; `event: end` when the run has ended"
                    ),
                }
            }
        },
    }
}


def _event_json(event: RunEvent) -> dict[str, Any]:
    return {"id": event.id, "at": event.at, "type": event.type, "step": event.step, "data": event.data}


@router.get("/runs/{run_id}/events", response_model=None, responses=EVENTS)
async def run_events(
    run_id: str,
    manager: ManagerDep,
    _: Reader,
    follow: bool = True,
    after: Annotated[int, Query(ge=0, le=MAX_STORED_INT, description="send only the events after this id")] = 0,
    last_event_id: Annotated[
        int | None,
        Header(
            alias="Last-Event-ID",
            ge=0,
            le=MAX_STORED_INT,
            description="what a reconnecting EventSource sends: the id of the last event it received",
        ),
    ] = None,
) -> StreamingResponse | dict[str, Any]:
    """The run's history; with follow=true, a server-sent event stream that ends with the run."""
    start = max(after, last_event_id or 0)
    if not follow:
        events = await manager.queries.events(run_id, start, 10_000)
        return page([_event_json(event) for event in events], None)
    events_as_they_come = await manager.queries.follow_events(run_id, start)
    return StreamingResponse(_stream(events_as_they_come), media_type="text/event-stream")


def _sse(event: RunEvent) -> bytes:
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (event.id or 0, event.type.encode(), orjson.dumps(_event_json(event)))


def _piece_sse(piece: ReplyPiece) -> bytes:
    # No id: a piece is not stored, so a reconnect (Last-Event-ID) resumes from the stored events.
    return b"event: model.delta\ndata: %s\n\n" % orjson.dumps(piece.as_json())


async def _stream(events: AsyncIterator[RunEvent | ReplyPiece | None]) -> AsyncIterator[bytes]:
    async for event in events:
        if event is None:
            yield b": keep-alive\n\n"
        elif isinstance(event, ReplyPiece):
            yield _piece_sse(event)
        else:
            yield _sse(event)
    yield b"event: end\ndata: {}\n\n"
