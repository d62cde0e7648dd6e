"""The embedded SQLite backend.

One connection lives on one writer thread. Every call is queued to it; the thread takes
everything queued so far and runs it in a single transaction (group commit), each call
inside its own savepoint so one failing call does not undo the others. Under load this
turns thousands of small writes a second into a few dozen fsync-free WAL commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import create_engine

from pweza.domain.records import AuditEntry, RunFilter, StoredObject, TaskFilter, TokenRecord
from pweza.domain.runs import Run, RunEvent, StepRun
from pweza.domain.tasks import TERMINAL_STATES, Attempt, Task
from pweza.store import codec, migrating
from pweza.store.protocol import Store

T = TypeVar("T")
Operation = Callable[[sqlite3.Connection], Any]
_MAX_BATCH = 512
_TERMINAL = tuple(state.value for state in TERMINAL_STATES)

_TASK_COLUMNS = (
    "id, seq, namespace, pool, state, priority, attempts, max_retries, timeout_seconds, input, "
    "output, error, created_at, not_before, started_at, finished_at, agent_id, parent_id, "
    "labels, cancel_requested, owner, retry"
)
_INSERT_TASK = (
    f"INSERT INTO tasks ({_TASK_COLUMNS}) VALUES ("
    + ", ".join(":" + column.strip() for column in _TASK_COLUMNS.split(","))
    + ")"
)
_UPDATE_TASK = (
    "UPDATE tasks SET state=:state, priority=:priority, attempts=:attempts, output=:output, "
    "error=:error, not_before=:not_before, started_at=:started_at, finished_at=:finished_at, "
    "agent_id=:agent_id, cancel_requested=:cancel_requested WHERE id=:id"
)
_UPSERT_ATTEMPT = (
    "INSERT INTO attempts (task_id, number, agent_id, state, started_at, finished_at, error) "
    "VALUES (:task_id, :number, :agent_id, :state, :started_at, :finished_at, :error) "
    "ON CONFLICT (task_id, number) DO UPDATE SET agent_id=excluded.agent_id, "
    "state=excluded.state, finished_at=excluded.finished_at, error=excluded.error"
)


_RUN_COLUMNS = (
    "id, seq, namespace, workflow, generation, spec, inputs, state, outputs, error, created_at, "
    "finished_at, deadline, retries, owner"
)
_UPSERT_RUN = (
    f"INSERT INTO runs ({_RUN_COLUMNS}) VALUES ("
    + ", ".join(":" + c.strip() for c in _RUN_COLUMNS.split(","))
    + ") ON CONFLICT (id) DO UPDATE SET state=excluded.state, outputs=excluded.outputs, "
    "error=excluded.error, finished_at=excluded.finished_at, deadline=excluded.deadline, retries=excluded.retries"
)
_UPSERT_STEP = (
    "INSERT INTO run_steps (run_id, name, state, retries, attempts, started_at, finished_at, output, error, "
    "items, approval) VALUES (:run_id, :name, :state, :retries, :attempts, :started_at, :finished_at, :output, "
    ":error, :items, :approval) ON CONFLICT (run_id, name) DO UPDATE SET state=excluded.state, "
    "retries=excluded.retries, attempts=excluded.attempts, started_at=excluded.started_at, "
    "finished_at=excluded.finished_at, output=excluded.output, error=excluded.error, items=excluded.items, "
    "approval=excluded.approval"
)
_INSERT_EVENT = "INSERT INTO run_events (run_id, at, type, step, data) VALUES (:run_id, :at, :type, :step, :data)"


class _Call:
    __slots__ = ("error", "future", "operation", "result")

    def __init__(self, operation: Operation, future: asyncio.Future[Any]) -> None:
        self.operation = operation
        self.future = future
        self.result: Any = None
        self.error: BaseException | None = None


def _settle(calls: list[_Call]) -> None:
    for call in calls:
        if call.future.done():
            continue
        if call.error is not None:
            call.future.set_exception(call.error)
        else:
            call.future.set_result(call.result)


class SqliteStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._queue: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connection: sqlite3.Connection | None = None

    # -- lifecycle -------------------------------------------------------------
    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _make_private(self.path)
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self._migrate)
        self._thread = threading.Thread(target=self._serve, name="sqlite-writer", daemon=True)
        ready: asyncio.Future[None] = self._loop.create_future()
        self._thread.start()
        self._queue.put(_Call(lambda _c: None, ready))
        await ready

    def _migrate(self) -> None:
        engine = create_engine(f"sqlite:///{self.path}")
        try:
            with engine.begin() as connection:
                migrating.upgrade(connection)
        finally:
            engine.dispose()

    async def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            await asyncio.to_thread(self._thread.join, 10.0)
            self._thread = None

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        connection.row_factory = sqlite3.Row
        connection.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a killed process; only a power cut may lose the last commit.
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA busy_timeout=5000")
        return connection

    def _serve(self) -> None:
        connection = self._connect()
        self._connection = connection
        assert self._loop is not None
        loop = self._loop
        running = True
        while running:
            first = self._queue.get()
            if first is None:
                break
            calls = [first]
            while len(calls) < _MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    running = False
                    break
                calls.append(item)
            self._run_batch(connection, calls)
            if not loop.is_closed():
                loop.call_soon_threadsafe(_settle, calls)
        connection.close()

    @staticmethod
    def _run_batch(connection: sqlite3.Connection, calls: list[_Call]) -> None:
        try:
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as error:
            for call in calls:
                call.error = error
            return
        for call in calls:
            connection.execute("SAVEPOINT op")
            try:
                result = call.operation(connection)
                # A cursor must never leave this thread: freeing it elsewhere corrupts the connection.
                call.result = None if isinstance(result, sqlite3.Cursor) else result
                connection.execute("RELEASE op")
            except Exception as error:  # noqa: BLE001 - handed to the caller's future
                call.error = error
                connection.execute("ROLLBACK TO op")
                connection.execute("RELEASE op")
        try:
            connection.execute("COMMIT")
        except sqlite3.Error as error:
            connection.execute("ROLLBACK")
            for call in calls:
                call.error = error

    async def _call(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        if self._thread is None or self._loop is None:
            raise RuntimeError("store is not open")
        future: asyncio.Future[T] = self._loop.create_future()
        self._queue.put(_Call(operation, future))
        return await future

    async def check_ready(self) -> bool:
        def check(connection: sqlite3.Connection) -> bool:
            row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
            return row is not None and row[0] == migrating.head_revision()

        try:
            return await asyncio.wait_for(self._call(check), timeout=2.0)
        except (sqlite3.Error, RuntimeError, TimeoutError):
            return False

    # -- objects ---------------------------------------------------------------
    async def put_object(self, kind: str, namespace: str, name: str, body: dict[str, Any]) -> StoredObject:
        text = codec.dumps(body)

        def put(connection: sqlite3.Connection) -> StoredObject:
            now = time.time()
            row = connection.execute(
                "SELECT generation, body, created_at FROM objects WHERE kind=? AND namespace=? AND name=?",
                (kind, namespace, name),
            ).fetchone()
            if row is None:
                generation, created = 1, now
                connection.execute(
                    "INSERT INTO objects VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (kind, namespace, name, generation, text, now, now),
                )
            else:
                generation = row["generation"] + (0 if row["body"] == text else 1)
                created = row["created_at"]
                connection.execute(
                    "UPDATE objects SET generation=?, body=?, updated_at=? WHERE kind=? AND namespace=? AND name=?",
                    (generation, text, now, kind, namespace, name),
                )
            return StoredObject(kind, namespace, name, generation, body, created, now)

        return await self._call(put)

    async def get_object(self, kind: str, namespace: str, name: str) -> StoredObject | None:
        def get(connection: sqlite3.Connection) -> StoredObject | None:
            row = connection.execute(
                "SELECT * FROM objects WHERE kind=? AND namespace=? AND name=?",
                (kind, namespace, name),
            ).fetchone()
            return None if row is None else codec.object_from_row(row)

        return await self._call(get)

    async def list_objects(
        self, kind: str, namespace: str | None, limit: int, after: str | None = None
    ) -> list[StoredObject]:
        def select(connection: sqlite3.Connection) -> list[StoredObject]:
            sql = "SELECT * FROM objects WHERE kind=?"
            params: list[Any] = [kind]
            if namespace is not None:
                sql += " AND namespace=?"
                params.append(namespace)
            if after is not None:
                sql += " AND (namespace || '/' || name) > ?"
                params.append(after)
            sql += " ORDER BY namespace, name LIMIT ?"
            params.append(limit)
            return [codec.object_from_row(row) for row in connection.execute(sql, params)]

        return await self._call(select)

    async def delete_object(self, kind: str, namespace: str, name: str) -> bool:
        def delete(connection: sqlite3.Connection) -> bool:
            cursor = connection.execute(
                "DELETE FROM objects WHERE kind=? AND namespace=? AND name=?",
                (kind, namespace, name),
            )
            return cursor.rowcount > 0

        return await self._call(delete)

    # -- tasks -----------------------------------------------------------------
    async def insert_tasks(self, tasks: Sequence[Task]) -> None:
        rows = [codec.task_row(task) for task in tasks]
        await self._call(lambda connection: connection.executemany(_INSERT_TASK, rows))

    async def update_tasks(self, tasks: Sequence[Task]) -> None:
        rows = [codec.task_row(task) for task in tasks]
        await self._call(lambda connection: connection.executemany(_UPDATE_TASK, rows))

    async def save_attempts(self, attempts: Sequence[Attempt]) -> None:
        rows = [codec.attempt_row(attempt) for attempt in attempts]
        await self._call(lambda connection: connection.executemany(_UPSERT_ATTEMPT, rows))

    async def get_task(self, task_id: str) -> Task | None:
        def get(connection: sqlite3.Connection) -> Task | None:
            row = connection.execute("SELECT * FROM tasks WHERE id=?", (task_id,)).fetchone()
            return None if row is None else codec.task_from_row(row)

        return await self._call(get)

    async def list_tasks(self, where: TaskFilter, limit: int, after_seq: int | None = None) -> list[Task]:
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in (
            ("namespace", where.namespace),
            ("pool", where.pool),
            ("state", None if where.state is None else where.state.value),
            ("parent_id", where.parent_id),
        ):
            if value is not None:
                clauses.append(f"{column}=?")
                params.append(value)
        if after_seq is not None:
            clauses.append("seq<?")
            params.append(after_seq)
        sql = "SELECT * FROM tasks"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY seq DESC LIMIT ?"
        params.append(limit)

        def select(connection: sqlite3.Connection) -> list[Task]:
            return [codec.task_from_row(row) for row in connection.execute(sql, params)]

        return await self._call(select)

    async def list_attempts(self, task_id: str) -> list[Attempt]:
        def select(connection: sqlite3.Connection) -> list[Attempt]:
            rows = connection.execute("SELECT * FROM attempts WHERE task_id=? ORDER BY number", (task_id,))
            return [codec.attempt_from_row(row) for row in rows]

        return await self._call(select)

    async def load_unfinished_tasks(self) -> list[Task]:
        def select(connection: sqlite3.Connection) -> list[Task]:
            marks = ", ".join("?" for _ in _TERMINAL)
            rows = connection.execute(f"SELECT * FROM tasks WHERE state NOT IN ({marks}) ORDER BY seq", _TERMINAL)
            return [codec.task_from_row(row) for row in rows]

        return await self._call(select)

    async def max_task_seq(self) -> int:
        def select(connection: sqlite3.Connection) -> int:
            row = connection.execute("SELECT COALESCE(MAX(seq), 0) FROM tasks").fetchone()
            return int(row[0])

        return await self._call(select)

    # -- tokens and audit ------------------------------------------------------
    async def insert_token(self, token: TokenRecord) -> None:
        values = (token.id, token.name, token.role.value, token.hash, token.created_at, token.pool, token.expires_at)
        statement = (
            "INSERT INTO tokens (id, name, role, hash, created_at, pool, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
        )
        await self._call(lambda connection: connection.execute(statement, values))

    async def find_token(self, token_hash: str) -> TokenRecord | None:
        def get(connection: sqlite3.Connection) -> TokenRecord | None:
            row = connection.execute("SELECT * FROM tokens WHERE hash=?", (token_hash,)).fetchone()
            return None if row is None else codec.token_from_row(row)

        return await self._call(get)

    async def list_tokens(self) -> list[TokenRecord]:
        def select(connection: sqlite3.Connection) -> list[TokenRecord]:
            rows = connection.execute("SELECT * FROM tokens ORDER BY created_at")
            return [codec.token_from_row(row) for row in rows]

        return await self._call(select)

    async def revoke_token(self, token_id: str, at: float) -> bool:
        def revoke(connection: sqlite3.Connection) -> bool:
            cursor = connection.execute(
                "UPDATE tokens SET revoked_at=? WHERE id=? AND revoked_at IS NULL", (at, token_id)
            )
            return cursor.rowcount > 0

        return await self._call(revoke)

    async def append_audit(self, entry: AuditEntry) -> None:
        values = (entry.at, entry.actor, entry.action, entry.target, codec.dumps(entry.detail))
        await self._call(
            lambda connection: connection.execute(
                "INSERT INTO audit (at, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)",
                values,
            )
        )

    async def list_audit(self, limit: int, before_id: int | None = None) -> list[AuditEntry]:
        def select(connection: sqlite3.Connection) -> list[AuditEntry]:
            if before_id is None:
                rows = connection.execute("SELECT * FROM audit ORDER BY id DESC LIMIT ?", (limit,))
            else:
                rows = connection.execute("SELECT * FROM audit WHERE id<? ORDER BY id DESC LIMIT ?", (before_id, limit))
            return [codec.audit_from_row(row) for row in rows]

        return await self._call(select)

    async def get_tasks(self, task_ids: Sequence[str]) -> list[Task]:
        ids = list(task_ids)

        def select(connection: sqlite3.Connection) -> list[Task]:
            found: list[Task] = []
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ", ".join("?" for _ in chunk)
                rows = connection.execute(f"SELECT * FROM tasks WHERE id IN ({marks})", chunk)
                found.extend(codec.task_from_row(row) for row in rows)
            return found

        return await self._call(select)

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

        def save(connection: sqlite3.Connection) -> None:
            if run_values is not None:
                connection.execute(_UPSERT_RUN, run_values)
            if step_values:
                connection.executemany(_UPSERT_STEP, step_values)
            if event_values:
                connection.executemany(_INSERT_EVENT, event_values)
            if task_values:
                connection.executemany(_INSERT_TASK, task_values)

        await self._call(save)

    async def get_run(self, run_id: str) -> Run | None:
        def get(connection: sqlite3.Connection) -> Run | None:
            row = connection.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
            return None if row is None else codec.run_from_row(row)

        return await self._call(get)

    async def get_steps(self, run_id: str) -> list[StepRun]:
        def select(connection: sqlite3.Connection) -> list[StepRun]:
            rows = connection.execute("SELECT * FROM run_steps WHERE run_id=?", (run_id,))
            return [codec.step_from_row(row) for row in rows]

        return await self._call(select)

    async def list_runs(self, where: RunFilter, limit: int, after_seq: int | None = None) -> list[Run]:
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in (
            ("namespace", where.namespace),
            ("workflow", where.workflow),
            ("state", where.state),
        ):
            if value is not None:
                clauses.append(f"{column}=?")
                params.append(value)
        if after_seq is not None:
            clauses.append("seq<?")
            params.append(after_seq)
        sql = "SELECT * FROM runs" + (" WHERE " + " AND ".join(clauses) if clauses else "")
        sql += " ORDER BY seq DESC LIMIT ?"
        params.append(limit)

        def select(connection: sqlite3.Connection) -> list[Run]:
            return [codec.run_from_row(row) for row in connection.execute(sql, params)]

        return await self._call(select)

    async def load_active_runs(self) -> list[Run]:
        def select(connection: sqlite3.Connection) -> list[Run]:
            rows = connection.execute("SELECT * FROM runs WHERE state='running' ORDER BY seq")
            return [codec.run_from_row(row) for row in rows]

        return await self._call(select)

    async def max_run_seq(self) -> int:
        def select(connection: sqlite3.Connection) -> int:
            return int(connection.execute("SELECT COALESCE(MAX(seq), 0) FROM runs").fetchone()[0])

        return await self._call(select)

    async def list_events(self, run_id: str, after_id: int = 0, limit: int = 1000) -> list[RunEvent]:
        def select(connection: sqlite3.Connection) -> list[RunEvent]:
            rows = connection.execute(
                "SELECT * FROM run_events WHERE run_id=? AND id>? ORDER BY id LIMIT ?",
                (run_id, after_id, limit),
            )
            return [codec.event_from_row(row) for row in rows]

        return await self._call(select)

    # -- retention -------------------------------------------------------------
    async def prune_finished(self, before: float, limit: int) -> int:
        terminal = ", ".join("?" for _ in _TERMINAL)
        select_runs = "SELECT id FROM runs WHERE state<>'running' AND finished_at<? ORDER BY finished_at LIMIT ?"
        # A task stays while its run is running or its parent is unfinished: both may still read it.
        # The unary + keeps SQLite off ix_tasks_state: walking ix_tasks_finished stops after `limit` rows.
        select_tasks = (
            f"SELECT t.id FROM tasks AS t WHERE +t.state IN ({terminal}) AND t.finished_at<? "
            "AND NOT EXISTS (SELECT 1 FROM runs AS r WHERE r.id=json_extract(t.labels, '$.run') "
            "AND r.state='running') "
            f"AND NOT EXISTS (SELECT 1 FROM tasks AS p WHERE p.id=t.parent_id AND p.state NOT IN ({terminal})) "
            "ORDER BY t.finished_at LIMIT ?"
        )

        def prune(connection: sqlite3.Connection) -> int:
            run_ids = [row[0] for row in connection.execute(select_runs, (before, limit))]
            task_ids = [row[0] for row in connection.execute(select_tasks, (*_TERMINAL, before, *_TERMINAL, limit))]
            for table, column, ids in (
                ("run_steps", "run_id", run_ids),
                ("run_events", "run_id", run_ids),
                ("runs", "id", run_ids),
                ("attempts", "task_id", task_ids),
                ("tasks", "id", task_ids),
            ):
                for start in range(0, len(ids), 500):
                    chunk = ids[start : start + 500]
                    marks = ", ".join("?" for _ in chunk)
                    connection.execute(f"DELETE FROM {table} WHERE {column} IN ({marks})", chunk)
            return len(run_ids) + len(task_ids)

        return await self._call(prune)


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
