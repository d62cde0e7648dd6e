"""The PostgreSQL backend: `queries`' statements through SQLAlchemy Core on asyncpg.

Reads run concurrently on pooled connections in autocommit mode; writes go through the
group-commit `Writer`. The tables are the ones of `pweza.store.schema`; `open()` applies
the same Alembic migrations as SQLite, under an advisory lock so several replicas may
start at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast

from sqlalchemy import Connection, Executable, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from pweza.domain.model_slots import SlotClaim, free_numbers
from pweza.domain.pricing import Spent
from pweza.domain.records import AuditEntry, RunFilter, StoredObject, TaskFilter, TokenRecord
from pweza.domain.runs import Run, RunEvent, StepRun
from pweza.domain.tasks import Attempt, CallEntry, Task
from pweza.store import codec, migrating, queries
from pweza.store.postgres.urls import driver_url
from pweza.store.postgres.writer import Writer, as_unavailable

if TYPE_CHECKING:
    from pweza.store.postgres.replicas import ReplicaDatabase

T = TypeVar("T")
Row = Mapping[str, Any]

_READY_TIMEOUT: Final = 2.0
_CLOSE_TIMEOUT: Final = 10.0
# Any constant 64-bit key: serialises `open()` of several replicas on one database.
_MIGRATION_LOCK: Final = 0x70_77_65_7A_61_6D_69_67  # "pwezamig"


def _forget(strays: set[asyncio.Future[bool]]) -> Callable[[asyncio.Future[bool]], None]:
    def done(future: asyncio.Future[bool]) -> None:
        strays.discard(future)
        if not future.cancelled():
            future.exception()  # retrieved, so asyncio does not log it

    return done


class PostgresStore:
    def __init__(self, url: str, **overrides: float) -> None:
        self.url, settings = driver_url(url)
        settings.update(overrides)
        self.settings = settings
        self._engine: AsyncEngine | None = None
        self._reader: AsyncEngine | None = None
        self._writer: Writer | None = None
        self._stray: set[asyncio.Future[bool]] = set()

    def replica_database(self) -> ReplicaDatabase:
        """Any number of manager replicas may share this database: they coordinate through it."""
        from pweza.store.postgres.replicas import ReplicaDatabase  # it is built on this module

        return ReplicaDatabase(self)

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
        self._writer = Writer(engine)
        self._writer.start()

    async def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            await writer.stop(_CLOSE_TIMEOUT)
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

        async with self.reader() as connection:
            return await connection.run_sync(compare)

    # -- connections -------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def reader(self) -> AsyncIterator[AsyncConnection]:
        """An autocommit connection from the pool, for reads outside the writer."""
        if self._reader is None:
            raise RuntimeError("store is not open")
        try:
            async with self._reader.connect() as connection:
                yield connection
        except Exception as error:
            translated = as_unavailable(error)
            if translated is error:
                raise
            raise translated from error

    async def call(self, operation: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run `operation` in the next group-commit transaction; its result."""
        return await self._writing().call(operation)

    def _writing(self) -> Writer:
        if self._writer is None:
            raise RuntimeError("store is not open")
        return self._writer

    async def _bulk(self, statement: Executable, rows: list[dict[str, Any]]) -> None:
        if rows:  # an empty batch is no write at all, as on every backend
            await self._writing().bulk(statement, rows)

    async def _all(self, statement: Executable, params: Mapping[str, Any] | None = None) -> list[Row]:
        async with self.reader() as connection:
            result = await connection.execute(statement, params)
            return [cast("Row", row) for row in result.mappings()]

    async def _first(self, statement: Executable, params: Mapping[str, Any] | None = None) -> Row | None:
        rows = await self._all(statement, params)
        return rows[0] if rows else None

    async def _scalar(self, statement: Executable, params: dict[str, Any] | None = None) -> int:
        async with self.reader() as connection:
            return int((await connection.execute(statement, params or {})).scalar_one())

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
            row = (await connection.execute(queries.UPSERT_OBJECT, values)).one()
            return StoredObject(kind, namespace, name, row.generation, body, row.created_at, row.updated_at)

        return await self.call(put)

    async def get_object(self, kind: str, namespace: str, name: str) -> StoredObject | None:
        row = await self._first(queries.SELECT_OBJECT, {"kind": kind, "namespace": namespace, "name": name})
        return None if row is None else codec.OBJECTS.record(row)

    async def list_objects(
        self, kind: str, namespace: str | None, limit: int, after: str | None = None
    ) -> list[StoredObject]:
        statement, params = queries.list_objects(kind, namespace, limit, after)
        return [codec.OBJECTS.record(row) for row in await self._all(statement, params)]

    async def delete_object(self, kind: str, namespace: str, name: str) -> bool:
        values = {"kind": kind, "namespace": namespace, "name": name}

        async def remove(connection: AsyncConnection) -> bool:
            return (await connection.execute(queries.DELETE_OBJECT, values)).rowcount > 0

        return await self.call(remove)

    # -- tasks -----------------------------------------------------------------
    async def insert_tasks(self, tasks: Sequence[Task], attempts: Sequence[Attempt] = ()) -> None:
        # Encoded now: later in-memory changes cannot leak in.
        if not attempts:
            await self._bulk(queries.INSERT_TASK, [codec.TASKS.row(task) for task in tasks])
            return
        await self._write_all(queries.run_writes(None, (), (), tasks, attempts))

    async def update_tasks(self, tasks: Sequence[Task]) -> None:
        await self._bulk(queries.UPDATE_TASK, [queries.task_update_row(task) for task in tasks])

    async def save_attempts(self, attempts: Sequence[Attempt]) -> None:
        await self._bulk(queries.UPSERT_ATTEMPT, [codec.ATTEMPTS.row(attempt) for attempt in attempts])

    async def get_task(self, task_id: str) -> Task | None:
        row = await self._first(queries.SELECT_TASK, {"id": task_id})
        return None if row is None else codec.TASKS.record(row)

    async def list_tasks(self, where: TaskFilter, limit: int, after_seq: int | None = None) -> list[Task]:
        statement, params = queries.list_tasks(where, limit, after_seq)
        return [codec.TASKS.record(row) for row in await self._all(statement, params)]

    async def list_attempts(self, task_id: str) -> list[Attempt]:
        rows = await self._all(queries.SELECT_ATTEMPTS, {"task_id": task_id})
        return [codec.ATTEMPTS.record(row) for row in rows]

    async def save_calls(self, calls: Sequence[CallEntry]) -> None:
        await self._bulk(queries.UPSERT_CALL, [codec.CALLS.row(call) for call in calls])

    async def replace_call_in_state(self, call: CallEntry, state: str) -> bool:
        values = queries.call_replacement(call, state)

        async def replace(connection: AsyncConnection) -> bool:
            return (await connection.execute(queries.REPLACE_CALL_IN_STATE, values)).rowcount > 0

        return await self.call(replace)

    async def run_spent(self, run_id: str) -> Spent:
        return await self._spent(queries.RUN_SPENT, {"run_id": run_id})

    async def pool_spent(self, namespace: str, pool: str, since: float) -> Spent:
        return await self._spent(queries.POOL_SPENT, {"namespace": namespace, "pool": pool, "since": since})

    async def namespace_spent(self, namespace: str, since: float) -> Spent:
        return await self._spent(queries.NAMESPACE_SPENT, {"namespace": namespace, "since": since})

    async def _spent(self, statement: Executable, params: dict[str, Any]) -> Spent:
        async with self.reader() as connection:
            return queries.spent((await connection.execute(statement, params)).all())

    async def list_calls(self, task_ids: Sequence[str]) -> list[CallEntry]:
        found: list[CallEntry] = []
        for chunk in queries.chunks(task_ids):
            found.extend(codec.CALLS.record(row) for row in await self._all(queries.SELECT_CALLS, {"ids": chunk}))
        return found

    # -- model slots -----------------------------------------------------------
    # Each statement commits on its own (the reader's autocommit connection), outside the
    # group-commit batch: a take never holds a row lock past its statement, so replicas taking
    # slots at once cannot deadlock, and a batch never waits for another replica's slots.
    async def take_model_slots(self, claim: SlotClaim) -> bool:
        async with self.reader() as connection:
            took: list[str] = []
            for kind, limit, until in claim.wanted():
                if not await _take_one(connection, claim, kind, limit, until):
                    if took:  # all or none: the slots already taken go back
                        taken = {"b_holder": claim.holder, "b_leases": [claim.lease], "b_kinds": took}
                        await connection.execute(queries.RELEASE_SLOTS, {**taken, "now": claim.now})
                    return False
                took.append(kind)
            return True

    async def release_model_slots(self, holder: str, leases: Sequence[str], kinds: Sequence[str], now: float) -> None:
        async with self.reader() as connection:
            values = {"b_holder": holder, "b_leases": list(leases), "b_kinds": list(kinds), "now": now}
            await connection.execute(queries.RELEASE_SLOTS, values)

    async def load_unfinished_tasks(self) -> list[Task]:
        return [codec.TASKS.record(row) for row in await self._all(queries.SELECT_UNFINISHED_TASKS)]

    async def max_task_seq(self) -> int:
        return await self._scalar(queries.MAX_TASK_SEQ)

    async def get_tasks(self, task_ids: Sequence[str]) -> list[Task]:
        return await self._tasks_by_ids(queries.SELECT_TASKS, task_ids)

    async def list_children(self, parent_ids: Sequence[str], limit: int) -> list[Task]:
        found = await self._tasks_by_ids(queries.SELECT_CHILDREN, parent_ids, limit=limit)
        return queries.newest(found, limit)

    async def _tasks_by_ids(self, statement: Executable, ids: Sequence[str], **params: Any) -> list[Task]:
        """The tasks `statement` selects for `ids`, bound as `ids` in IN-lists of at most ID_CHUNK."""
        chunks = queries.chunks(ids)
        if not chunks:
            return []  # no read at all: not even a closed store is asked
        found: list[Task] = []
        async with self.reader() as connection:
            for chunk in chunks:
                rows = (await connection.execute(statement, {**params, "ids": chunk})).mappings()
                found.extend(codec.TASKS.record(cast("Row", row)) for row in rows)
        return found

    # -- tokens and audit ------------------------------------------------------
    async def insert_token(self, token: TokenRecord) -> None:
        await self._bulk(queries.INSERT_TOKEN, [codec.TOKENS.row(token)])

    async def find_token(self, token_hash: str) -> TokenRecord | None:
        row = await self._first(queries.SELECT_TOKEN, {"hash": token_hash})
        return None if row is None else codec.TOKENS.record(row)

    async def list_tokens(self) -> list[TokenRecord]:
        return [codec.TOKENS.record(row) for row in await self._all(queries.SELECT_TOKENS)]

    async def revoke_token(self, token_id: str, at: float) -> bool:
        async def revoke(connection: AsyncConnection) -> bool:
            return (await connection.execute(queries.REVOKE_TOKEN, {"b_id": token_id, "b_at": at})).rowcount > 0

        return await self.call(revoke)

    async def append_audit(self, entry: AuditEntry) -> None:
        await self._bulk(queries.INSERT_AUDIT, [codec.AUDIT.row(entry)])

    async def list_audit(self, limit: int, before_id: int | None = None) -> list[AuditEntry]:
        statement, params = queries.list_audit(limit, before_id)
        return [codec.AUDIT.record(row) for row in await self._all(statement, params)]

    # -- workflow runs ---------------------------------------------------------
    async def save_run(
        self,
        run: Run | None,
        steps: Sequence[StepRun] = (),
        events: Sequence[RunEvent] = (),
        new_tasks: Sequence[Task] = (),
        new_attempts: Sequence[Attempt] = (),
    ) -> None:
        await self._write_all(queries.run_writes(run, steps, events, new_tasks, new_attempts))

    async def _write_all(self, writes: Sequence[tuple[Executable, list[dict[str, Any]]]]) -> None:
        """Statements with their rows, in one transaction."""

        async def save(connection: AsyncConnection) -> None:
            for statement, rows in writes:
                await connection.execute(statement, rows)

        if writes:
            await self.call(save)

    async def get_run(self, run_id: str) -> Run | None:
        row = await self._first(queries.SELECT_RUN, {"id": run_id})
        return None if row is None else codec.RUNS.record(row)

    async def get_steps(self, run_id: str) -> list[StepRun]:
        return [codec.STEPS.record(row) for row in await self._all(queries.SELECT_STEPS, {"run_id": run_id})]

    async def list_runs(self, where: RunFilter, limit: int, after_seq: int | None = None) -> list[Run]:
        statement, params = queries.list_runs(where, limit, after_seq)
        return [codec.RUNS.record(row) for row in await self._all(statement, params)]

    async def load_active_runs(self) -> list[Run]:
        return [codec.RUNS.record(row) for row in await self._all(queries.SELECT_ACTIVE_RUNS)]

    async def max_run_seq(self) -> int:
        return await self._scalar(queries.MAX_RUN_SEQ)

    async def list_events(self, run_id: str, after_id: int = 0, limit: int = 1000) -> list[RunEvent]:
        params = {"run_id": run_id, "after_id": after_id, "limit": limit}
        return [codec.EVENTS.record(row) for row in await self._all(queries.SELECT_EVENTS, params)]

    # -- retention -------------------------------------------------------------
    async def prune_finished(self, before: float, limit: int) -> int:
        params = {"before": before, "limit": limit}

        async def prune(connection: AsyncConnection) -> int:
            gone_runs = list((await connection.execute(queries.PRUNE_RUNS, params)).scalars())
            gone_tasks = list((await connection.execute(queries.PRUNE_TASKS, params)).scalars())
            for statements, ids in ((queries.PRUNE_WITH_RUNS, gone_runs), (queries.PRUNE_WITH_TASKS, gone_tasks)):
                for chunk in queries.chunks(ids):
                    for statement in statements:
                        await connection.execute(statement, {"ids": chunk})
            return len(gone_runs) + len(gone_tasks)

        return await self.call(prune)


# Free numbers tried before a kind counts as full: each miss means another replica took that
# number between this one's look and its take, so more misses in a row are rare.
_TAKE_TRIES = 4


async def _take_one(connection: AsyncConnection, claim: SlotClaim, kind: str, limit: int, until: float) -> bool:
    """Take a free slot of `kind`: look at the taken numbers, then try free ones; another replica
    may take the same number between the look and the take (the take then returns nothing)."""
    key = {"namespace": claim.namespace, "model": claim.model, "kind": kind, "now": claim.now}
    taken = [row[0] for row in (await connection.execute(queries.TAKEN_SLOTS, key)).all()]
    for number in free_numbers(limit, taken)[:_TAKE_TRIES]:
        values = {**key, "number": number, "lease": claim.lease, "holder": claim.holder, "until": until}
        if (await connection.execute(queries.TAKE_SLOT, values)).first() is not None:
            return True
    return False
