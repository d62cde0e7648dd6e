"""Every statement of the `Store`, written once from `schema`'s tables, for every SQL backend.

Values are bind parameters named after their column (a task update's are prefixed ``b_``,
as SQLAlchemy keeps column names for its own SET clause); a row from `codec` binds an insert
as it is. Statements whose shape depends on which filters are given are built by a cached
function, one statement per combination. The upserts use ``INSERT ... ON CONFLICT``, which
PostgreSQL and SQLite share (SQLAlchemy renders PostgreSQL's construct for either).

SQLite compiles each statement once to SQL text for its own connection (`store.sqlite`);
PostgreSQL executes them through SQLAlchemy, which caches the compiled form likewise.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Any, Final

from sqlalchemy import (
    BindParameter,
    Float,
    Insert,
    Integer,
    Select,
    Update,
    bindparam,
    case,
    delete,
    func,
    literal,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert as upsert_into
from sqlalchemy.sql.dml import ReturningDelete

from pweza.domain.pricing import Spent
from pweza.domain.records import RunFilter, TaskFilter
from pweza.domain.runs import Run, RunEvent, RunState, StepRun
from pweza.domain.tasks import TERMINAL_STATES, Attempt, CallEntry, Task
from pweza.store import codec
from pweza.store.dialects import byte_order, json_text, unindexed
from pweza.store.schema import (
    attempts,
    audit,
    calls,
    model_slots,
    objects,
    run_events,
    run_steps,
    runs,
    tasks,
    tokens,
)

TERMINAL: Final = tuple(state.value for state in TERMINAL_STATES)
RUNNING: Final = RunState.RUNNING.value
# Ids per IN (...) list: well under SQLite's 32,766 variables and PostgreSQL's 32,767.
ID_CHUNK: Final = 500

Rows = list[dict[str, Any]]


def _limit() -> Any:
    return bindparam("limit", type_=Integer)


def _upsert(table: Any, key: Sequence[str], changed: Sequence[str]) -> Insert:
    statement = upsert_into(table)
    return statement.on_conflict_do_update(
        index_elements=[table.c[column] for column in key],
        set_={column: statement.excluded[column] for column in changed},
    )


# -- objects -------------------------------------------------------------------
_OBJECT_KEY: Final = (
    objects.c.kind == bindparam("kind"),
    objects.c.namespace == bindparam("namespace"),
    objects.c.name == bindparam("name"),
)
SELECT_OBJECT: Final = select(objects).where(*_OBJECT_KEY)
DELETE_OBJECT: Final = delete(objects).where(*_OBJECT_KEY)


def _upsert_object() -> Insert:
    statement = upsert_into(objects)
    # Atomic under concurrent calls: the conflicting row is locked while its new values are computed.
    return statement.on_conflict_do_update(
        index_elements=[objects.c.kind, objects.c.namespace, objects.c.name],
        set_={
            "generation": objects.c.generation + case((objects.c.body == statement.excluded["body"], 0), else_=1),
            "body": statement.excluded["body"],
            "updated_at": statement.excluded["updated_at"],
        },
    ).returning(objects.c.generation, objects.c.created_at, objects.c.updated_at)


UPSERT_OBJECT: Final = _upsert_object()


Listing = tuple[Select[Any], dict[str, Any]]


def list_objects(kind: str, namespace: str | None, limit: int, after: str | None) -> Listing:
    """Ordered by namespace then name, each byte by byte; `after` is a previous page's last "namespace/name"."""
    params: dict[str, Any] = {"kind": kind, "limit": limit}
    if namespace is not None:
        params["namespace"] = namespace
    if after is not None:
        params["after_namespace"], _, params["after_name"] = after.partition("/")
    return _list_objects(in_namespace=namespace is not None, after=after is not None), params


@functools.cache
def _list_objects(*, in_namespace: bool, after: bool) -> Select[Any]:
    namespace, name = byte_order(objects.c.namespace), byte_order(objects.c.name)
    statement = select(objects).where(objects.c.kind == bindparam("kind"))
    if in_namespace:
        statement = statement.where(objects.c.namespace == bindparam("namespace"))
    if after:
        key = tuple_(byte_order(bindparam("after_namespace")), byte_order(bindparam("after_name")))
        statement = statement.where(tuple_(namespace, name) > key)
    return statement.order_by(namespace, name).limit(_limit())


# -- tasks and attempts ----------------------------------------------------------
INSERT_TASK: Final = tasks.insert()
# What an update of a task writes; the rest is fixed when it is submitted (the owner is
# written only by `ReplicaDatabase`, when replicas share the database).
TASK_MUTABLE: Final = (
    "state",
    "priority",
    "attempts",
    "output",
    "error",
    "not_before",
    "started_at",
    "finished_at",
    "agent_id",
    "cancel_requested",
)
UPDATE_TASK: Final[Update] = (
    update(tasks)
    .where(tasks.c.id == bindparam("b_id"))
    .values({column: bindparam(f"b_{column}") for column in TASK_MUTABLE})
)


def task_update_row(task: Task, columns: Sequence[str] = TASK_MUTABLE) -> dict[str, Any]:
    """Bind values of a task update: `b_id` and `b_<column>` for each of `columns`."""
    row = codec.TASKS.row(task)
    values = {f"b_{column}": row[column] for column in columns}
    values["b_id"] = row["id"]
    return values


UPSERT_ATTEMPT: Final = _upsert(attempts, ("task_id", "number"), ("agent_id", "state", "finished_at", "error"))
# A call record sent again (the stream dropped before its acknowledgement) replaces itself.
UPSERT_CALL: Final = _upsert(
    calls, ("task_id", "attempt", "position"), ("kind", "record", "recorded_at", "tokens", "cost_micros", "currency")
)
# A call's record replaced only while its "state" is still `b_state` (a compare-and-set: of two
# writers deciding at once, one changes it); bind the key as b_task_id, b_attempt, b_position.
REPLACE_CALL_IN_STATE: Final = (
    update(calls)
    .where(
        calls.c.task_id == bindparam("b_task_id"),
        calls.c.attempt == bindparam("b_attempt"),
        calls.c.position == bindparam("b_position"),
        json_text(calls.c.record, literal("state")) == bindparam("b_state"),
    )
    .values(record=bindparam("b_record"), recorded_at=bindparam("b_recorded_at"))
)
# Bind `ids` (at most ID_CHUNK tasks).
SELECT_CALLS: Final = (
    select(calls)
    .where(calls.c.task_id.in_(bindparam("ids", expanding=True)))
    .order_by(calls.c.task_id, calls.c.attempt, calls.c.position)
)
# Budgets: the tokens and the cost (by currency; NULL: calls with no price) a run's calls paid
# for; a pool's or a namespace's since a time (bind `since`).
_SPENT = select(
    calls.c.currency, func.coalesce(func.sum(calls.c.tokens), 0), func.coalesce(func.sum(calls.c.cost_micros), 0)
).group_by(calls.c.currency)
RUN_SPENT: Final = _SPENT.where(calls.c.run_id == bindparam("run_id"))
POOL_SPENT: Final = _SPENT.where(
    calls.c.namespace == bindparam("namespace"),
    calls.c.pool == bindparam("pool"),
    calls.c.recorded_at >= bindparam("since"),
)
NAMESPACE_SPENT: Final = _SPENT.where(
    calls.c.namespace == bindparam("namespace"), calls.c.recorded_at >= bindparam("since")
)


def call_replacement(call: CallEntry, state: str) -> dict[str, Any]:
    """Bind values of REPLACE_CALL_IN_STATE."""
    row = codec.CALLS.row(call)
    return {
        "b_task_id": row["task_id"], "b_attempt": row["attempt"], "b_position": row["position"],
        "b_state": state, "b_record": row["record"], "b_recorded_at": row["recorded_at"],
    }  # fmt: skip


def spent(rows: Iterable[Sequence[Any]]) -> Spent:
    """A `*_SPENT` result: one row per currency (None for calls with no price)."""
    tokens, costs = 0, {}
    for currency, currency_tokens, cost in rows:
        tokens += int(currency_tokens)
        if currency is not None:
            costs[str(currency)] = int(cost)
    return Spent(tokens, costs)


# -- model slots (pweza.domain.model_slots) --------------------------------------
# The numbers of a model's slots of one kind that are taken now (bind namespace, model, kind, now).
TAKEN_SLOTS: Final = select(model_slots.c.number).where(
    model_slots.c.namespace == bindparam("namespace"),
    model_slots.c.model == bindparam("model"),
    model_slots.c.kind == bindparam("kind"),
    model_slots.c.until > bindparam("now"),
)


def _take_slot() -> Insert:
    """Take slot `number` if it is free: a new row, or a row whose `until` has passed. Returns the
    number when taken, nothing when another holder has it (on PostgreSQL a replica taking the same
    row at once waits for the other's commit, then sees it taken)."""
    statement = upsert_into(model_slots)
    changed = ("lease", "holder", "until")
    return statement.on_conflict_do_update(
        index_elements=[model_slots.c.namespace, model_slots.c.model, model_slots.c.kind, model_slots.c.number],
        set_={column: statement.excluded[column] for column in changed},
        where=model_slots.c.until <= bindparam("now"),
    ).returning(model_slots.c.number)


TAKE_SLOT: Final = _take_slot()
# Free what leases took (bind b_holder, b_leases, b_kinds, now): a lease's call slot when its request
# ends; its start slot too when the request never started.
RELEASE_SLOTS: Final = (
    update(model_slots)
    .where(
        model_slots.c.holder == bindparam("b_holder"),
        model_slots.c.lease.in_(bindparam("b_leases", expanding=True)),
        model_slots.c.kind.in_(bindparam("b_kinds", expanding=True)),
        model_slots.c.until > bindparam("now"),
    )
    .values(until=bindparam("now"))
)


SELECT_TASK: Final = select(tasks).where(tasks.c.id == bindparam("id"))
SELECT_TASKS: Final = select(tasks).where(tasks.c.id.in_(bindparam("ids", expanding=True)))
# Newest first, like `list_tasks`; bind `ids` (at most ID_CHUNK parents) and `limit`.
SELECT_CHILDREN: Final = (
    select(tasks)
    .where(tasks.c.parent_id.in_(bindparam("ids", expanding=True)))
    .order_by(tasks.c.seq.desc())
    .limit(_limit())
)
SELECT_ATTEMPTS: Final = select(attempts).where(attempts.c.task_id == bindparam("task_id")).order_by(attempts.c.number)
SELECT_UNFINISHED_TASKS: Final = select(tasks).where(tasks.c.state.not_in(TERMINAL)).order_by(tasks.c.seq)
MAX_TASK_SEQ: Final = select(func.coalesce(func.max(tasks.c.seq), 0))
_TASK_FILTERS: Final = ("namespace", "pool", "state", "parent_id")


def list_tasks(where: TaskFilter, limit: int, after_seq: int | None) -> Listing:
    """Newest first by submission sequence, below `after_seq` if given."""
    state = None if where.state is None else where.state.value
    given = zip(_TASK_FILTERS, (where.namespace, where.pool, state, where.parent_id), strict=True)
    params: dict[str, Any] = {column: value for column, value in given if value is not None}
    statement = _list_tasks(tuple(params), after=after_seq is not None)
    params["limit"] = limit
    if after_seq is not None:
        params["after_seq"] = after_seq
    return statement, params


@functools.cache
def _list_tasks(filters: tuple[str, ...], *, after: bool) -> Select[Any]:
    statement = select(tasks).where(*(tasks.c[column] == bindparam(column) for column in filters))
    if after:
        statement = statement.where(tasks.c.seq < bindparam("after_seq"))
    return statement.order_by(tasks.c.seq.desc()).limit(_limit())


# -- tokens and audit ------------------------------------------------------------
INSERT_TOKEN: Final = tokens.insert()
SELECT_TOKEN: Final = select(tokens).where(tokens.c.hash == bindparam("hash"))
SELECT_TOKENS: Final = select(tokens).order_by(tokens.c.created_at)
REVOKE_TOKEN: Final = (
    update(tokens)
    .where(tokens.c.id == bindparam("b_id"), tokens.c.revoked_at.is_(None))
    .values(revoked_at=bindparam("b_at"))
)
INSERT_AUDIT: Final = audit.insert()


def list_audit(limit: int, before_id: int | None) -> Listing:
    """Newest first, below `before_id` if given."""
    params: dict[str, Any] = {"limit": limit}
    if before_id is not None:
        params["before_id"] = before_id
    return _list_audit(before=before_id is not None), params


@functools.cache
def _list_audit(*, before: bool) -> Select[Any]:
    statement = select(audit)
    if before:
        statement = statement.where(audit.c.id < bindparam("before_id"))
    return statement.order_by(audit.c.id.desc()).limit(_limit())


# -- workflow runs -----------------------------------------------------------------
UPSERT_RUN: Final = _upsert(runs, ("id",), ("state", "outputs", "error", "finished_at", "deadline", "retries"))
UPSERT_STEP: Final = _upsert(
    run_steps,
    ("run_id", "name"),
    ("state", "retries", "attempts", "started_at", "finished_at", "output", "error", "items", "approval"),
)
INSERT_EVENT: Final = run_events.insert()
SELECT_RUN: Final = select(runs).where(runs.c.id == bindparam("id"))
SELECT_STEPS: Final = select(run_steps).where(run_steps.c.run_id == bindparam("run_id")).order_by(run_steps.c.name)
SELECT_ACTIVE_RUNS: Final = select(runs).where(runs.c.state == RUNNING).order_by(runs.c.seq)
MAX_RUN_SEQ: Final = select(func.coalesce(func.max(runs.c.seq), 0))
SELECT_EVENTS: Final = (
    select(run_events)
    .where(run_events.c.run_id == bindparam("run_id"), run_events.c.id > bindparam("after_id"))
    .order_by(run_events.c.id)
    .limit(_limit())
)
_RUN_FILTERS: Final = ("namespace", "workflow", "state")


def list_runs(where: RunFilter, limit: int, after_seq: int | None) -> Listing:
    """Newest first, below `after_seq` if given."""
    given = zip(_RUN_FILTERS, (where.namespace, where.workflow, where.state), strict=True)
    params: dict[str, Any] = {column: value for column, value in given if value is not None}
    statement = _list_runs(tuple(params), after=after_seq is not None)
    params["limit"] = limit
    if after_seq is not None:
        params["after_seq"] = after_seq
    return statement, params


@functools.cache
def _list_runs(filters: tuple[str, ...], *, after: bool) -> Select[Any]:
    statement = select(runs).where(*(runs.c[column] == bindparam(column) for column in filters))
    if after:
        statement = statement.where(runs.c.seq < bindparam("after_seq"))
    return statement.order_by(runs.c.seq.desc()).limit(_limit())


def run_writes(
    run: Run | None,
    steps: Sequence[StepRun],
    events: Sequence[RunEvent],
    new_tasks: Sequence[Task],
    new_attempts: Sequence[Attempt] = (),
) -> list[tuple[Insert, Rows]]:
    """The statements of one `save_run`, in order, each with its rows (none empty)."""
    writes: list[tuple[Insert, Rows]] = [
        (UPSERT_RUN, [] if run is None else [codec.RUNS.row(run)]),
        (UPSERT_STEP, [codec.STEPS.row(step) for step in steps]),
        (INSERT_EVENT, [codec.EVENTS.row(event) for event in events]),
        (INSERT_TASK, [codec.TASKS.row(task) for task in new_tasks]),
        (UPSERT_ATTEMPT, [codec.ATTEMPTS.row(attempt) for attempt in new_attempts]),
    ]
    return [(statement, rows) for statement, rows in writes if rows]


# -- retention ---------------------------------------------------------------------
def _prune_runs() -> ReturningDelete[Any]:
    old = runs.alias("old_run")
    before: BindParameter[float] = bindparam("before", type_=Float)
    oldest = (
        select(old.c.id)
        .where(old.c.state != RUNNING, old.c.finished_at < before)
        .order_by(old.c.finished_at)
        .limit(_limit())
    )
    # Conditions repeated on the deleted rows: rechecked there if another replica changed a row meanwhile.
    return (
        delete(runs)
        .where(runs.c.id.in_(oldest.scalar_subquery()), runs.c.state != RUNNING, runs.c.finished_at < before)
        .returning(runs.c.id)
    )


def _prune_tasks() -> ReturningDelete[Any]:
    old, parent = tasks.alias("old_task"), tasks.alias("parent")
    before: BindParameter[float] = bindparam("before", type_=Float)
    # A task stays while its run is running or its parent is unfinished: both may still read it.
    running_run = select(literal(1)).where(runs.c.id == json_text(old.c.labels, "run"), runs.c.state == RUNNING)
    unfinished_parent = select(literal(1)).where(parent.c.id == old.c.parent_id, parent.c.state.not_in(TERMINAL))
    oldest = (
        # Not by state's index on SQLite: walking ix_tasks_finished stops after `limit` rows.
        select(old.c.id)
        .where(
            unindexed(old.c.state).in_(TERMINAL),
            old.c.finished_at < before,
            ~running_run.exists(),
            ~unfinished_parent.exists(),
        )
        .order_by(old.c.finished_at)
        .limit(_limit())
    )
    return (
        delete(tasks)
        .where(tasks.c.id.in_(oldest.scalar_subquery()), tasks.c.state.in_(TERMINAL), tasks.c.finished_at < before)
        .returning(tasks.c.id)
    )


PRUNE_RUNS: Final = _prune_runs()
PRUNE_TASKS: Final = _prune_tasks()
# What goes with a pruned run or task, by the ids deleted (bind `ids`, at most ID_CHUNK).
PRUNE_WITH_RUNS: Final = tuple(
    delete(table).where(table.c.run_id.in_(bindparam("ids", expanding=True))) for table in (run_steps, run_events)
)
PRUNE_WITH_TASKS: Final = tuple(
    delete(table).where(table.c.task_id.in_(bindparam("ids", expanding=True))) for table in (attempts, calls)
)


def newest(found: Sequence[Task], limit: int) -> list[Task]:
    """The `limit` newest of tasks read chunk by chunk (each chunk newest first, up to `limit`)."""
    return sorted(found, key=lambda task: task.seq, reverse=True)[:limit]


def chunks(ids: Sequence[str]) -> list[list[str]]:
    """`ids` without repeats, in IN-lists of at most ID_CHUNK."""
    unique = list(dict.fromkeys(ids))
    return [unique[start : start + ID_CHUNK] for start in range(0, len(unique), ID_CHUNK)]
