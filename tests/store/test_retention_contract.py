"""The retention part of the Store contract, on every backend: `prune_finished`."""

from __future__ import annotations

from pweza.domain.runs import Run, RunEvent, RunState, StepRun, StepState
from pweza.domain.tasks import Attempt, Task, TaskState
from pweza.store.protocol import Store

BEFORE = 100.0  # everything finished before this is old enough to go
OLD, YOUNG = 10.0, 200.0


def finished_run(run_id: str, finished_at: float | None, state: RunState = RunState.SUCCEEDED) -> Run:
    return Run(
        id=run_id,
        seq=int(run_id.rsplit("-", 1)[1]),
        namespace="default",
        workflow="wf",
        generation=1,
        spec={"steps": [{"name": "a"}]},
        inputs={},
        state=state,
        created_at=1.0,
        finished_at=finished_at,
    )


def finished_task(
    task_id: str,
    finished_at: float | None,
    state: TaskState = TaskState.SUCCEEDED,
    run: str | None = None,
    parent: str | None = None,
) -> Task:
    return Task(
        id=task_id,
        namespace="default",
        pool="p",
        input={},
        seq=int(task_id.rsplit("-", 1)[1]),
        state=state,
        created_at=1.0,
        finished_at=finished_at,
        parent_id=parent,
        labels={} if run is None else {"run": run, "step": "a"},
    )


async def save_run_with_history(store: Store, run: Run) -> None:
    step = StepRun(run.id, "a", state=StepState.SUCCEEDED, started_at=2.0, finished_at=run.finished_at)
    events = [RunEvent(run.id, 1.0, "RunStarted"), RunEvent(run.id, 3.0, "StepSucceeded", "a")]
    await store.save_run(run, [step], events)


async def remaining_tasks(store: Store, ids: list[str]) -> set[str]:
    return {task.id for task in await store.get_tasks(ids)}


async def test_old_finished_runs_and_tasks_go_with_their_steps_events_and_attempts(store: Store) -> None:
    run = finished_run("run-001", OLD, RunState.FAILED)
    await save_run_with_history(store, run)
    task = finished_task("task-0001", OLD, TaskState.FAILED, run=run.id)
    await store.insert_tasks([task])
    await store.save_attempts(
        [
            Attempt(task.id, 1, "agent-a", 2.0, TaskState.FAILED, 3.0),
            Attempt(task.id, 2, "agent-b", 4.0, TaskState.FAILED, OLD),
        ]
    )

    assert await store.prune_finished(BEFORE, limit=10) == 2

    assert await store.get_run(run.id) is None
    assert await store.get_steps(run.id) == []
    assert await store.list_events(run.id) == []
    assert await store.get_task(task.id) is None
    assert await store.list_attempts(task.id) == []


async def test_young_active_and_still_needed_runs_and_tasks_are_kept(store: Store) -> None:
    for run in (
        finished_run("run-001", YOUNG),
        finished_run("run-002", None, RunState.RUNNING),
        finished_run("run-003", OLD, RunState.CANCELLED),
    ):
        await save_run_with_history(store, run)
    kept = [
        finished_task("task-0001", YOUNG),
        finished_task("task-0002", None, TaskState.RUNNING),
        finished_task("task-0003", None, TaskState.PENDING),
        finished_task("task-0004", OLD, run="run-002"),  # its run is still running
        finished_task("task-0005", OLD, parent="task-0002"),  # its parent is still running
        finished_task("task-0006", OLD, TaskState.TIMED_OUT, parent="task-0003"),
    ]
    gone = [
        finished_task("task-0007", OLD, run="run-001"),  # its run finished, however recently
        finished_task("task-0008", OLD, TaskState.CANCELLED, run="run-003"),
        finished_task("task-0009", OLD, parent="task-0001"),  # its parent is finished
        finished_task("task-0010", OLD, run="run-999"),  # its run is already gone
    ]
    await store.insert_tasks([*kept, *gone])
    await store.save_attempts([Attempt("task-0004", 1, "agent-a", 2.0, TaskState.SUCCEEDED, OLD)])

    assert await store.prune_finished(BEFORE, limit=100) == 1 + len(gone)

    assert await store.get_run("run-003") is None
    assert await store.get_run("run-001") is not None and await store.get_run("run-002") is not None
    assert [s.name for s in await store.get_steps("run-001")] == ["a"]
    assert len(await store.list_events("run-002")) == 2
    ids = [task.id for task in [*kept, *gone]]
    assert await remaining_tasks(store, ids) == {task.id for task in kept}
    assert [a.number for a in await store.list_attempts("task-0004")] == [1]


async def test_one_call_deletes_at_most_limit_runs_and_limit_tasks_oldest_first(store: Store) -> None:
    for number in range(1, 6):
        await save_run_with_history(store, finished_run(f"run-{number:03d}", float(number)))
    tasks = [finished_task(f"task-{number:04d}", float(number)) for number in range(1, 8)]
    await store.insert_tasks(tasks)
    ids = [task.id for task in tasks]

    assert await store.prune_finished(BEFORE, limit=3) == 3 + 3

    assert [await store.get_run(f"run-{n:03d}") is None for n in range(1, 6)] == [True] * 3 + [False] * 2
    assert await remaining_tasks(store, ids) == {"task-0004", "task-0005", "task-0006", "task-0007"}


async def test_repeated_calls_delete_everything_eligible_then_nothing(store: Store) -> None:
    for number in range(1, 6):
        await save_run_with_history(store, finished_run(f"run-{number:03d}", OLD))
    tasks = [finished_task(f"task-{number:04d}", OLD) for number in range(1, 8)]
    active = finished_task("task-0099", None, TaskState.RUNNING)
    await store.insert_tasks([*tasks, active])

    deleted = [await store.prune_finished(BEFORE, limit=3) for _ in range(4)]

    assert deleted == [6, 5, 1, 0]
    assert [await store.get_run(f"run-{n:03d}") for n in range(1, 6)] == [None] * 5
    assert await remaining_tasks(store, [*(task.id for task in tasks), active.id]) == {active.id}
