"""The workflow-run part of the Store contract, on every backend."""

from __future__ import annotations

import time

from pweza.domain.records import RunFilter
from pweza.domain.runs import Run, RunEvent, RunState, StepApproval, StepRun, StepState
from pweza.domain.tasks import Attempt, Task, TaskState
from pweza.store.protocol import Store


def make_run(number: int, workflow: str = "wf", state: RunState = RunState.RUNNING) -> Run:
    return Run(
        id=f"run-{number:03d}",
        seq=number,
        namespace="default",
        workflow=workflow,
        generation=1,
        spec={"steps": [{"name": "a"}]},
        inputs={"n": number},
        state=state,
        created_at=time.time(),
    )


async def test_a_run_its_steps_events_and_tasks_are_saved_together(store: Store) -> None:
    run = make_run(1)
    step = StepRun(run.id, "a", state=StepState.RUNNING, started_at=1.0, items=3)
    task = Task(id="run-001.a.0.0", namespace="default", pool="p", input={"x": 1}, seq=1, created_at=1.0)
    await store.save_run(run, [step], [RunEvent(run.id, 1.0, "RunStarted", None, {"k": 1})], [task])
    loaded = await store.get_run(run.id)
    assert loaded is not None and loaded.inputs == {"n": 1} and loaded.spec == run.spec
    assert [(s.name, s.state, s.items) for s in await store.get_steps(run.id)] == [("a", StepState.RUNNING, 3)]
    assert [t.id for t in await store.get_tasks(["run-001.a.0.0", "missing"])] == ["run-001.a.0.0"]
    events = await store.list_events(run.id)
    assert [(e.type, e.data) for e in events] == [("RunStarted", {"k": 1})]


async def test_a_step_task_handed_out_at_once_is_saved_with_its_attempt(store: Store) -> None:
    run = make_run(9)
    task = Task(id="run-009.a.0.0", namespace="default", pool="p", input={}, seq=1, created_at=1.0)
    task.state, task.agent_id, task.attempts = TaskState.ASSIGNED, "agent-a", 1
    await store.save_run(run, [StepRun(run.id, "a")], [], [task], [Attempt(task.id, 1, "agent-a", started_at=1.0)])
    assert [(t.state, t.agent_id) for t in await store.get_tasks([task.id])] == [(TaskState.ASSIGNED, "agent-a")]
    assert [a.number for a in await store.list_attempts(task.id)] == [1]


async def test_saving_again_updates_state_and_appends_events(store: Store) -> None:
    run = make_run(2)
    step = StepRun(run.id, "a")
    await store.save_run(run, [step], [RunEvent(run.id, 1.0, "RunStarted")])
    run.state, run.outputs, run.finished_at = RunState.SUCCEEDED, {"total": 3}, 9.0
    approval = StepApproval("ship it?", 1.0).decided(True, "ann", "", 2.0)
    step.state, step.output, step.approval = StepState.SUCCEEDED, [1, 2], approval
    await store.save_run(
        run, [step], [RunEvent(run.id, 2.0, "StepSucceeded", "a"), RunEvent(run.id, 3.0, "RunSucceeded")]
    )
    loaded = await store.get_run(run.id)
    assert loaded is not None and (loaded.state, loaded.outputs, loaded.finished_at) == (
        RunState.SUCCEEDED,
        {"total": 3},
        9.0,
    )
    saved = (await store.get_steps(run.id))[0]
    assert (saved.output, saved.approval) == ([1, 2], approval)
    events = await store.list_events(run.id)
    assert [e.type for e in events] == ["RunStarted", "StepSucceeded", "RunSucceeded"]
    assert [e.type for e in await store.list_events(run.id, after_id=events[0].id or 0)] == [
        "StepSucceeded",
        "RunSucceeded",
    ]


async def test_runs_list_newest_first_filter_and_active_ones_load(store: Store) -> None:
    for number, workflow, state in [
        (1, "a", RunState.SUCCEEDED),
        (2, "b", RunState.RUNNING),
        (3, "a", RunState.RUNNING),
    ]:
        await store.save_run(make_run(number, workflow, state))
    assert [r.seq for r in await store.list_runs(RunFilter(), limit=10)] == [3, 2, 1]
    assert [r.seq for r in await store.list_runs(RunFilter(workflow="a"), limit=10)] == [3, 1]
    assert [r.seq for r in await store.list_runs(RunFilter(state="running"), limit=1)] == [3]
    assert [r.seq for r in await store.list_runs(RunFilter(), limit=10, after_seq=3)] == [2, 1]
    assert [r.id for r in await store.load_active_runs()] == ["run-002", "run-003"]
    assert await store.max_run_seq() == 3


async def test_steps_come_in_name_order_whatever_order_they_were_saved_in(store: Store) -> None:
    run = make_run(4)
    await store.save_run(run, [StepRun(run.id, name) for name in ["review", "draft", "publish"]])
    await store.save_run(None, [StepRun(run.id, "approve")])
    assert [step.name for step in await store.get_steps(run.id)] == ["approve", "draft", "publish", "review"]
