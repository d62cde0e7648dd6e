"""What the transports read: tasks, runs with their steps and task trees, events, objects, tokens, audit.

Each view costs a bounded number of reads whatever its size: a run is a read of the run, one of
its steps and one per level of its tree of delegated tasks (not one per task). A task's state
comes from the dispatcher's memory when it is there: the store may lag it by one write batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from pweza.domain.errors import NotFound
from pweza.domain.manifests import PoolBudget
from pweza.domain.pricing import Spent
from pweza.domain.records import AuditEntry, RunFilter, StoredObject, TaskFilter, TokenRecord
from pweza.domain.runs import Run, RunEvent, StepRun, StepState
from pweza.domain.tasks import Attempt, CallEntry, Task
from pweza.manager.auth import TokenService
from pweza.manager.budgets import Budgets
from pweza.manager.dispatching import Dispatcher
from pweza.manager.housekeeping import Housekeeping
from pweza.manager.live_replies import LiveReplies, ReplyPiece
from pweza.manager.model_status import ModelStatus
from pweza.manager.registry import Registry, with_server_fields
from pweza.manager.tool_catalog import KIND as TOOL_SERVER
from pweza.manager.tool_catalog import ToolCatalog
from pweza.manager.workflows import WorkflowEngine
from pweza.store.protocol import Store

# How deep a run's view follows delegations below a step's task, and how many children of one
# task it shows (the newest).
CHILD_DEPTH = 4
CHILDREN_PER_TASK = 200
# A followed event stream that has sent nothing for this long says so (a keep-alive).
QUIET_SECONDS = 15.0
# How often a stream looks again at a run driven by another replica (it hears nothing of it).
ELSEWHERE_POLL_SECONDS = 1.0
_EVENT_BATCH = 1000


@dataclass(frozen=True, slots=True)
class TaskTree:
    """A delegated task and the tasks it delegated in turn."""

    task: Task
    children: list[TaskTree]


@dataclass(frozen=True, slots=True)
class StepView:
    step: StepRun
    # The task of a step that runs one (not a fan-out, not an approval) once it has started.
    task_id: str | None
    attempts: int
    children: list[TaskTree]
    # A fan-out's item tasks counted by state (items not yet submitted are not counted).
    item_states: dict[str, int] | None = None
    # The model and tool calls its task's attempts journaled (an `agent` runtime's).
    calls: list[CallEntry] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RunView:
    run: Run
    steps: list[StepView]
    # What its tasks' calls paid for (delegated tasks included): what its budget counts.
    spent: Spent = field(default_factory=Spent)


@dataclass(frozen=True, slots=True)
class TaskView:
    task: Task
    attempts: list[Attempt]
    calls: list[CallEntry]


def object_document(stored: StoredObject) -> dict[str, Any]:
    """The object with what the manager adds: its generation and, as Kubernetes has it, creationTimestamp."""
    body = with_server_fields(stored)
    body["metadata"]["creationTimestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stored.created_at))
    return body


class Queries:
    def __init__(
        self,
        store: Store,
        dispatcher: Dispatcher,
        workflows: WorkflowEngine,
        registry: Registry,
        tokens: TokenService,
        housekeeping: Housekeeping,
        tool_catalog: ToolCatalog | None = None,
    ) -> None:
        self._store = store
        self._tool_catalog = tool_catalog
        self._dispatcher = dispatcher
        self._workflows = workflows
        self._registry = registry
        self._tokens = tokens
        self._housekeeping = housekeeping
        self.model_status = ModelStatus()
        self.budgets: Budgets | None = None  # the journal's, set by the Manager
        self.live_replies: LiveReplies | None = None  # set by the Manager

    # -- usage -----------------------------------------------------------------
    async def namespace_usage(self, namespace: str) -> tuple[PoolBudget | None, str, Spent]:
        """A namespace's budget (from the manager's settings), the period summed and what was spent."""
        if self.budgets is None:
            raise RuntimeError("the namespace budgets are not set up")
        return await self.budgets.namespace_usage(namespace)

    # -- tasks -----------------------------------------------------------------
    async def task(self, task_id: str) -> Task:
        return await self._dispatcher.get(task_id)

    async def task_with_attempts(self, task_id: str) -> TaskView:
        task = await self._dispatcher.get(task_id)
        return TaskView(task, await self._store.list_attempts(task_id), await self._store.list_calls([task_id]))

    async def tasks(self, where: TaskFilter, limit: int, after_seq: int | None) -> list[Task]:
        stored = await self._store.list_tasks(where, limit, after_seq)
        return [self._live(task) for task in stored]

    async def wait_task(self, task_id: str, timeout: float) -> Task:
        """The task as soon as it is finished (and durable), or as it is after `timeout`."""
        return await self._dispatcher.wait(task_id, timeout)

    async def task_agents(self, task_id: str) -> set[str]:
        """The agents the task's attempts ran on so far."""
        return {attempt.agent_id for attempt in await self._store.list_attempts(task_id) if attempt.agent_id}

    def _live(self, task: Task) -> Task:
        return self._dispatcher.live(task.id) or task

    # -- runs ------------------------------------------------------------------
    async def run(self, run_id: str) -> RunView:
        run = await self._store.get_run(run_id)
        if run is None:
            raise NotFound(f"run {run_id} not found")
        stored = {step.name: step for step in await self._store.get_steps(run_id)}
        order = [step["name"] for step in run.spec["steps"]]
        steps = [stored[name] for name in order if name in stored]
        task_ids = {step.name: _step_task_id(run, step) for step in steps}
        trees = await self._trees([task_id for task_id in task_ids.values() if task_id is not None])
        item_states = await self._item_states(run, steps)
        calls: dict[str, list[CallEntry]] = defaultdict(list)
        for entry in await self._store.list_calls([task_id for task_id in task_ids.values() if task_id is not None]):
            calls[entry.task_id].append(entry)
        views = []
        for step in steps:
            task_id = task_ids[step.name]
            live = None if task_id is None else self._dispatcher.live(task_id)
            attempts = step.attempts if live is None else live.attempts
            children = [] if task_id is None else trees[task_id]
            journal = [] if task_id is None else calls.get(task_id, [])
            views.append(StepView(step, task_id, attempts, children, item_states.get(step.name), journal))
        return RunView(run, views, await self._store.run_spent(run_id))

    async def _item_states(self, run: Run, steps: list[StepRun]) -> dict[str, dict[str, int]]:
        """The states of every fan-out's item tasks, in one read for all of the run's fan-outs."""
        fanned = [step for step in steps if step.items]
        ids = [f"{run.id}.{step.name}.{index}.{step.retries}" for step in fanned for index in range(step.items or 0)]
        counts: dict[str, dict[str, int]] = {step.name: {} for step in fanned}
        for task in await self._store.get_tasks(ids) if ids else []:
            step_name = task.id[len(run.id) + 1 :].rsplit(".", 2)[0]
            state = self._live(task).state.value
            if step_name in counts:
                counts[step_name][state] = counts[step_name].get(state, 0) + 1
        return counts

    async def _trees(self, roots: list[str]) -> dict[str, list[TaskTree]]:
        """The delegated tasks below each root, CHILD_DEPTH levels deep: one read per level."""
        children: dict[str, list[Task]] = defaultdict(list)
        level = roots
        for _ in range(CHILD_DEPTH):
            if not level:
                break
            found = await self._store.list_children(level, CHILDREN_PER_TASK * len(level))
            level = []
            for task in found:  # newest first: each parent keeps its newest
                if task.parent_id is not None and len(children[task.parent_id]) < CHILDREN_PER_TASK:
                    children[task.parent_id].append(task)
                    level.append(task.id)

        def tree(task_id: str, depth: int) -> list[TaskTree]:
            if depth <= 0:
                return []
            below = sorted(children.get(task_id, []), key=lambda task: task.seq)
            return [TaskTree(self._live(task), tree(task.id, depth - 1)) for task in below]

        return {root: tree(root, CHILD_DEPTH) for root in roots}

    async def runs(self, where: RunFilter, limit: int, after_seq: int | None) -> list[Run]:
        return await self._store.list_runs(where, limit, after_seq)

    async def events(self, run_id: str, after: int, limit: int) -> list[RunEvent]:
        await self._require_run(run_id)
        return await self._store.list_events(run_id, after, limit)

    async def follow_events(self, run_id: str, after: int) -> AsyncIterator[RunEvent | ReplyPiece | None]:
        """The run's events after `after` as they come, until the run has ended and every event
        before its end was sent, with the pieces of its model replies as they are generated (on
        this replica's agents; not stored); None after QUIET_SECONDS without either (a keep-alive)."""
        await self._require_run(run_id)
        return self._follow(run_id, after)

    async def _follow(self, run_id: str, last: int) -> AsyncIterator[RunEvent | ReplyPiece | None]:
        with self.live_replies.follow(run_id) if self.live_replies else contextlib.nullcontext(None) as pieces:
            async for item in self._follow_stored(run_id, last, pieces):
                yield item

    async def _follow_stored(
        self, run_id: str, last: int, pieces: asyncio.Queue[ReplyPiece] | None
    ) -> AsyncIterator[RunEvent | ReplyPiece | None]:
        spoke = time.monotonic()
        while True:
            changed = self._workflows.changed(run_id)
            events = await self._store.list_events(run_id, last, _EVENT_BATCH)
            for event in events:
                last = event.id or last
                yield event
            if events:
                spoke = time.monotonic()
                continue
            run = await self._store.get_run(run_id)
            if run is None or run.state.terminal:
                # The commit that ended the run may have landed after the look above: the run and
                # its last events are written together, so one more look finds every event before the end.
                while rest := await self._store.list_events(run_id, last, _EVENT_BATCH):
                    for event in rest:
                        last = event.id or last
                        yield event
                return
            # A run driven by another replica changes without this one hearing of it: look again soon.
            wait = QUIET_SECONDS if self._workflows.drives(run_id) else ELSEWHERE_POLL_SECONDS
            # Reply pieces go out as they come; only a change of the run reads the store again.
            async for piece in _pieces_until(changed, pieces, wait):
                spoke = time.monotonic()
                yield piece
            if time.monotonic() - spoke >= QUIET_SECONDS:
                spoke = time.monotonic()
                yield None

    async def _require_run(self, run_id: str) -> None:
        if await self._store.get_run(run_id) is None:
            raise NotFound(f"run {run_id} not found")

    # -- objects, tokens, audit, replicas ----------------------------------------
    async def objects(self, kind: str, namespace: str | None, limit: int, after: str | None) -> list[StoredObject]:
        items = [self._with_status(item) for item in await self._registry.list(kind, namespace, limit, after)]
        return await self.model_status.with_status(items)

    async def object(self, kind: str, namespace: str, name: str) -> StoredObject:
        [found] = await self.model_status.with_status(
            [self._with_status(await self._registry.get(kind, namespace, name))]
        )
        return found

    def _with_status(self, stored: StoredObject) -> StoredObject:
        """A ToolServer with the tools this manager listed on it as its status."""
        if stored.kind != TOOL_SERVER or self._tool_catalog is None:
            return stored
        status = self._tool_catalog.status(stored.namespace, stored.name)
        return stored if status is None else dataclasses.replace(stored, body={**stored.body, "status": status})

    async def tokens(self) -> list[TokenRecord]:
        return await self._tokens.list()

    async def audit(self, limit: int, before_id: int | None) -> list[AuditEntry]:
        return await self._store.list_audit(limit, before_id)

    async def replicas(self) -> list[dict[str, Any]]:
        """The manager replicas sharing the database (none with the embedded store)."""
        return await self._housekeeping.replicas()


def _step_task_id(run: Run, step: StepRun) -> str | None:
    if step.items is not None or step.started_at is None or step.state is StepState.WAITING_APPROVAL:
        return None
    return f"{run.id}.{step.name}.0.{step.retries}"


async def _pieces_until(
    changed: asyncio.Event, pieces: asyncio.Queue[ReplyPiece] | None, timeout: float
) -> AsyncIterator[ReplyPiece]:
    """The reply pieces that come until the run changes or `timeout` has passed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not changed.is_set() and (left := deadline - loop.time()) > 0:
        waits: set[asyncio.Future[Any]] = {asyncio.ensure_future(changed.wait())}
        getter = asyncio.ensure_future(pieces.get()) if pieces is not None else None
        if getter is not None:
            waits.add(getter)
        done, _ = await asyncio.wait(waits, timeout=left, return_when=asyncio.FIRST_COMPLETED)
        for waiting in waits - done:
            waiting.cancel()  # a cancelled get leaves its piece in the queue
        if getter is not None and getter in done:
            yield getter.result()
