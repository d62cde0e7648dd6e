"""The workflow engine: drives runs through their DAG, durably.

Every change is written to the store before anything is done because of it: a step is
recorded as running before its tasks are submitted, and its tasks have deterministic
ids, so a manager killed at any instant resumes each run from the store without
losing a step or running one twice (except an attempt that was in flight, which the
dispatcher re-runs as a new, visible attempt).

Which runs this process drives, and how a save is applied, is the run ownership's business
(`pweza.manager.ownership`): every running run for one manager alone; with several replicas on
one PostgreSQL database, those this replica owns (`runs.owner`): the one that started it, one
that received a command for it, or one that adopted it after its replica died. Loading a run
back and resuming it is `pweza.manager.recovering`.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
import weakref
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import structlog

from pweza.domain import expressions, scheduling
from pweza.domain.durations import parse_duration
from pweza.domain.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge
from pweza.domain.limits import check_payload
from pweza.domain.manifests import AgentPool, AgentTemplate
from pweza.domain.runs import Run, RunState, StepApproval, StepError, StepRun, StepState, resolve_inputs
from pweza.domain.tasks import Attempt, Task, TaskState
from pweza.domain.workflows import Step, Workflow
from pweza.manager.clock import SYSTEM_CLOCK, Clock
from pweza.manager.dispatching import Dispatcher
from pweza.manager.expression_sandbox import ExpressionSandbox
from pweza.manager.intake import resolve_task
from pweza.manager.metrics import Metrics
from pweza.manager.ownership import RunOwnership, RunWrite
from pweza.manager.recovering import RunRecovery
from pweza.manager.registry import Registry
from pweza.manager.run_state import ActiveRun, Changes, Item
from pweza.manager.sequences import SequenceAllocator
from pweza.manager.sessions import TaskRequest
from pweza.store.protocol import Store

log = structlog.get_logger(__name__)
_TASK_TO_STEP = {
    TaskState.SUCCEEDED: StepState.SUCCEEDED,
    TaskState.FAILED: StepState.FAILED,
    TaskState.CANCELLED: StepState.CANCELLED,
    TaskState.TIMED_OUT: StepState.TIMED_OUT,
}


class WorkflowEngine:
    def __init__(
        self,
        store: Store,
        dispatcher: Dispatcher,
        registry: Registry,
        metrics: Metrics,
        ownership: RunOwnership,
        *,
        payload_limit: int,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._store = store
        self._clock = clock
        self._payload_limit = payload_limit
        self._ownership = ownership
        self._dispatcher = dispatcher
        self._registry = registry
        self._metrics = metrics
        self._expressions = ExpressionSandbox()
        self._active: dict[str, ActiveRun] = {}
        self._owners: dict[str, tuple[str, str, int]] = {}
        # Held only by the streams waiting on a run: the entry goes with the last of them (a
        # stream of a run that ends, or is driven elsewhere, would otherwise leave it for good).
        self._notify: weakref.WeakValueDictionary[str, asyncio.Event] = weakref.WeakValueDictionary()
        self._background: set[asyncio.Task[None]] = set()
        self._seq = SequenceAllocator()
        self.recovery = RunRecovery(self, store, ownership)
        dispatcher.add_listener(self._on_task_finished, interest=self._owners.__contains__)

    # -- lifecycle -------------------------------------------------------------
    async def start(self) -> None:
        self._seq = await self._ownership.start(self.recovery.load_and_recover)

    async def stop(self) -> None:
        for active in self._active.values():
            for timer in active.timers:
                timer.cancel()
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self._expressions.close()

    def drives(self, run_id: str) -> bool:
        """Whether this replica drives the run now (its changes wake `changed` at once)."""
        return run_id in self._active

    def changed(self, run_id: str) -> asyncio.Event:
        """Set whenever the run's history grows; the event stream waits on it, and keeps it."""
        event = self._notify.get(run_id)
        if event is None:
            event = self._notify[run_id] = asyncio.Event()
        return event

    @property
    def followed(self) -> int:
        """How many runs a stream waits on now."""
        return len(self._notify)

    # -- commands --------------------------------------------------------------
    async def _check_pools(self, namespace: str, workflow_name: str, workflow: Workflow) -> None:
        """Refuse a run whose steps name a pool that does not exist, before anything is written:
        otherwise it starts, fails at its first such step, and `pweza run --detach` says nothing."""
        for index, step in enumerate(workflow.spec.steps):
            if step.agent is None or step.agent.pool is None:
                continue
            try:
                await self._registry.pool_policy(namespace, step.agent.pool)
            except (NotFound, InvalidInput) as error:
                raise InvalidInput(
                    f"Workflow {namespace}/{workflow_name} step {step.name!r}: {error.detail}; "
                    "apply the pool (and its template) before starting a run",
                    field=f"spec.steps[{index}].agent.pool",
                ) from None

    async def start_run(self, namespace: str, workflow_name: str, inputs: dict[str, Any]) -> Run:
        stored = await self._registry.get("Workflow", namespace, workflow_name)
        workflow = Workflow.model_validate(stored.body)
        resolved = resolve_inputs(workflow.spec, inputs)
        check_payload(resolved, "inputs", self._payload_limit)
        await self._check_pools(namespace, workflow_name, workflow)
        await self._seq.reserve(1)
        now = self._clock.time()
        run = Run(
            id=uuid.uuid4().hex[:16],
            seq=self._seq.next(),
            namespace=namespace,
            workflow=workflow_name,
            generation=stored.generation,
            spec=stored.body["spec"],
            inputs=resolved,
            created_at=now,
            owner=self._ownership.owner,
        )
        if workflow.spec.timeout:
            run.deadline = now + parse_duration(workflow.spec.timeout)
        steps = {step.name: StepRun(run.id, step.name) for step in workflow.spec.steps}
        active = ActiveRun(run, workflow.spec, steps)
        async with active.lock:
            changes = Changes(active)
            changes.run("RunStarted", generation=run.generation, inputs=resolved)
            changes.steps.update(steps)
            self._active[run.id] = active
            self._arm_deadline(active)
            await self._advance(active, changes)
        self._metrics.runs.labels(workflow=workflow_name, state="started").inc()
        return run

    async def cancel(self, run_id: str, reason: str = "cancelled by request") -> Run:
        active = await self._require_active(run_id)
        async with active.lock:
            await self._end_run(active, Changes(active), RunState.CANCELLED, reason)
        return active.run

    async def retry(self, run_id: str, step_name: str | None = None) -> Run:
        if run_id not in self._active:
            with contextlib.suppress(Conflict):
                await self._require_active(run_id)  # running on another replica: drive it here
        if run_id in self._active:
            active = self._active[run_id]
            if step_name is None:
                raise Conflict(f"run {run_id} is still running; retry a failed step or wait for it to end")
        else:
            run = await self._store.get_run(run_id)
            if run is None:
                raise NotFound(f"run {run_id} not found")
            if run.state is RunState.SUCCEEDED:
                raise Conflict(f"run {run_id} succeeded; there is nothing to retry")
            steps = {step.name: step for step in await self._store.get_steps(run_id)}
            spec = Workflow.model_validate({"metadata": {"name": run.workflow}, "spec": run.spec}).spec
            active = ActiveRun(run, spec, steps)
            run.owner = self._ownership.owner
        async with active.lock:
            targets = scheduling.retried(active.steps, step_name, run_id)
            changes = Changes(active)
            for name in targets:
                step = active.steps[name]
                step.state, step.output, step.error = StepState.PENDING, None, None
                step.started_at = step.finished_at = None
                step.retries += 1
                step.items = None
                if step.approval is not None and step.approval.decision == "rejected":
                    step.approval = None
                active.items.pop(name, None)
                changes.step(step, "StepReset", retries=step.retries)
            run = active.run
            if run.state.terminal:
                run.state, run.error, run.finished_at, run.outputs = RunState.RUNNING, None, None, None
                run.retries += 1
                if active.spec.timeout:
                    run.deadline = self._clock.time() + parse_duration(active.spec.timeout)
                self._active[run.id] = active
                self._arm_deadline(active)
            changes.run("RunRetried", steps=targets)
            await self._advance(active, changes)
        return active.run

    async def decide(self, run_id: str, step_name: str, approve: bool, who: str, comment: str = "") -> Run:
        active = await self._require_active(run_id)
        async with active.lock:
            step = active.steps.get(step_name)
            if step is None:
                raise NotFound(f"run {run_id} has no step {step_name!r}", field="step")
            if step.state is not StepState.WAITING_APPROVAL:
                raise Conflict(f"step {step_name!r} is {step.state.value}, not waiting for approval")
            changes = Changes(active)
            self._record_decision(active, step, approve, who, comment, changes)
            await self._advance(active, changes)
        return active.run

    async def _require_active(self, run_id: str) -> ActiveRun:
        active = self._active.get(run_id)
        if active is None and await self._ownership.take(run_id):
            # Driven by another replica (or by nobody): this one took it over to act on the command.
            active = await self.recovery.load(run_id)
        if active is None:
            # Not driven here: either no such run (404) or one that has ended (409, its state says why).
            run = await self._store.get_run(run_id)
            if run is None:
                raise NotFound(f"run {run_id} not found")
            if not run.state.terminal:  # being loaded again, or moving between replicas, just now
                raise Conflict(f"run {run_id} is not ready for commands on this replica yet; try again")
            raise Conflict(f"run {run_id} is {run.state.value}, not running")
        return active

    def _current(self, active: ActiveRun) -> bool:
        """Whether `active` is still this replica's copy of the run (not dropped or replaced)."""
        return self._active.get(active.run.id) is active

    # -- the engine proper -----------------------------------------------------
    async def _advance(self, active: ActiveRun, changes: Changes) -> None:
        """Start what can start and finish the run when it is done; then save everything, the
        new tasks included, in one transaction, and only then hand the tasks to the dispatcher.
        If the store fails on the way, the run is loaded again from the store when it answers."""
        try:
            await self._advance_and_save(active, changes)
        except Exception:
            self.recovery.reload_later(active)
            raise

    async def _advance_and_save(self, active: ActiveRun, changes: Changes) -> None:
        new_tasks: list[Task] = []
        adopted: list[Task] = []
        if not active.run.state.terminal:
            await self._schedule(active, changes)  # which ends the run when it is over
        while changes.submit and not active.run.state.terminal:
            work, changes.submit = changes.submit, []
            prepared, found = await self._prepare(active, work, changes)
            new_tasks += prepared
            adopted += found
            await self._maybe_finish(active, changes)
        if active.run.state.terminal:
            new_tasks = []  # a step failed while others were being prepared: start nothing more
        # Tasks that can start now are given to agents already, and their attempts saved with
        # them: one commit between a step's end and the next step's start.
        handout = self._dispatcher.hand_out(new_tasks)
        try:
            saved = await self._save(changes, new_tasks, handout.attempts)
        except BaseException:
            self._dispatcher.take_back(handout)
            raise
        if not saved:
            self._dispatcher.take_back(handout)
            return
        self._dispatcher.enqueue(new_tasks)
        self._dispatcher.deliver(handout)
        for task in adopted:
            self._on_task_finished(task)

    async def _schedule(self, active: ActiveRun, changes: Changes) -> None:
        """Do what `scheduling.decide` says, answering its questions as they come."""
        answers: dict[scheduling.Evaluate, Any] = {}
        resume = scheduling.START
        specs: dict[str, Step] = {}  # by name, filled when an action first needs a step's spec
        while True:
            plan = scheduling.decide(active.spec, active.steps, answers, resume)
            for action in plan.actions:
                if not specs and not isinstance(action, scheduling.FinishRun):
                    specs = {step.name: step for step in active.spec.steps}
                await self._apply(active, specs, action, answers, changes)
            if plan.resume is None:
                return
            resume = plan.resume

    async def _apply(
        self,
        active: ActiveRun,
        specs: dict[str, Step],
        action: scheduling.Action,
        answers: dict[scheduling.Evaluate, Any],
        changes: Changes,
    ) -> None:
        match action:
            case scheduling.Evaluate(step=name, expression=which):
                spec = specs[name]
                source = spec.when if which == "when" else spec.foreach
                assert source is not None
                try:
                    answers[action] = await self._expressions.evaluate(source, active.variables())
                except expressions.ExpressionError as error:
                    answers[action] = error
            case scheduling.StartStep(step=name, items=items):
                values = answers[scheduling.Evaluate(name, "foreach")] if items is not None else [None]
                self._start_step(active, active.steps[name], specs[name], values, changes)
            case scheduling.SucceedStep(step=name, output=output):
                self._finish_step(active, active.steps[name], StepState.SUCCEEDED, changes, output=output)
            case scheduling.SkipStep(step=name, reason=reason):
                self._finish_step(active, active.steps[name], StepState.SKIPPED, changes, reason=reason)
            case scheduling.FailStep(step=name, error=error):
                self._fail_step(active, active.steps[name], error, changes)
            case scheduling.RequestApproval(step=name):
                self._request_approval(active, active.steps[name], specs[name], changes)
            case scheduling.FinishRun():
                await self._finish_run(active, action, changes)
            case scheduling.CancelStep():  # only ending a run cancels steps (`_end_run_now`)
                raise AssertionError(f"unexpected {action}")

    def _start_step(self, active: ActiveRun, step: StepRun, spec: Step, values: list[Any], changes: Changes) -> None:
        step.state = StepState.RUNNING
        step.started_at = self._clock.time()
        step.items = len(values) if spec.foreach is not None else None
        items = [Item(index, value) for index, value in enumerate(values)]
        active.items[step.name] = items
        changes.step(step, "StepStarted", items=step.items)
        cap = spec.parallelism or len(items)
        changes.submit.extend((step.name, item) for item in items[:cap])

    def _request_approval(self, active: ActiveRun, step: StepRun, spec: Step, changes: Changes) -> None:
        assert spec.approval is not None
        step.state = StepState.WAITING_APPROVAL
        step.approval = StepApproval.requested(spec.approval, self._clock.time())
        step.started_at = step.approval.requested_at
        changes.step(step, "ApprovalRequested", message=spec.approval.message, deadline=step.approval.deadline)
        self._arm_approval_deadline(active, step)

    def _record_decision(
        self, active: ActiveRun, step: StepRun, approve: bool, who: str, comment: str, changes: Changes
    ) -> None:
        # A waiting step has asked; an empty request stands in should a stored one be missing.
        asked = step.approval or StepApproval("", 0.0)
        step.approval = asked.decided(approve, who, comment, self._clock.time())
        step.state = StepState.PENDING
        changes.step(step, "ApprovalDecided", decision=step.approval.decision, by=who, comment=comment)
        if not approve:
            self._fail_step(active, step, StepError("Rejected", comment or f"rejected by {who}"), changes)

    def _finish_step(
        self,
        active: ActiveRun,
        step: StepRun,
        state: StepState,
        changes: Changes,
        *,
        output: Any = None,
        reason: str = "",
    ) -> None:
        step.state = state
        step.output = output
        step.finished_at = self._clock.time()
        event = "Step" + state.value.title().replace("_", "")
        if reason:
            changes.step(step, event, reason=reason)
        else:
            changes.step(step, event)
        self._metrics.steps.labels(workflow=active.run.workflow, state=state.value).inc()

    def _fail_step(self, active: ActiveRun, step: StepRun, error: StepError, changes: Changes) -> None:
        step.error = error
        self._finish_step(active, step, StepState.FAILED, changes, reason=error.message)

    async def _maybe_finish(self, active: ActiveRun, changes: Changes) -> None:
        ending = scheduling.outcome(active.spec, active.steps)
        if ending is not None:
            await self._finish_run(active, ending, changes)

    async def _finish_run(self, active: ActiveRun, ending: scheduling.FinishRun, changes: Changes) -> None:
        if ending.state is RunState.SUCCEEDED:
            try:
                active.run.outputs = await self._expressions.render(active.spec.outputs, active.variables())
            except expressions.ExpressionError as error:
                self._end_run_now(active, changes, RunState.FAILED, f"outputs: {error}")
                return
        self._end_run_now(active, changes, ending.state, ending.reason)

    def _end_run_now(self, active: ActiveRun, changes: Changes, state: RunState, error: str | None) -> None:
        run = active.run
        run.state = state
        run.error = error
        run.finished_at = self._clock.time()
        for timer in active.timers:
            timer.cancel()
        active.timers.clear()
        for cancel in scheduling.end_run(active.steps, state):
            step = active.steps[cancel.step]
            for item in active.items.get(cancel.step, []):
                if item.task_id and not item.finished:
                    self._spawn(self._cancel_task(item.task_id, cancel.reason))
            step.state = StepState.CANCELLED
            step.finished_at = run.finished_at
            changes.step(step, "StepCancelled", reason=cancel.reason)
        changes.run(f"Run{state.value.title().replace('_', '')}", error=error, outputs=run.outputs)
        self._active.pop(run.id, None)
        for task_id in [t for t, owner in self._owners.items() if owner[0] == run.id]:
            del self._owners[task_id]
        self._metrics.runs.labels(workflow=run.workflow, state=state.value).inc()

    async def _end_run(self, active: ActiveRun, changes: Changes, state: RunState, reason: str) -> None:
        if active.run.state.terminal:
            return
        self._end_run_now(active, changes, state, reason)
        try:
            await self._save(changes)
        except Exception:
            self.recovery.reload_later(active)  # the run may still be running in the store
            raise

    async def _cancel_task(self, task_id: str, reason: str) -> None:
        with contextlib.suppress(Conflict, NotFound):
            await self._dispatcher.cancel(task_id, reason)

    async def _save(
        self, changes: Changes, new_tasks: list[Task] | None = None, new_attempts: Sequence[Attempt] = ()
    ) -> bool:
        """Save what changed; False when another replica drives the run now (nothing was saved
        and this replica's copy is dropped)."""
        active = changes.active
        if not changes.run_changed and not changes.steps and not changes.events and not new_tasks:
            return True
        run = active.run if changes.run_changed or changes.events else None
        steps = list(changes.steps.values())
        write = RunWrite(active.run.id, run, steps, changes.events, new_tasks or (), new_attempts)
        if not await self._ownership.save(write):
            log.info("run is driven by another replica now; dropping this copy", run=active.run.id)
            self._forget(active)
            return False
        event = self._notify.pop(active.run.id, None)
        if event is not None:
            event.set()
        return True

    def _forget(self, active: ActiveRun) -> None:
        """Stop driving this copy of the run: its timers, its place in memory, its tasks' listeners."""
        for timer in active.timers:
            timer.cancel()
        active.timers.clear()
        if self._active.get(active.run.id) is active:
            del self._active[active.run.id]
        for task_id in [t for t, owner in self._owners.items() if owner[0] == active.run.id]:
            del self._owners[task_id]

    # -- tasks -----------------------------------------------------------------
    async def _resolve_pool(self, active: ActiveRun, spec: Step) -> str:
        agent = spec.agent
        assert agent is not None
        namespace = active.run.namespace
        if agent.pool is not None:
            await self._registry.pool_policy(namespace, agent.pool)
            return agent.pool
        pools = await self._registry.list("AgentPool", namespace, 10_000)
        for stored in pools:
            pool = AgentPool.model_validate(stored.body)
            if agent.template is not None and pool.spec.template_ref == agent.template:
                return pool.metadata.name
            if agent.capabilities is not None:
                template = await self._registry.find("AgentTemplate", namespace, pool.spec.template_ref)
                if template is not None:
                    offered = set(AgentTemplate.model_validate(template.body).spec.capabilities)
                    if set(agent.capabilities) <= offered:
                        return pool.metadata.name
        wanted = f"template {agent.template!r}" if agent.template else f"capabilities {agent.capabilities}"
        raise NotFound(f"no AgentPool in namespace {namespace!r} provides {wanted}")

    async def _prepare(
        self, active: ActiveRun, work: list[tuple[str, Item]], changes: Changes
    ) -> tuple[list[Task], list[Task]]:
        """Tasks for the given items (not yet stored), and already finished ones found after a restart."""
        by_step: dict[str, list[Item]] = defaultdict(list)
        for name, item in work:
            item.task_id = active.task_id(name, item.index)
            self._owners[item.task_id] = (active.run.id, name, item.index)
            by_step[name].append(item)
        existing: dict[str, Task] = {}
        if changes.recovering:
            ids = [item.task_id for _, item in work if item.task_id]
            existing = {task.id: task for task in await self._store.get_tasks(ids)}
        prepared: list[Task] = []
        for name, items in by_step.items():
            spec = active.step_spec(name)
            try:
                pool = await self._resolve_pool(active, spec)
                requests = [
                    await resolve_task(
                        self._registry,
                        self._dispatcher,
                        TaskRequest(
                            namespace=active.run.namespace,
                            pool=pool,
                            input=await self._expressions.render(spec.input, active.variables(item)),
                            timeout_seconds=parse_duration(spec.timeout) if spec.timeout else None,
                            max_retries=spec.retry.limit if spec.retry else None,
                            labels={"run": active.run.id, "step": name, "index": str(item.index)},
                            id=item.task_id,
                            retry=spec.retry,
                        ),
                        payload_limit=self._payload_limit,
                        field=f"steps.{name}[{item.index}]",
                    )
                    for item in items
                    if item.task_id not in existing
                ]
            except (NotFound, InvalidInput, PayloadTooLarge, expressions.ExpressionError) as error:
                for item in items:
                    self._owners.pop(item.task_id or "", None)
                step = active.steps[name]
                if step.state is StepState.RUNNING:
                    message = getattr(error, "detail", str(error))
                    kind = "PayloadTooLarge" if isinstance(error, PayloadTooLarge) else "StepConfigurationError"
                    self._fail_step(active, step, StepError(kind, message), changes)
                continue
            await self._dispatcher.reserve(len(requests))
            prepared += self._dispatcher.prepare(requests)
        return prepared, [task for task in existing.values() if task.state.terminal]

    def _on_task_finished(self, task: Task) -> None:
        owner = self._owners.get(task.id)
        if owner is not None:
            self._spawn(self._item_finished(owner, task))

    async def _item_finished(self, owner: tuple[str, str, int], task: Task) -> None:
        run_id, name, index = owner
        active = self._active.get(run_id)
        if active is None:
            return
        async with active.lock:
            if not self._current(active):
                return
            items = active.items.get(name)
            step = active.steps[name]
            if items is None or index >= len(items) or step.state is not StepState.RUNNING:
                return
            item = items[index]
            if item.finished or item.task_id != task.id:
                return
            self._owners.pop(task.id, None)
            item.state, item.output, item.attempts = task.state, task.output, task.attempts
            item.error = None if task.error is None else StepError.of_task(task.error)
            changes = Changes(active)
            spec = active.step_spec(name)
            if task.state is not TaskState.SUCCEEDED:
                for other in items:
                    if other.task_id and not other.finished and other is not item:
                        self._spawn(self._cancel_task(other.task_id, f"step {name} failed"))
                step.attempts = sum(i.attempts for i in items)
                step.error = item.error
                where = f" (item {index})" if spec.foreach is not None else ""
                self._finish_step(
                    active,
                    step,
                    _TASK_TO_STEP[task.state],
                    changes,
                    reason=f"{'' if item.error is None else item.error.message}{where}",
                )
            else:
                waiting = [i for i in items if i.task_id is None]
                running = sum(1 for i in items if i.task_id is not None and not i.finished)
                cap = spec.parallelism or len(items)
                changes.submit.extend((name, i) for i in waiting[: max(0, cap - running)])
                if all(i.finished for i in items):
                    step.attempts = sum(i.attempts for i in items)
                    output = [i.output for i in items] if spec.foreach is not None else item.output
                    self._finish_step(active, step, StepState.SUCCEEDED, changes, output=output)
            await self._advance(active, changes)

    # -- timers and recovery ---------------------------------------------------
    def _arm_deadline(self, active: ActiveRun) -> None:
        deadline = active.run.deadline
        if deadline is None:
            return
        delay = max(0.0, deadline - self._clock.time())

        def fire() -> None:
            self._spawn(self._timeout_run(active))

        active.timers.append(self._clock.call_later(delay, fire))

    async def _timeout_run(self, active: ActiveRun) -> None:
        async with active.lock:
            if not self._current(active):
                return
            await self._end_run(
                active, Changes(active), RunState.TIMED_OUT, f"run exceeded its timeout of {active.spec.timeout}"
            )

    def _arm_approval_deadline(self, active: ActiveRun, step: StepRun) -> None:
        deadline = None if step.approval is None else step.approval.deadline
        if deadline is None:
            return

        async def expire() -> None:
            async with active.lock:
                if not self._current(active):
                    return
                if step.state is StepState.WAITING_APPROVAL and not active.run.state.terminal:
                    changes = Changes(active)
                    self._record_decision(active, step, False, "deadline", "approval deadline passed", changes)
                    await self._advance(active, changes)

        delay = max(0.0, float(deadline) - self._clock.time())
        active.timers.append(self._clock.call_later(delay, lambda: self._spawn(expire())))

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            # A failed save has already scheduled the run's reload; this says why.
            log.warning(
                "workflow engine action failed", error=str(error) or repr(error), error_type=type(error).__name__
            )
