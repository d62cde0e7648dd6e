"""Workflow runs: start, inspect, cancel, retry, approve or reject, and follow their events."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse
from pydantic import Field

from pweza.api.routing import GuardedRoute
from pweza.api.schemas import MAX_STORED_INT, Body, Continue, page
from pweza.api.security import ManagerDep, Reader, Writer
from pweza.domain.errors import InvalidInput, NotFound
from pweza.domain.manifests import Name
from pweza.domain.records import RunFilter, TaskFilter
from pweza.domain.runs import Run, RunEvent, RunState, StepRun
from pweza.manager.service import Manager

router = APIRouter(prefix="/api/v1", tags=["runs"], route_class=GuardedRoute)
_CHILD_DEPTH = 4


class RunStart(Body):
    inputs: dict[str, Any] = Field(default_factory=dict)


class Decision(Body):
    comment: str = Field(default="", max_length=2000)


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


async def _children(manager: Manager, task_id: str, depth: int) -> list[dict[str, Any]]:
    if depth <= 0:
        return []
    found = await manager.store.list_tasks(TaskFilter(parent_id=task_id), limit=200)
    result = []
    for child in sorted(found, key=lambda t: t.seq):
        live = manager.dispatcher.live(child.id) or child
        result.append(
            {
                "taskId": live.id,
                "pool": live.pool,
                "state": live.state.value,
                "attempts": live.attempts,
                "output": live.output,
                "error": None if live.error is None else live.error.to_dict(),
                "children": await _children(manager, live.id, depth - 1),
            }
        )
    return result


async def _step_json(manager: Manager, run: Run, step: StepRun) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": step.name,
        "state": step.state.value,
        "attempts": step.attempts,
        "retries": step.retries,
        "startedAt": step.started_at,
        "finishedAt": step.finished_at,
        "output": step.output,
        "error": None if step.error is None else step.error.to_dict(),
        "items": step.items,
        "approval": None if step.approval is None else step.approval.to_dict(),
    }
    if step.items is None and step.started_at is not None and step.state.value != "waiting_approval":
        task_id = f"{run.id}.{step.name}.0.{step.retries}"
        task = manager.dispatcher.live(task_id)
        if task is not None:
            body["attempts"] = task.attempts
        body["taskId"] = task_id
        body["children"] = await _children(manager, task_id, _CHILD_DEPTH)
    return body


async def load_run(manager: Manager, run_id: str) -> dict[str, Any]:
    run = await manager.store.get_run(run_id)
    if run is None:
        raise NotFound(f"run {run_id} not found")
    stored = {step.name: step for step in await manager.store.get_steps(run_id)}
    order = [step["name"] for step in run.spec["steps"]]
    steps = [await _step_json(manager, run, stored[name]) for name in order if name in stored]
    return run_json(run, steps)


@router.post("/workflows/{name}/runs", status_code=201)
async def start_run(
    name: Name, body: RunStart, manager: ManagerDep, who: Writer, namespace: Annotated[str, Query()] = "default"
) -> dict[str, Any]:
    run = await manager.workflows.start_run(namespace, name, body.inputs)
    manager.metrics.coordination.inc()
    await manager.audit(who, "run.start", run.id, workflow=f"{namespace}/{name}")
    return await load_run(manager, run.id)


@router.get("/runs")
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
    runs = await manager.store.list_runs(RunFilter(namespace, workflow, state), limit + 1, continue_)
    next_key = runs[limit - 1].seq if len(runs) > limit else None
    return page([run_json(run) for run in runs[:limit]], next_key)


@router.get("/runs/{run_id}")
async def get_run(run_id: str, manager: ManagerDep, _: Reader) -> dict[str, Any]:
    return await load_run(manager, run_id)


@router.post("/runs/{run_id}/cancel")
async def cancel_run(run_id: str, manager: ManagerDep, who: Writer) -> dict[str, Any]:
    await manager.workflows.cancel(run_id)
    await manager.audit(who, "run.cancel", run_id)
    return await load_run(manager, run_id)


@router.post("/runs/{run_id}/retry")
async def retry_run(run_id: str, body: RetryRequest, manager: ManagerDep, who: Writer) -> dict[str, Any]:
    await manager.workflows.retry(run_id, body.step)
    await manager.audit(who, "run.retry", run_id, step=body.step)
    return await load_run(manager, run_id)


@router.post("/runs/{run_id}/steps/{step}/approve")
async def approve_step(run_id: str, step: str, body: Decision, manager: ManagerDep, who: Writer) -> dict[str, Any]:
    await manager.workflows.decide(run_id, step, True, who.name, body.comment)
    await manager.audit(who, "run.approve", f"{run_id}/{step}", comment=body.comment)
    return await load_run(manager, run_id)


@router.post("/runs/{run_id}/steps/{step}/reject")
async def reject_step(run_id: str, step: str, body: Decision, manager: ManagerDep, who: Writer) -> dict[str, Any]:
    await manager.workflows.decide(run_id, step, False, who.name, body.comment)
    await manager.audit(who, "run.reject", f"{run_id}/{step}", comment=body.comment)
    return await load_run(manager, run_id)


def _event_json(event: RunEvent) -> dict[str, Any]:
    return {"id": event.id, "at": event.at, "type": event.type, "step": event.step, "data": event.data}


@router.get("/runs/{run_id}/events", response_model=None)
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
    if await manager.store.get_run(run_id) is None:
        raise NotFound(f"run {run_id} not found")
    start = max(after, last_event_id or 0)
    if not follow:
        events = await manager.store.list_events(run_id, start, 10_000)
        return page([_event_json(event) for event in events], None)
    return StreamingResponse(_stream(manager, run_id, start), media_type="text/event-stream")


def _sse(event: RunEvent) -> bytes:
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (event.id or 0, event.type.encode(), orjson.dumps(_event_json(event)))


async def _stream(manager: Manager, run_id: str, after: int) -> AsyncIterator[bytes]:
    last = after
    spoke = time.monotonic()
    while True:
        changed = manager.workflows.changed(run_id)
        events = await manager.store.list_events(run_id, last, 1000)
        if events:
            spoke = time.monotonic()
        for event in events:
            last = event.id or last
            yield _sse(event)
        if events:
            continue
        run = await manager.store.get_run(run_id)
        if run is None or run.state.terminal:
            # The commit that ended the run may have landed after the look above: the run and its
            # last events are written together, so one more look finds every event before the end.
            while rest := await manager.store.list_events(run_id, last, 1000):
                for event in rest:
                    last = event.id or last
                    yield _sse(event)
            yield b"event: end\ndata: {}\n\n"
            return
        # A run driven by another replica changes without this one hearing of it: look again soon.
        wait = 15.0 if manager.workflows.drives(run_id) else 1.0
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), timeout=wait)
        if time.monotonic() - spoke >= 15.0:
            spoke = time.monotonic()
            yield b": keep-alive\n\n"
