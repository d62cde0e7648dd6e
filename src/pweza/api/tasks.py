"""Submit, inspect, wait for and cancel tasks; list and drain agents; list manager replicas."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.responses import StreamingResponse

from pweza.api import agent_logs, problems
from pweza.api.responses import AgentInfo, Page, ReplicaPage, SubmittedBatch, TaskInfo, ToolApprovalInfo
from pweza.api.routing import GuardedRoute
from pweza.api.schemas import Continue, Decision, TaskBatch, TaskSubmission, approval_json, page, task_json
from pweza.api.security import ManagerDep, Reader, Writer
from pweza.domain.errors import InvalidInput, NotFound
from pweza.domain.records import TaskFilter
from pweza.domain.tasks import TaskState

router = APIRouter(prefix="/api/v1", tags=["tasks"], route_class=GuardedRoute)


@router.post("/tasks", status_code=201, response_model=TaskInfo, responses=problems.responses(404))
async def submit_task(body: TaskSubmission, manager: ManagerDep, who: Writer) -> dict[str, Any]:
    (task,) = await manager.submit_tasks(who, [body.to_request()])
    return task_json(task)


@router.post("/tasks:batch", status_code=201, response_model=SubmittedBatch, responses=problems.responses(404))
async def submit_batch(body: TaskBatch, manager: ManagerDep, who: Writer) -> dict[str, Any]:
    tasks = await manager.submit_tasks(who, [item.to_request() for item in body.tasks])
    return {"items": [{"id": task.id, "state": task.state.value} for task in tasks]}


@router.get("/tasks", response_model=Page[TaskInfo])
async def list_tasks(
    manager: ManagerDep,
    _: Reader,
    namespace: str | None = None,
    pool: str | None = None,
    state: str | None = None,
    parent: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    continue_: Continue = None,
) -> dict[str, Any]:
    try:
        wanted = None if state is None else TaskState(state)
    except ValueError:
        allowed = ", ".join(s.value for s in TaskState)
        raise InvalidInput(f"state: {state!r} is not a task state ({allowed})", field="state") from None
    where = TaskFilter(namespace=namespace, pool=pool, state=wanted, parent_id=parent)
    tasks = await manager.queries.tasks(where, limit + 1, continue_)
    next_key = tasks[limit - 1].seq if len(tasks) > limit else None
    return page([task_json(task) for task in tasks[:limit]], next_key)


@router.get("/tasks/{task_id}", response_model=TaskInfo)
async def get_task(task_id: str, manager: ManagerDep, _: Reader) -> dict[str, Any]:
    view = await manager.queries.task_with_attempts(task_id)
    return task_json(view.task, view.attempts, view.calls)


@router.get("/tasks/{task_id}/wait", response_model=TaskInfo)
async def wait_task(
    task_id: str,
    manager: ManagerDep,
    _: Reader,
    timeout: Annotated[float, Query(gt=0, le=300)] = 30.0,
) -> dict[str, Any]:
    """Long-poll: answers as soon as the task is finished (and durable), or after `timeout`."""
    return task_json(await manager.queries.wait_task(task_id, timeout))


@router.post("/tasks/{task_id}/cancel", response_model=TaskInfo, responses=problems.responses(409))
async def cancel_task(task_id: str, manager: ManagerDep, who: Writer) -> dict[str, Any]:
    return task_json(await manager.cancel_task(who, task_id))


@router.post(
    "/tasks/{task_id}/approvals/{key}/approve", response_model=ToolApprovalInfo, responses=problems.responses(404, 409)
)
async def approve_tool_call(task_id: str, key: str, body: Decision, manager: ManagerDep, who: Writer) -> dict[str, Any]:
    """Let a tool call the task's agent waits on run (its template's requireApproval)."""
    return approval_json(await manager.decide_tool_call(who, task_id, key, approve=True, comment=body.comment))


@router.post(
    "/tasks/{task_id}/approvals/{key}/reject", response_model=ToolApprovalInfo, responses=problems.responses(404, 409)
)
async def reject_tool_call(task_id: str, key: str, body: Decision, manager: ManagerDep, who: Writer) -> dict[str, Any]:
    """Refuse a tool call the task's agent waits on: the model is told who rejected it and why."""
    return approval_json(await manager.decide_tool_call(who, task_id, key, approve=False, comment=body.comment))


@router.get("/agents", response_model=Page[AgentInfo])
async def list_agents(manager: ManagerDep, _: Reader, pool: str | None = None) -> dict[str, Any]:
    """Connected agents, on every replica; `replica` says which one each is connected to."""
    return page(await manager.list_agents(pool), None)


@router.get("/replicas", response_model=ReplicaPage)
async def list_replicas(manager: ManagerDep, _: Reader) -> dict[str, Any]:
    """The manager replicas sharing this PostgreSQL database (none with the embedded store)."""
    return page(await manager.queries.replicas(), None) | {"replica": manager.replica or None}


@router.post(
    "/agents/{agent_id}/drain",
    response_model=AgentInfo,
    responses={202: {"model": AgentInfo, "description": "handed to the replica the agent is connected to"}},
)
async def drain_agent(
    agent_id: str,
    manager: ManagerDep,
    who: Writer,
    response: Response,
    grace: Annotated[float, Query(gt=0, le=3600)] = 30.0,
) -> dict[str, Any]:
    agent, forwarded = await manager.drain_agent(agent_id, grace)
    await manager.audit(who, "agent.drain", agent_id)
    # 202: handed to the replica the agent is connected to, which drains it within moments.
    if forwarded:
        response.status_code = 202
    return agent


# What the log routes answer: text, one line after another (streamed as it comes with follow=true).
TEXT_LINES: dict[int | str, dict[str, Any]] = {
    200: {"description": "the log lines", "content": {"text/plain": {"schema": {"type": "string"}}}}
}
Tail = Annotated[int | None, Query(ge=0, le=100_000, description="only the last lines (default: all there are)")]


@router.get("/agents/{agent_id}/logs", response_model=None, response_class=StreamingResponse, responses=TEXT_LINES)
async def agent_log(
    agent_id: str, manager: ManagerDep, _: Reader, follow: bool = False, tail: Tail = None
) -> StreamingResponse:
    """What a connected agent that `pweza up` started has written, as text; follow=true streams new lines."""
    found = [a for a in await manager.list_agents() if a["id"] == agent_id]
    if not found:
        raise NotFound(f"agent {agent_id} is not connected")
    agent = found[0]
    directory = agent_logs.log_directory(manager.settings.agent_log_dir, agent["pool"])
    path = agent_logs.slot_log(directory, agent["namespace"], agent["pool"], agent_id)
    if path is None:
        raise NotFound(f"agent {agent_id} was not started by this manager's `pweza up`: it has no log here")

    async def paths() -> list[Path]:
        return [path]

    lines = agent_logs.stream_lines(paths, tail=tail, keep=lambda _: True, follow=follow)
    return StreamingResponse(lines, media_type="text/plain; charset=utf-8")


@router.get("/tasks/{task_id}/logs", response_model=None, response_class=StreamingResponse, responses=TEXT_LINES)
async def task_log(
    task_id: str, manager: ManagerDep, _: Reader, follow: bool = False, tail: Tail = None
) -> StreamingResponse:
    """The log lines that name the task (its handler's logger, its failures with their tracebacks), from
    the agents `pweza up` ran its attempts on; follow=true streams them until the task has finished."""
    task = await manager.queries.task(task_id)
    directory = agent_logs.log_directory(manager.settings.agent_log_dir, task.pool)

    async def paths() -> list[Path]:
        """The files of the agents its attempts ran on so far (a later attempt may add one)."""
        agents = await manager.queries.task_agents(task_id)
        found = {agent_logs.slot_log(directory, task.namespace, task.pool, agent) for agent in agents}
        return sorted(path for path in found if path is not None)

    async def finished() -> bool:
        return (await manager.queries.task(task_id)).state.terminal

    lines = agent_logs.stream_lines(
        paths,
        tail=tail,
        keep=lambda line: task_id in line,
        follow=follow,
        done=finished,
    )
    return StreamingResponse(lines, media_type="text/plain; charset=utf-8")
