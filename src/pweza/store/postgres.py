"""The PostgreSQL backend: SQLAlchemy Core on asyncpg, with a bounded connection pool.

Reads run concurrently on pooled connections in autocommit mode. Writes are queued to one
writer task that takes everything queued so far and runs it in a single transaction
(group commit), in the order the calls were made: the write-behind of task state relies on
a later write of a row landing after an earlier one. A batch first runs without savepoints;
if one call fails, the transaction is rolled back and the batch runs again with each call in
its own savepoint, so the failing call fails alone. An awaited write has been committed
(and, with the server's default ``synchronous_commit=on``, flushed to disk) when it returns.

The tables are the ones of `pweza.store.schema`; `open()` applies the same Alembic
migrations as SQLite, under an advisory lock so several replicas may start at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, Final, TypeVar, cast

from sqlalchemy import (
    Connection,
    Executable,
    Insert,
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
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from pweza.domain.errors import Unavailable
from pweza.domain.records import AuditEntry, RunFilter, StoredObject, TaskFilter, TokenRecord
from pweza.domain.runs import Run, RunEvent, StepRun
from pweza.domain.tasks import TERMINAL_STATES, Attempt, Task
from pweza.store import codec, migrating
from pweza.store.schema import attempts, audit, objects, run_events, run_steps, runs, tasks, tokens

__all__ = [
    "POOL_DEFAULTS",
    "TASK_MUTABLE",
    "UPSERT_ATTEMPT",
    "PostgresStore",
    "driver_url",
    "task_update_row",
    "write_run_rows",
]

T = TypeVar("T")
Operation = Callable[[AsyncConnection], Awaitable[Any]]

_MAX_BATCH: Final = 512
_ID_CHUNK: Final = 1000
_READY_TIMEOUT: Final = 2.0
_TERMINAL: Final = tuple(state.value for state in TERMINAL_STATES)
# Any constant 64-bit key: serialises `open()` of several replicas on one database.
_MIGRATION_LOCK: Final = 0x70_77_65_7A_61_6D_69_67  # "pwezamig"

# Pool settings, overridable by DATABASE_URL query parameters of the same name.
POOL_DEFAULTS: Final[dict[str, float]] = {
    "pool_size": 10,
    "max_overflow": 5,
    "pool_timeout": 10.0,
    "pool_recycle": 1800.0,
    "connect_timeout": 5.0,
    "command_timeout": 60.0,
}
_INT_SETTINGS: Final = ("pool_size", "max_overflow")

# -- statements, built once from the shared table definitions ------------------
_INSERT_TASK: Final = tasks.insert()
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
_UPDATE_TASK: Final[Update] = (
    update(tasks)
    .where(tasks.c.id == bindparam("b_id"))
    .values({column: bindparam(f"b_{column}") for column in TASK_MUTABLE})
)


def _upsert_attempt() -> Insert:
    statement = pg_insert(attempts)
    return statement.on_conflict_do_update(
        index_elements=[attempts.c.task_id, attempts.c.number],
        set_={
            "agent_id": statement.excluded["agent_id"],
            "state": statement.excluded["state"],
            "finished_at": statement.excluded["finished_at"],
            "error": statement.excluded["error"],
        },
    )


def _upsert_object() -> Insert:
    statement = pg_insert(objects)
    # Atomic under concurrent calls: the conflicting row is locked while its new values are computed.
    return statement.on_conflict_do_update(
        index_elements=[objects.c.kind, objects.c.namespace, objects.c.name],
        set_={
            "generation": objects.c.generation + case((objects.c.body == statement.excluded["body"], 0), else_=1),
            "body": statement.excluded["body"],
            "updated_at": statement.excluded["updated_at"],
        },
    ).returning(objects.c.generation, objects.c.created_at, objects.c.updated_at)


def _upsert_run() -> Insert:
    statement = pg_insert(runs)
    excluded = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=[runs.c.id],
        set_={
            "state": excluded["state"],
            "outputs": excluded["outputs"],
            "error": excluded["error"],
            "finished_at": excluded["finished_at"],
            "deadline": excluded["deadline"],
            "retries": excluded["retries"],
        },
    )


def _upsert_step() -> Insert:
    statement = pg_insert(run_steps)
    excluded = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=[run_steps.c.run_id, run_steps.c.name],
        set_={
            column: excluded[column]
            for column in (
                "state",
                "retries",
                "attempts",
                "started_at",
                "finished_at",
                "output",
                "error",
                "items",
                "approval",
            )
        },
    )


UPSERT_ATTEMPT: Final = _upsert_attempt()
_UPSERT_OBJECT: Final = _upsert_object()
_UPSERT_RUN: Final = _upsert_run()
_UPSERT_STEP: Final = _upsert_step()
_INSERT_EVENT: Final = run_events.insert()
_INSERT_TOKEN: Final = tokens.insert()
_INSERT_AUDIT: Final = audit.insert()


async def write_run_rows(
    connection: AsyncConnection,
    run_values: dict[str, Any] | None,
    step_values: list[dict[str, Any]],
    event_values: list[dict[str, Any]],
    task_values: list[dict[str, Any]],
) -> None:
    """The body of `save_run`, shared with the replicas' guarded save."""
    if run_values is not None:
        await connection.execute(_UPSERT_RUN, run_values)
    if step_values:
        await connection.execute(_UPSERT_STEP, step_values)
    if event_values:
        await connection.execute(_INSERT_EVENT, event_values)
    if task_values:
        await connection.execute(_INSERT_TASK, task_values)


def task_update_row(task: Task, columns: Sequence[str] = TASK_MUTABLE) -> dict[str, Any]:
    """Bind values of a task update: `b_id` and `b_<column>` for each of `columns`."""
    row = codec.task_row(task)
    values = {f"b_{column}": row[column] for column in columns}
    values["b_id"] = row["id"]
    return values


# -- URLs --------------------------------------------------------------------
def driver_url(url: str) -> tuple[URL, dict[str, float]]:
    """The asyncpg form of a ``postgresql://`` or ``postgres://`` URL, and the pool settings it carries.

    ``sslmode`` (libpq's name) becomes asyncpg's ``ssl``; pool settings are taken out of the query.
    """
    parsed = make_url(url.replace("postgres://", "postgresql://", 1) if url.startswith("postgres://") else url)
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(f"not a PostgreSQL URL: {url!r}")
    query = dict(parsed.query)
    settings = dict(POOL_DEFAULTS)
    for key in POOL_DEFAULTS:
        if key in query:
            raw = query.pop(key)
            value = raw[-1] if isinstance(raw, tuple) else raw
            try:
                settings[key] = int(value) if key in _INT_SETTINGS else float(value)
            except ValueError:
                raise ValueError(f"DATABASE_URL: {key} must be a number, not {value!r}") from None
    if "sslmode" in query:
        query["ssl"] = query.pop("sslmode")
    return parsed.set(drivername="postgresql+asyncpg", query=query), settings


# -- the writer ------------------------------------------------------------------
class _Call:
    """One queued write: an operation, or rows for one bulk statement (merged with its neighbours')."""

    __slots__ = ("error", "future", "operation", "result", "rows", "statement")

    def __init__(
        self,
        operation: Operation,
        future: asyncio.Future[Any],
        statement: Executable | None = None,
        rows: list[dict[str, Any]] | None = None,
    ) -> None:
        self.operation = operation
        self.future = future
        self.statement = statement
        self.rows = rows
        self.result: Any = None
        self.error: BaseException | None = None


def _forget(strays: set[asyncio.Future[bool]]) -> Callable[[asyncio.Future[bool]], None]:
    def done(future: asyncio.Future[bool]) -> None:
        strays.discard(future)
        if not future.cancelled():
            future.exception()  # retrieved, so asyncio does not log it

    return done


def _as_unavailable(error: BaseException) -> BaseException:
    """A failure to reach the database as the domain's `Unavailable` (HTTP 503, gRPC UNAVAILABLE:
    try again), chained to the driver's error; any other error unchanged."""
    if isinstance(error, OSError | TimeoutError) or (isinstance(error, DBAPIError) and not _is_statement_error(error)):
        unavailable = Unavailable("the database is unreachable; try again shortly")
        unavailable.__cause__ = error
        return unavailable
    return error


def _is_statement_error(error: BaseException) -> bool:
    """Whether `error` came from one statement (a constraint, bad data) rather than the connection."""
    if not isinstance(error, DBAPIError) or error.connection_invalidated:
        return False
    return not isinstance(error, (OperationalError, InterfaceError))


class PostgresStore:
    def __init__(self, url: str, **overrides: float) -> None:
        self.url, settings = driver_url(url)
        settings.update(overrides)
        self.settings = settings
        self._engine: AsyncEngine | None = None
        self._reader: AsyncEngine | None = None
        self._queue: asyncio.Queue[_Call | None] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._stray: set[asyncio.Future[bool]] = set()

    # -- lifecycle -------------------------------------------------------------
    async def open(self) -> None:
        settings = self.settings
        engine = create_async_engine(
            self.url,
            pool_size=int(settings["pool_size"]),
            max_overflow=int(settings["max_overflow"]),
            pool_timeout=settings["pool_timeout"],
            pool_recycle=int(settings["pool_recycle"]),
            pool_pre_ping=True,
            connect_args={
                "timeout": settings["connect_timeout"],
                "command_timeout": settings["command_timeout"],
                "server_settings": {"application_name": "pweza-core"},
            },
        )
        try:
            async with engine.begin() as connection:
                await connection.execute(select(func.pg_advisory_xact_lock(_MIGRATION_LOCK)))
                await connection.run_sync(migrating.upgrade)
        except BaseException:
            await engine.dispose()
            raise
        self._engine = engine
        self._reader = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._queue = asyncio.Queue()
        self._writer = asyncio.create_task(self._serve(), name="postgres-writer")

    async def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            self._queue.put_nowait(None)
            try:
                await asyncio.wait_for(writer, timeout=10.0)
            except TimeoutError:
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await writer
        if self._stray:
            for check in self._stray:
                check.cancel()
            await asyncio.wait(set(self._stray), timeout=5.0)
        engine, self._engine, self._reader = self._engine, None, None
        if engine is not None:
            await engine.dispose()

    async def check_ready(self) -> bool:
        # Not wait_for: cancelling a check stuck on a hung server can itself take seconds (the
        # connection is closed politely), so a late check is left to finish in the background.
        check = asyncio.ensure_future(self._check_ready())
        done, _ = await asyncio.wait({check}, timeout=_READY_TIMEOUT)
        if not done:
            check.cancel()
            self._stray.add(check)
            check.add_done_callback(_forget(self._stray))
            return False
        try:
            return check.result()
        except Exception:  # noqa: BLE001 - readiness is a yes/no answer: unreachable, not migrated
            return False

    async def _check_ready(self) -> bool:
        def compare(connection: Connection) -> bool:
            return migrating.current_revision(connection) == migrating.head_revision()

        async with self._read() as connection:
            return await connection.run_sync(compare)

    # -- plumbing --------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        if self._reader is None:
            raise RuntimeError("store is not open")
        try:
            async with self._reader.connect() as connection:
                yield connection
        except Exception as error:
            translated = _as_unavailable(error)
            if translated is error:
                raise
            raise translated from error

    async def _all(self, statement: Executable) -> list[Mapping[str, Any]]:
        async with self._read() as connection:
            result = await connection.execute(statement)
            return [cast("Mapping[str, Any]", row) for row in result.mappings()]

    async def _first(self, statement: Executable) -> Mapping[str, Any] | None:
        rows = await self._all(statement)
        return rows[0] if rows else None

    async def call(self, operation: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run `operation` in the next group-commit transaction (for the replicas' coordination)."""
        return await self._call(operation)

    def reader(self) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        """An autocommit connection from the pool, for reads outside the writer."""
        return self._read()

    async def _call(self, operation: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        if self._writer is None or self._writer.done():
            raise RuntimeError("store is not open")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Call(operation, future))
        return await future

    async def _bulk(self, statement: Executable, rows: list[dict[str, Any]]) -> None:
        """Execute `statement` once per row; consecutive bulk calls of one statement share one executemany."""
        if not rows:
            return
        if self._writer is None or self._writer.done():
            raise RuntimeError("store is not open")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def run_alone(connection: AsyncConnection) -> None:
            await connection.execute(statement, rows)

        self._queue.put_nowait(_Call(run_alone, future, statement, rows))
        await future

    async def _serve(self) -> None:
        running = True
        while running:
            first = await self._queue.get()
            if first is None:
                break
            calls = [first]
            while len(calls) < _MAX_BATCH and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    running = False
                    break
                calls.append(item)
            try:
                await self._run_batch(calls)
            except BaseException as error:
                # Cancelled (close() timed out) or a bug: nobody must wait for ever.
                for call in calls:
                    if call.error is None:
                        call.error = error if isinstance(error, Exception) else RuntimeError("store closed")
                self._settle(calls)
                raise
            self._settle(calls)
        # Anything queued after close() began fails rather than hanging.
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is not None and not item.future.done():
                item.future.set_exception(RuntimeError("store is closed"))

    @staticmethod
    def _settle(calls: list[_Call]) -> None:
        for call in calls:
            if call.future.done():
                continue
            if call.error is not None:
                call.future.set_exception(_as_unavailable(call.error))
            else:
                call.future.set_result(call.result)

    async def _run_batch(self, calls: list[_Call]) -> None:
        assert self._engine is not None
        try:
            async with self._engine.begin() as connection:
                index = 0
                while index < len(calls):
                    call = calls[index]
                    index += 1
                    if call.statement is None or call.rows is None:
                        call.result = await call.operation(connection)
                        continue
                    rows = call.rows
                    if index < len(calls) and calls[index].statement is call.statement:
                        rows = list(rows)
                        while index < len(calls) and calls[index].statement is call.statement:
                            rows.extend(calls[index].rows or ())
                            index += 1
                    await connection.execute(call.statement, rows)
        except Exception as error:  # noqa: BLE001 - handed to the callers' futures
            if len(calls) == 1 or not _is_statement_error(error):
                for call in calls:
                    call.error = error
                return
            await self._run_one_by_one(calls)

    async def _run_one_by_one(self, calls: list[_Call]) -> None:
        """The slow path after a failure: each call in its own savepoint of one transaction."""
        assert self._engine is not None
        for call in calls:
            call.error = None
        try:
            async with self._engine.begin() as connection:
                for call in calls:
                    try:
                        async with connection.begin_nested():
                            call.result = await call.operation(connection)
                    except Exception as error:
                        if not _is_statement_error(error):
                            raise
                        call.error = error
        except Exception as error:  # noqa: BLE001 - handed to the callers' futures
            for call in calls:
                call.error = error

    # -- objects ---------------------------------------------------------------
    async def put_object(self, kind: str, namespace: str, name: str, body: dict[str, Any]) -> StoredObject:
        text_body = codec.dumps(body)

        async def put(connection: AsyncConnection) -> StoredObject:
            now = time.time()
            values = {
                "kind": kind,
                "namespace": namespace,
                "name": name,
                "generation": 1,
                "body": text_body,
                "created_at": now,
                "updated_at": now,
            }
            row = (await connection.execute(_UPSERT_OBJECT, values)).one()
            return StoredObject(kind, namespace, name, row.generation, body, row.created_at, row.updated_at)

        return await self._call(put)

    async def get_object(self, kind: str, namespace: str, name: str) -> StoredObject | None:
        statement = select(objects).where(
            objects.c.kind == kind, objects.c.namespace == namespace, objects.c.name == name
        )
        row = await self._first(statement)
        return None if row is None else codec.object_from_row(row)

    async def list_objects(
        self, kind: str, namespace: str | None, limit: int, after: str | None = None
    ) -> list[StoredObject]:
        # Byte order ("C" collation), like SQLite, whatever the database's default collation is.
        namespace_c, name_c = objects.c.namespace.collate("C"), objects.c.name.collate("C")
        statement = select(objects).where(objects.c.kind == kind)
        if namespace is not None:
            statement = statement.where(objects.c.namespace == namespace)
        if after is not None:
            after_namespace, _, after_name = after.partition("/")
            key = tuple_(literal(after_namespace).collate("C"), literal(after_name).collate("C"))
            statement = statement.where(tuple_(namespace_c, name_c) > key)
        statement = statement.order_by(namespace_c, name_c).limit(limit)
        return [codec.object_from_row(row) for row in await self._all(statement)]

    async def delete_object(self, kind: str, namespace: str, name: str) -> bool:
        statement = delete(objects).where(
            objects.c.kind == kind, objects.c.namespace == namespace, objects.c.name == name
        )

        async def remove(connection: AsyncConnection) -> bool:
            return (await connection.execute(statement)).rowcount > 0

        return await self._call(remove)

    # -- tasks -----------------------------------------------------------------
    async def insert_tasks(self, tasks: Sequence[Task]) -> None:
        rows = [codec.task_row(task) for task in tasks]  # encoded now: later in-memory changes cannot leak in
        if rows:
            await self._bulk(_INSERT_TASK, rows)

    async def update_tasks(self, tasks: Sequence[Task]) -> None:
        rows = [task_update_row(task) for task in tasks]
        if rows:
            await self._bulk(_UPDATE_TASK, rows)

    async def save_attempts(self, attempts: Sequence[Attempt]) -> None:
        rows = [codec.attempt_row(attempt) for attempt in attempts]
        if rows:
            await self._bulk(UPSERT_ATTEMPT, rows)

    async def get_task(self, task_id: str) -> Task | None:
        row = await self._first(select(tasks).where(tasks.c.id == task_id))
        return None if row is None else codec.task_from_row(row)

    async def list_tasks(self, where: TaskFilter, limit: int, after_seq: int | None = None) -> list[Task]:
        statement = select(tasks)
        for column, value in (
            (tasks.c.namespace, where.namespace),
            (tasks.c.pool, where.pool),
            (tasks.c.state, None if where.state is None else where.state.value),
            (tasks.c.parent_id, where.parent_id),
        ):
            if value is not None:
                statement = statement.where(column == value)
        if after_seq is not None:
            statement = statement.where(tasks.c.seq < after_seq)
        statement = statement.order_by(tasks.c.seq.desc()).limit(limit)
        return [codec.task_from_row(row) for row in await self._all(statement)]

    async def list_attempts(self, task_id: str) -> list[Attempt]:
        statement = select(attempts).where(attempts.c.task_id == task_id).order_by(attempts.c.number)
        return [codec.attempt_from_row(row) for row in await self._all(statement)]

    async def load_unfinished_tasks(self) -> list[Task]:
        statement = select(tasks).where(tasks.c.state.not_in(_TERMINAL)).order_by(tasks.c.seq)
        return [codec.task_from_row(row) for row in await self._all(statement)]

    async def max_task_seq(self) -> int:
        async with self._read() as connection:
            value = (await connection.execute(select(func.coalesce(func.max(tasks.c.seq), 0)))).scalar_one()
        return int(value)

    async def get_tasks(self, task_ids: Sequence[str]) -> list[Task]:
        ids = list(dict.fromkeys(task_ids))
        found: list[Task] = []
        if not ids:
            return found
        async with self._read() as connection:
            for start in range(0, len(ids), _ID_CHUNK):
                statement = select(tasks).where(tasks.c.id.in_(ids[start : start + _ID_CHUNK]))
                rows = (await connection.execute(statement)).mappings()
                found.extend(codec.task_from_row(cast("Mapping[str, Any]", row)) for row in rows)
        return found

    # -- tokens and audit ------------------------------------------------------
    async def insert_token(self, token: TokenRecord) -> None:
        values = {
            "id": token.id,
            "name": token.name,
            "role": token.role.value,
            "hash": token.hash,
            "created_at": token.created_at,
            "revoked_at": None,
            "pool": token.pool,
            "expires_at": token.expires_at,
        }
        await self._bulk(_INSERT_TOKEN, [values])

    async def find_token(self, token_hash: str) -> TokenRecord | None:
        row = await self._first(select(tokens).where(tokens.c.hash == token_hash))
        return None if row is None else codec.token_from_row(row)

    async def list_tokens(self) -> list[TokenRecord]:
        return [codec.token_from_row(row) for row in await self._all(select(tokens).order_by(tokens.c.created_at))]

    async def revoke_token(self, token_id: str, at: float) -> bool:
        statement = update(tokens).where(tokens.c.id == token_id, tokens.c.revoked_at.is_(None)).values(revoked_at=at)

        async def revoke(connection: AsyncConnection) -> bool:
            return (await connection.execute(statement)).rowcount > 0

        return await self._call(revoke)

    async def append_audit(self, entry: AuditEntry) -> None:
        values = {
            "at": entry.at,
            "actor": entry.actor,
            "action": entry.action,
            "target": entry.target,
            "detail": codec.dumps(entry.detail),
        }
        await self._bulk(_INSERT_AUDIT, [values])

    async def list_audit(self, limit: int, before_id: int | None = None) -> list[AuditEntry]:
        statement = select(audit)
        if before_id is not None:
            statement = statement.where(audit.c.id < before_id)
        statement = statement.order_by(audit.c.id.desc()).limit(limit)
        return [codec.audit_from_row(row) for row in await self._all(statement)]

    # -- workflow runs ---------------------------------------------------------
    async def save_run(
        self,
        run: Run | None,
        steps: Sequence[StepRun] = (),
        events: Sequence[RunEvent] = (),
        new_tasks: Sequence[Task] = (),
    ) -> None:
        task_values = [codec.task_row(task) for task in new_tasks]
        run_values = None if run is None else codec.run_row(run)
        step_values = [codec.step_row(step) for step in steps]
        event_values = [codec.event_row(event) for event in events]

        async def save(connection: AsyncConnection) -> None:
            await write_run_rows(connection, run_values, step_values, event_values, task_values)

        await self._call(save)

    async def get_run(self, run_id: str) -> Run | None:
        row = await self._first(select(runs).where(runs.c.id == run_id))
        return None if row is None else codec.run_from_row(row)

    async def get_steps(self, run_id: str) -> list[StepRun]:
        statement = select(run_steps).where(run_steps.c.run_id == run_id).order_by(run_steps.c.name)
        return [codec.step_from_row(row) for row in await self._all(statement)]

    async def list_runs(self, where: RunFilter, limit: int, after_seq: int | None = None) -> list[Run]:
        statement = select(runs)
        for column, value in (
            (runs.c.namespace, where.namespace),
            (runs.c.workflow, where.workflow),
            (runs.c.state, where.state),
        ):
            if value is not None:
                statement = statement.where(column == value)
        if after_seq is not None:
            statement = statement.where(runs.c.seq < after_seq)
        statement = statement.order_by(runs.c.seq.desc()).limit(limit)
        return [codec.run_from_row(row) for row in await self._all(statement)]

    async def load_active_runs(self) -> list[Run]:
        statement = select(runs).where(runs.c.state == "running").order_by(runs.c.seq)
        return [codec.run_from_row(row) for row in await self._all(statement)]

    async def max_run_seq(self) -> int:
        async with self._read() as connection:
            value = (await connection.execute(select(func.coalesce(func.max(runs.c.seq), 0)))).scalar_one()
        return int(value)

    async def list_events(self, run_id: str, after_id: int = 0, limit: int = 1000) -> list[RunEvent]:
        statement = (
            select(run_events)
            .where(run_events.c.run_id == run_id, run_events.c.id > after_id)
            .order_by(run_events.c.id)
            .limit(limit)
        )
        return [codec.event_from_row(row) for row in await self._all(statement)]

    # -- retention -------------------------------------------------------------
    async def prune_finished(self, before: float, limit: int) -> int:
        old_run = runs.alias("old_run")
        run_ids = (
            select(old_run.c.id)
            .where(old_run.c.state != "running", old_run.c.finished_at < before)
            .order_by(old_run.c.finished_at)
            .limit(limit)
        )
        # Conditions repeated on the deleted rows: rechecked there if another replica changed a row meanwhile.
        delete_runs = (
            delete(runs)
            .where(runs.c.id.in_(run_ids.scalar_subquery()), runs.c.state != "running", runs.c.finished_at < before)
            .returning(runs.c.id)
        )
        old, parent = tasks.alias("old_task"), tasks.alias("parent")
        # A task stays while its run is running or its parent is unfinished: both may still read it.
        # jsonb(text) is PostgreSQL's function-style cast: the labels column is text.
        run_label = func.jsonb_extract_path_text(func.jsonb(old.c.labels), "run")
        running_run = select(literal(1)).where(runs.c.id == run_label, runs.c.state == "running").exists()
        unfinished_parent = (
            select(literal(1)).where(parent.c.id == old.c.parent_id, parent.c.state.not_in(_TERMINAL)).exists()
        )
        task_ids = (
            select(old.c.id)
            .where(old.c.state.in_(_TERMINAL), old.c.finished_at < before, ~running_run, ~unfinished_parent)
            .order_by(old.c.finished_at)
            .limit(limit)
        )
        delete_tasks = (
            delete(tasks)
            .where(
                tasks.c.id.in_(task_ids.scalar_subquery()), tasks.c.state.in_(_TERMINAL), tasks.c.finished_at < before
            )
            .returning(tasks.c.id)
        )

        async def prune(connection: AsyncConnection) -> int:
            gone_runs = list((await connection.execute(delete_runs)).scalars())
            gone_tasks = list((await connection.execute(delete_tasks)).scalars())
            for table, column, ids in (
                (run_steps, run_steps.c.run_id, gone_runs),
                (run_events, run_events.c.run_id, gone_runs),
                (attempts, attempts.c.task_id, gone_tasks),
            ):
                for start in range(0, len(ids), _ID_CHUNK):
                    await connection.execute(delete(table).where(column.in_(ids[start : start + _ID_CHUNK])))
            return len(gone_runs) + len(gone_tasks)

        return await self._call(prune)
