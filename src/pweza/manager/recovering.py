"""How the workflow engine gets a run back into memory and carries on driving it.

Three ways lead here: the manager restarted (every running run is loaded), another replica
died or handed a run over (`adopt`, `load`), and a save whose outcome is unknown because the
store went away in the middle of it. In the last case the copy in memory may hold changes the
store never got (or got without telling us), so the copy is dropped and the run is loaded again
from the store as soon as the store answers: the store's picture is the one that counts, and
recovery redoes whatever the lost save was about (a finished task is found finished, a step
whose tasks were never stored gets them now, with the same deterministic ids).

The engine holds one `RunRecovery` (`engine.recovery`), which drives what it loads through the
engine's own steps.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import structlog

from pweza.domain.runs import Run, StepState
from pweza.domain.workflows import Workflow
from pweza.manager.ownership import RunOwnership
from pweza.manager.run_state import ActiveRun, Changes, Item
from pweza.store.protocol import Store

if TYPE_CHECKING:
    from pweza.manager.workflows import WorkflowEngine

log = structlog.get_logger(__name__)
_RELOAD_FIRST_DELAY = 0.5
_RELOAD_MAX_DELAY = 10.0


class RunRecovery:
    """Loading runs from the store and resuming them, for the engine."""

    def __init__(self, engine: WorkflowEngine, store: Store, ownership: RunOwnership) -> None:
        self._engine = engine
        self._store = store
        self._ownership = ownership
        # The engine's own tables (the same objects): the runs it drives, and whose task is whose.
        self._active = engine._active
        self._owners = engine._owners
        self._loads = asyncio.Lock()
        self._reloading: set[str] = set()

    # -- entry points ----------------------------------------------------------
    async def adopt(self, run_ids: list[str]) -> None:
        """Drive runs this replica now owns (their replica died, or the database says they are
        ours and we had lost track of them): resume each from the store."""
        loaded = 0
        for run_id in run_ids:
            if run_id in self._active:
                continue
            if await self.load(run_id) is not None:
                loaded += 1
            else:
                log.info("run not adopted: it has ended or another replica drives it", run=run_id)
        if loaded:
            log.info("adopted runs", runs=loaded)

    async def resync(self) -> None:
        """Catch up on task results whose notification may have been missed."""
        watched = list(self._owners)
        if watched:
            for task in await self._store.get_tasks(watched):
                if task.state.terminal:
                    self._engine._on_task_finished(task)

    async def load(self, run_id: str) -> ActiveRun | None:
        """This replica's copy of a running run, loaded from the store and resumed if it is not in
        memory yet; None when the run has ended or (with several replicas) another replica owns it.
        Loads happen one at a time, so two callers never build two copies of one run."""
        async with self._loads:
            active = self._active.get(run_id)
            if active is not None:
                return active
            run = await self._store.get_run(run_id)
            if run is None or run.state.terminal:
                return None
            if not self._ownership.drives(run):
                return None
            return await self.load_and_recover(run)

    async def load_and_recover(self, run: Run) -> ActiveRun:
        steps = {step.name: step for step in await self._store.get_steps(run.id)}
        spec = Workflow.model_validate({"metadata": {"name": run.workflow}, "spec": run.spec}).spec
        active = ActiveRun(run, spec, steps)
        run.owner = self._ownership.owner
        self._active[run.id] = active
        async with active.lock:
            await self._recover(active)
        return active

    # -- a save with an unknown outcome -----------------------------------------
    def reload_later(self, active: ActiveRun) -> None:
        """The store failed in the middle of acting on this run: drop the copy (it may differ from
        the store now) and load the run again once the store answers."""
        self._ownership.lost_track()
        run_id = active.run.id
        if self._active.get(run_id) is active:
            self._engine._forget(active)
        if run_id not in self._reloading:
            self._reloading.add(run_id)
            self._engine._spawn(self._reload(run_id))

    async def _reload(self, run_id: str) -> None:
        delay = _RELOAD_FIRST_DELAY
        try:
            while True:
                await asyncio.sleep(delay)
                try:
                    if await self.load(run_id) is not None:
                        log.info("run reloaded from the store after a failed save", run=run_id)
                    return
                except Exception as error:  # noqa: BLE001 - the store is still away: keep trying
                    log.warning("reloading a run failed; trying again", run=run_id, error=str(error) or repr(error))
                delay = min(delay * 2, _RELOAD_MAX_DELAY)
        finally:
            self._reloading.discard(run_id)

    # -- resuming --------------------------------------------------------------
    async def _recover(self, active: ActiveRun) -> None:
        changes = Changes(active)
        changes.recovering = True
        self._engine._arm_deadline(active)
        for spec in active.spec.steps:
            step = active.steps[spec.name]
            if step.state is StepState.WAITING_APPROVAL:
                self._engine._arm_approval_deadline(active, step)
            if step.state is not StepState.RUNNING:
                continue
            values: list[Any] = [None]
            if spec.foreach is not None:
                values = list(await self._engine._expressions.evaluate(spec.foreach, active.variables()))
            items = [Item(index, value) for index, value in enumerate(values)]
            active.items[spec.name] = items
            ids = [active.task_id(spec.name, item.index) for item in items]
            # Listen for these before reading them: a task that finishes in between is then
            # either read as finished here or heard of afterwards, never missed.
            for item, task_id in zip(items, ids, strict=True):
                self._owners[task_id] = (active.run.id, spec.name, item.index)
            known = {task.id: task for task in await self._store.get_tasks(ids)}
            cap = spec.parallelism or len(items)
            for item, task_id in zip(items, ids, strict=True):
                if task_id in known:
                    item.task_id = task_id
                else:
                    self._owners.pop(task_id, None)
            unsubmitted = [item for item in items if item.task_id is None]
            running = sum(1 for item in items if item.task_id is not None)
            changes.submit.extend((spec.name, item) for item in unsubmitted[: max(0, cap - running)])
            if not items:
                self._engine._finish_step(active, step, StepState.SUCCEEDED, changes, output=[])
            for task_id, task in known.items():
                if task.state.terminal:
                    self._engine._spawn(self._engine._item_finished(self._owners[task_id], task))
        changes.run("RunResumed")
        await self._engine._advance(active, changes)
