"""The embedded SQLite backend: `queries`' statements on the group-commit writer's connection.

Reads are queued to the writer too: one connection serves everything, in call order.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Executable, create_engine

from pweza.domain.model_slots import SlotClaim, free_numbers
from pweza.domain.pricing import Spent
from pweza.domain.records import AuditEntry, RunFilter, StoredObject, TaskFilter, TokenRecord
from pweza.domain.runs import Run, RunEvent, StepRun
from pweza.domain.tasks import Attempt, CallEntry, Task
from pweza.store import codec, migrating, queries
from pweza.store.codec import RowCodec
from pweza.store.protocol import Store
from pweza.store.sqlite.statements import execute, execute_many, fetch_all, fetch_one
from pweza.store.sqlite.writer import Writer

R = TypeVar("R")


class SqliteStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._writer = Writer(self.path)

    def replica_database(self) -> None:
        """None: the file serves one manager (SQLite cannot be shared by replicas)."""
        return None

    # -- lifecycle -------------------------------------------------------------
    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _make_private(self.path)
        await asyncio.to_thread(self._migrate)
        await self._writer.start()

    def _migrate(self) -> None:
        engine = create_engine(f"sqlite:///{self.path}")
        try:
            with engine.begin() as connection:
                migrating.upgrade(connection)
        finally:
            engine.dispose()

    async def close(self) -> None:
        await self._writer.stop()

    async def check_ready(self) -> bool:
        def check(connection: sqlite3.Connection) -> bool:
            row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
            return row is not None and row[0] == migrating.head_revision()

        try:
            return await asyncio.wait_for(self._writer.call(check), timeout=2.0)
        except (sqlite3.Error, RuntimeError, TimeoutError):
            return False

    async def _write_many(self, statement: Executable, rows: list[dict[str, Any]]) -> None:
        if rows:  # an empty batch is no write at all, as on every backend
            await self._writer.call(lambda connection: execute_many(connection, statement, rows))

    # Rows are decoded on the writer's thread, between its statements: handing sqlite3 rows to
    # the event loop instead makes it contend with the next batch for the GIL (reads 40% slower).
    async def _select(self, records: RowCodec[R], statement: Executable, params: dict[str, Any]) -> list[R]:
        def select(connection: sqlite3.Connection) -> list[R]:
            return [records.record(row) for row in fetch_all(connection, statement, params)]

        return await self._writer.call(select)

    async def _select_one(self, records: RowCodec[R], statement: Executable, params: dict[str, Any]) -> R | None:
        def select(connection: sqlite3.Connection) -> R | None:
            row = fetch_one(connection, statement, params)
            return None if row is None else records.record(row)

        return await self._writer.call(select)

    async def _scalar(self, statement: Executable, params: dict[str, Any] | None = None) -> int:
        def select(connection: sqlite3.Connection) -> int:
            row = fetch_one(connection, statement, params or {})
            return 0 if row is None else int(row[0])

        return await self._writer.call(select)

    # -- objects ---------------------------------------------------------------
    async def put_object(self, kind: str, namespace: str, name: str, body: dict[str, Any]) -> StoredObject:
        text = codec.dumps(body)

        def put(connection: sqlite3.Connection) -> StoredObject:
            now = time.time()
            values = {
                "kind": kind,
                "namespace": namespace,
                "name": name,
                "generation": 1,
                "body": text,
                "created_at": now,
                "updated_at": now,
            }
            (row,) = fetch_all(connection, queries.UPSERT_OBJECT, values)
            return StoredObject(kind, namespace, name, row["generation"], body, row["created_at"], row["updated_at"])

        return await self._writer.call(put)

    async def get_object(self, kind: str, namespace: str, name: str) -> StoredObject | None:
        return await self._select_one(
            codec.OBJECTS, queries.SELECT_OBJECT, {"kind": kind, "namespace": namespace, "name": name}
        )

    async def list_objects(
        self, kind: str, namespace: str | None, limit: int, after: str | None = None
    ) -> list[StoredObject]:
        statement, params = queries.list_objects(kind, namespace, limit, after)
        return await self._select(codec.OBJECTS, statement, params)

    async def delete_object(self, kind: str, namespace: str, name: str) -> bool:
        values = {"kind": kind, "namespace": namespace, "name": name}

        def delete(connection: sqlite3.Connection) -> bool:
            return execute(connection, queries.DELETE_OBJECT, values).rowcount > 0

        return await self._writer.call(delete)

    # -- tasks -----------------------------------------------------------------
    async def insert_tasks(self, tasks: Sequence[Task], attempts: Sequence[Attempt] = ()) -> None:
        await self._write_all(queries.run_writes(None, (), (), tasks, attempts))

    async def update_tasks(self, tasks: Sequence[Task]) -> None:
        await self._write_many(queries.UPDATE_TASK, [queries.task_update_row(task) for task in tasks])

    async def save_attempts(self, attempts: Sequence[Attempt]) -> None:
        await self._write_many(queries.UPSERT_ATTEMPT, [codec.ATTEMPTS.row(attempt) for attempt in attempts])

    async def get_task(self, task_id: str) -> Task | None:
        return await self._select_one(codec.TASKS, queries.SELECT_TASK, {"id": task_id})

    async def list_tasks(self, where: TaskFilter, limit: int, after_seq: int | None = None) -> list[Task]:
        statement, params = queries.list_tasks(where, limit, after_seq)
        return await self._select(codec.TASKS, statement, params)

    async def list_attempts(self, task_id: str) -> list[Attempt]:
        return await self._select(codec.ATTEMPTS, queries.SELECT_ATTEMPTS, {"task_id": task_id})

    async def save_calls(self, calls: Sequence[CallEntry]) -> None:
        await self._write_many(queries.UPSERT_CALL, [codec.CALLS.row(call) for call in calls])

    async def replace_call_in_state(self, call: CallEntry, state: str) -> bool:
        values = queries.call_replacement(call, state)
        return await self._writer.call(
            lambda connection: execute(connection, queries.REPLACE_CALL_IN_STATE, values).rowcount > 0
        )

    async def run_spent(self, run_id: str) -> Spent:
        return await self._spent(queries.RUN_SPENT, {"run_id": run_id})

    async def pool_spent(self, namespace: str, pool: str, since: float) -> Spent:
        return await self._spent(queries.POOL_SPENT, {"namespace": namespace, "pool": pool, "since": since})

    async def namespace_spent(self, namespace: str, since: float) -> Spent:
        return await self._spent(queries.NAMESPACE_SPENT, {"namespace": namespace, "since": since})

    async def _spent(self, statement: Executable, params: dict[str, Any]) -> Spent:
        return await self._writer.call(lambda connection: queries.spent(fetch_all(connection, statement, params)))

    async def list_calls(self, task_ids: Sequence[str]) -> list[CallEntry]:
        found: list[CallEntry] = []
        for chunk in queries.chunks(task_ids):
            found.extend(await self._select(codec.CALLS, queries.SELECT_CALLS, {"ids": chunk}))
        return found

    # -- model slots -----------------------------------------------------------
    # One connection serves every caller in turn, so looking and taking cannot interleave.
    async def take_model_slots(self, claim: SlotClaim) -> bool:
        def take(connection: sqlite3.Connection) -> bool:
            chosen: list[tuple[str, int, float]] = []
            for kind, limit, until in claim.wanted():
                params = {"namespace": claim.namespace, "model": claim.model, "kind": kind, "now": claim.now}
                free = free_numbers(limit, (row[0] for row in fetch_all(connection, queries.TAKEN_SLOTS, params)))
                if not free:
                    return False
                chosen.append((kind, free[0], until))
            for kind, number, until in chosen:
                values = {
                    "namespace": claim.namespace, "model": claim.model, "kind": kind, "number": number,
                    "lease": claim.lease, "holder": claim.holder, "until": until, "now": claim.now,
                }  # fmt: skip
                fetch_all(connection, queries.TAKE_SLOT, values)
            return True

        return await self._writer.call(take)

    async def release_model_slots(self, holder: str, leases: Sequence[str], kinds: Sequence[str], now: float) -> None:
        values = {"b_holder": holder, "b_leases": list(leases), "b_kinds": list(kinds), "now": now}
        await self._writer.call(lambda connection: execute(connection, queries.RELEASE_SLOTS, values))

    async def load_unfinished_tasks(self) -> list[Task]:
        return await self._select(codec.TASKS, queries.SELECT_UNFINISHED_TASKS, {})

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
            return []

        def select(connection: sqlite3.Connection) -> list[Task]:
            found: list[Task] = []
            for chunk in chunks:
                rows = fetch_all(connection, statement, {**params, "ids": chunk})
                found.extend(codec.TASKS.record(row) for row in rows)
            return found

        return await self._writer.call(select)

    # -- tokens and audit ------------------------------------------------------
    async def insert_token(self, token: TokenRecord) -> None:
        await self._write_many(queries.INSERT_TOKEN, [codec.TOKENS.row(token)])

    async def find_token(self, token_hash: str) -> TokenRecord | None:
        return await self._select_one(codec.TOKENS, queries.SELECT_TOKEN, {"hash": token_hash})

    async def list_tokens(self) -> list[TokenRecord]:
        return await self._select(codec.TOKENS, queries.SELECT_TOKENS, {})

    async def revoke_token(self, token_id: str, at: float) -> bool:
        def revoke(connection: sqlite3.Connection) -> bool:
            return execute(connection, queries.REVOKE_TOKEN, {"b_id": token_id, "b_at": at}).rowcount > 0

        return await self._writer.call(revoke)

    async def append_audit(self, entry: AuditEntry) -> None:
        await self._write_many(queries.INSERT_AUDIT, [codec.AUDIT.row(entry)])

    async def list_audit(self, limit: int, before_id: int | None = None) -> list[AuditEntry]:
        statement, params = queries.list_audit(limit, before_id)
        return await self._select(codec.AUDIT, statement, params)

    # -- workflow runs ---------------------------------------------------------
    async def save_run(
        self,
        run: Run | None,
        steps: Sequence[StepRun] = (),
        events: Sequence[RunEvent] = (),
        new_tasks: Sequence[Task] = (),
        new_attempts: Sequence[Attempt] = (),
    ) -> None:
        # Encoded now: later changes cannot leak in.
        await self._write_all(queries.run_writes(run, steps, events, new_tasks, new_attempts))

    async def _write_all(self, writes: Sequence[tuple[Executable, list[dict[str, Any]]]]) -> None:
        """Statements with their rows, in one transaction."""

        def save(connection: sqlite3.Connection) -> None:
            for statement, rows in writes:
                execute_many(connection, statement, rows)

        if writes:
            await self._writer.call(save)

    async def get_run(self, run_id: str) -> Run | None:
        return await self._select_one(codec.RUNS, queries.SELECT_RUN, {"id": run_id})

    async def get_steps(self, run_id: str) -> list[StepRun]:
        return await self._select(codec.STEPS, queries.SELECT_STEPS, {"run_id": run_id})

    async def list_runs(self, where: RunFilter, limit: int, after_seq: int | None = None) -> list[Run]:
        statement, params = queries.list_runs(where, limit, after_seq)
        return await self._select(codec.RUNS, statement, params)

    async def load_active_runs(self) -> list[Run]:
        return await self._select(codec.RUNS, queries.SELECT_ACTIVE_RUNS, {})

    async def max_run_seq(self) -> int:
        return await self._scalar(queries.MAX_RUN_SEQ)

    async def list_events(self, run_id: str, after_id: int = 0, limit: int = 1000) -> list[RunEvent]:
        params = {"run_id": run_id, "after_id": after_id, "limit": limit}
        return await self._select(codec.EVENTS, queries.SELECT_EVENTS, params)

    # -- retention -------------------------------------------------------------
    async def prune_finished(self, before: float, limit: int) -> int:
        params = {"before": before, "limit": limit}

        def prune(connection: sqlite3.Connection) -> int:
            gone_runs = [row[0] for row in fetch_all(connection, queries.PRUNE_RUNS, params)]
            gone_tasks = [row[0] for row in fetch_all(connection, queries.PRUNE_TASKS, params)]
            for statements, ids in ((queries.PRUNE_WITH_RUNS, gone_runs), (queries.PRUNE_WITH_TASKS, gone_tasks)):
                for chunk in queries.chunks(ids):
                    for statement in statements:
                        execute(connection, statement, {"ids": chunk})
            return len(gone_runs) + len(gone_tasks)

        return await self._writer.call(prune)


def _make_private(path: Path) -> None:
    """Create the database file readable by its owner only, before SQLite opens it.

    The database holds token hashes, task inputs and outputs. SQLite creates the -wal and
    -shm files with the database file's permissions, so making this one file private makes
    all three private. A database created by an older version is tightened the same way.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            companion = path.with_name(path.name + suffix)
            if companion.stat().st_mode & 0o077:
                companion.chmod(0o600)


def open_store(url: str) -> Store:
    """Pick the backend from a DATABASE_URL-style string."""
    if url.startswith("sqlite:///"):
        return SqliteStore(url.removeprefix("sqlite:///"))
    if url.startswith(("postgresql://", "postgres://", "postgresql+")):
        from pweza.store.postgres import PostgresStore  # imported only when used: asyncpg and greenlet

        return PostgresStore(url)
    raise ValueError(f"unsupported DATABASE_URL {url!r}; use sqlite:///PATH or postgresql://USER@HOST:PORT/DATABASE")
