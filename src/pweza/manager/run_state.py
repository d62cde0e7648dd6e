"""The in-memory picture of one active run (rebuilt from the store after a restart), and what
one engine action changed in it."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from pweza.domain.runs import Run, RunEvent, StepError, StepRun
from pweza.domain.tasks import TaskState
from pweza.domain.workflows import Step, WorkflowSpec


@dataclass(slots=True)
class Item:
    """One task of a step (a plain step has one; a foreach step one per element)."""

    index: int
    value: Any = None
    task_id: str | None = None
    state: TaskState | None = None
    output: Any = None
    error: StepError | None = None
    attempts: int = 0

    @property
    def finished(self) -> bool:
        return self.state is not None and self.state.terminal


@dataclass(slots=True)
class ActiveRun:
    run: Run
    spec: WorkflowSpec
    steps: dict[str, StepRun]
    items: dict[str, list[Item]] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    timers: list[asyncio.TimerHandle] = field(default_factory=list)

    def step_spec(self, name: str) -> Step:
        for step in self.spec.steps:
            if step.name == name:
                return step
        raise KeyError(name)

    def variables(self, item: Item | None = None) -> dict[str, Any]:
        """What expressions see: inputs, finished steps' outputs and states, the run, the item."""
        steps = {
            name: {"output": step.output, "state": step.state.value}
            for name, step in self.steps.items()
            if step.state.finished
        }
        variables: dict[str, Any] = {
            "inputs": self.run.inputs,
            "steps": steps,
            "run": {"id": self.run.id, "workflow": self.run.workflow, "namespace": self.run.namespace},
        }
        if item is not None:
            variables["item"] = item.value
            variables["index"] = item.index
        return variables

    def task_id(self, step: str, index: int) -> str:
        # Deterministic, so a step started twice (a crash between start and record) reuses its task.
        return f"{self.run.id}.{step}.{index}.{self.steps[step].retries}"


class Changes:
    """What one engine action changed, saved in one transaction."""

    def __init__(self, active: ActiveRun) -> None:
        self.active = active
        self.run_changed = False
        self.steps: dict[str, StepRun] = {}
        self.events: list[RunEvent] = []
        self.submit: list[tuple[str, Item]] = []
        # Only after a restart may a step's tasks already exist; then they are adopted, not re-created.
        self.recovering = False

    def step(self, step: StepRun, event: str, **data: Any) -> None:
        self.steps[step.name] = step
        self.events.append(RunEvent(step.run_id, time.time(), event, step.name, data))

    def run(self, event: str, **data: Any) -> None:
        self.run_changed = True
        self.events.append(RunEvent(self.active.run.id, time.time(), event, None, data))
