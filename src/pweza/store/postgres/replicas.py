"""What several manager replicas on one PostgreSQL database need from it, beyond the `Store`.

- Ownership: a task or run being worked on has an `owner` (a replica id). Ownership changes
  only by a conditional update under a row lock, and a replica's writes of task state are
  applied only to the rows it still owns, so a replica that lost a task (its agent moved to
  another replica, or it was presumed dead) can no longer overwrite it.
- Claims: pending tasks are taken with ``FOR UPDATE SKIP LOCKED``: exactly one replica wins each.
- Leases: `leases` holds each replica's liveness and the singleton duties' lease; expiry is
  judged by the database's clock, so replicas' clocks need not agree.
- Sequence numbers come in blocks from `counters`.
- Notifications (``NOTIFY``, sent in the same transaction as the change, so they arrive only
  once it is committed): ``pweza_pending`` (a pool has work), ``pweza_done`` (tasks finished),
  ``pweza_cancel`` (a task's owner should cancel it).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final, cast

from sqlalchemy import Float, bindparam, func, literal_column, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from pweza.domain.runs import Run, RunEvent, StepRun
from pweza.domain.tasks import ACTIVE_STATES, TERMINAL_STATES, Attempt, Task, TaskError, TaskState
from pweza.store import codec, queries
from pweza.store.postgres.channels import (
    CANCEL_CHANNEL,
    DONE_CHANNEL,
    DRAIN_CHANNEL,
    PENDING_CHANNEL,
    notify,
    pool_payload,
)
from pweza.store.postgres.listener import Listener
from pweza.store.postgres.store import PostgresStore
from pweza.store.schema import agent_directory, counters, leases, runs, tasks

_ACTIVE: Final = tuple(state.value for state in ACTIVE_STATES)
_FINISHED: Final = tuple(state.value for state in TERMINAL_STATES)
_DB_NOW: Final = literal_column("extract(epoch from clock_timestamp())", Float)
_REPLICA_PREFIX: Final = "replica/"

# The store's columns of a task update, plus the owner (which only the replicas' own writes set).
_OWNED_COLUMNS: Final = (*queries.TASK_MUTABLE, "owner")
_UPDATE_OWNED: Final = (
    update(tasks)
    .where(tasks.c.id == bindparam("b_id"))
    .values(
        {
            column: bindparam(f"b_{column}")
            if column != "cancel_requested"
            # A cancel asked for on another replica is never undone by the owner's older copy.
            else tasks.c.cancel_requested | bindparam("b_cancel_requested")
            for column in _OWNED_COLUMNS
        }
    )
)


class ReplicaDatabase:
    """What the replicas do on their shared database, on a `PostgresStore`'s connections and writer."""

    def __init__(self, store: PostgresStore) -> None:
        self.store = store

    # -- liveness and leases ---------------------------------------------------
    async def heartbeat(self, replica: str, ttl: float) -> None:
        """Say this replica is alive for another `ttl` seconds."""
        await self._hold(_REPLICA_PREFIX + replica, replica, ttl, force=True)

    async def retire(self, replica: str) -> None:
        """A clean stop: drop the replica's liveness, any lease it holds and its agents' entries."""

        async def drop(connection: AsyncConnection) -> None:
            await connection.execute(leases.delete().where(leases.c.holder == replica))
            await connection.execute(agent_directory.delete().where(agent_directory.c.replica == replica))

        await self.store.call(drop)

    async def hold(self, name: str, holder: str, ttl: float) -> bool:
        """Take or renew the lease `name`; False while another live holder has it."""
        return await self._hold(name, holder, ttl, force=False)

    async def _hold(self, name: str, holder: str, ttl: float, *, force: bool) -> bool:
        insert = pg_insert(leases).values(name=name, holder=holder, expires=_DB_NOW + ttl)
        condition = None if force else (leases.c.holder == holder) | (leases.c.expires < _DB_NOW)
        statement = insert.on_conflict_do_update(
            index_elements=[leases.c.name],
            set_={"holder": insert.excluded.holder, "expires": insert.excluded.expires},
            where=condition,
        ).returning(leases.c.holder)

        async def upsert(connection: AsyncConnection) -> bool:
            return (await connection.execute(statement)).first() is not None

        return await self.store.call(upsert)

    def _live_replicas(self) -> Any:
        """Replicas whose liveness has not expired (a subquery)."""
        return select(leases.c.holder).where(
            leases.c.name.startswith(_REPLICA_PREFIX, autoescape=True), leases.c.expires >= _DB_NOW
        )

    async def next_block(self, counter: str, size: int) -> int:
        """The first of `size` fresh sequence numbers; blocks never overlap across replicas."""
        table = tasks if counter == "tasks" else runs
        start = select(func.coalesce(func.max(table.c.seq), 0) + size).scalar_subquery()
        insert = pg_insert(counters).values(name=counter, value=start)
        statement = insert.on_conflict_do_update(
            index_elements=[counters.c.name], set_={"value": counters.c.value + size}
        ).returning(counters.c.value)

        async def take(connection: AsyncConnection) -> int:
            return int((await connection.execute(statement)).scalar_one())

        return await self.store.call(take) - size + 1

    # -- tasks -----------------------------------------------------------------
    async def insert_tasks(self, new: Sequence[Task]) -> None:
        """Insert pending tasks and tell every replica their pools have work."""
        rows = [codec.TASKS.row(task) for task in new]
        pools = {pool_payload(task.namespace, task.pool) for task in new}

        async def insert(connection: AsyncConnection) -> None:
            await connection.execute(queries.INSERT_TASK, rows)
            await notify(connection, PENDING_CHANNEL, sorted(pools))

        if rows:
            await self.store.call(insert)

    async def claim(self, owner: str, namespace: str, pool: str, limit: int) -> list[Task]:
        """Up to `limit` due pending tasks of the pool, highest priority then oldest, now ours,
        each with its next attempt number already counted in `attempts`."""
        due = (
            select(tasks.c.id)
            .where(
                tasks.c.namespace == namespace,
                tasks.c.pool == pool,
                tasks.c.state == TaskState.PENDING.value,
                tasks.c.owner.is_(None),
                # Not filtered on cancel_requested: a task released as its cancel was requested
                # is finished as cancelled by whoever claims it, else it stays pending for ever.
                tasks.c.not_before <= _DB_NOW,
            )
            .order_by(tasks.c.priority.desc(), tasks.c.seq)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        statement = (
            update(tasks)
            .where(tasks.c.id.in_(due.scalar_subquery()))
            # The attempt number is taken here, durably: if this replica dies before handing the
            # task out, the next attempt gets a new number, so no attempt number runs twice.
            .values(state=TaskState.ASSIGNED.value, owner=owner, agent_id=None, attempts=tasks.c.attempts + 1)
            .returning(*tasks.c)
        )

        async def take(connection: AsyncConnection) -> list[Task]:
            rows = (await connection.execute(statement)).mappings()
            return [codec.TASKS.record(cast("Mapping[str, Any]", row)) for row in rows]

        claimed = await self.store.call(take)
        claimed.sort(key=lambda task: (-task.priority, task.seq))
        return claimed

    async def write(self, owner: str, changed: Sequence[Task], tried: Sequence[Attempt]) -> set[str]:
        """Write task state and attempts of the tasks `owner` still owns; the ids it no longer owns.

        Finished tasks are announced on ``pweza_done``; tasks handed back (pending, no owner)
        on ``pweza_pending``, all in the same transaction.
        """
        rows = {task.id: queries.task_update_row(task, _OWNED_COLUMNS) for task in changed}
        attempt_rows = [codec.ATTEMPTS.row(attempt) for attempt in tried]
        finished = [task.id for task in changed if task.state.terminal]
        released = {task.id: pool_payload(task.namespace, task.pool) for task in changed if task.owner is None}
        ids = sorted(set(rows) | {row["task_id"] for row in attempt_rows})

        async def apply(connection: AsyncConnection) -> set[str]:
            # Found by primary key and filtered here: a condition on `owner` in SQL can lead the
            # planner to the owner index, which holds every task the replica ever finished.
            locked = select(tasks.c.id, tasks.c.owner).where(tasks.c.id.in_(ids)).with_for_update()
            owned = {row.id for row in await connection.execute(locked) if row.owner == owner}
            updates = [row for task_id, row in rows.items() if task_id in owned]
            if updates:
                await connection.execute(_UPDATE_OWNED, updates)
            mine = [row for row in attempt_rows if row["task_id"] in owned]
            if mine:
                await connection.execute(queries.UPSERT_ATTEMPT, mine)
            await notify(connection, DONE_CHANNEL, [task_id for task_id in finished if task_id in owned])
            pools = {pool for task_id, pool in released.items() if task_id in owned}
            await notify(connection, PENDING_CHANNEL, sorted(pools))
            return set(ids) - owned

        if not ids:
            return set()
        return await self.store.call(apply)

    async def adopt(
        self, owner: str, refs: Sequence[tuple[str, int]], *, agent_id: str, namespace: str, pool: str
    ) -> list[Task]:
        """Take over attempts an agent reports running after it reconnected to this replica.

        Only an attempt still active with the same number, handed to this very agent id, of the
        agent's own pool moves: one already given up on (failed as lost, retried) stays with
        whoever handled that, and one handed to another agent stays with it. (An assignment is
        written before it is sent, so the agent an attempt went to is always known here.)
        """
        numbers = dict(refs)

        async def take(connection: AsyncConnection) -> list[Task]:
            candidates = (
                select(tasks.c.id, tasks.c.attempts)
                .where(
                    tasks.c.id.in_(list(numbers)),
                    tasks.c.state.in_(_ACTIVE),
                    tasks.c.agent_id == agent_id,
                    tasks.c.namespace == namespace,
                    tasks.c.pool == pool,
                )
                .with_for_update()
            )
            matching = [row.id for row in await connection.execute(candidates) if numbers[row.id] == row.attempts]
            if not matching:
                return []
            statement = update(tasks).where(tasks.c.id.in_(matching)).values(owner=owner).returning(*tasks.c)
            rows = (await connection.execute(statement)).mappings()
            return [codec.TASKS.record(cast("Mapping[str, Any]", row)) for row in rows]

        if not numbers:
            return []
        return await self.store.call(take)

    async def orphans(self, owner: str, limit: int) -> list[Task]:
        """Unfinished tasks owned by replicas that stopped heartbeating, now owned by `owner`."""
        dead = (
            select(tasks.c.id)
            .where(
                tasks.c.state.in_(_ACTIVE),
                tasks.c.owner.is_not(None),
                tasks.c.owner.not_in(self._live_replicas()),
            )
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        statement = update(tasks).where(tasks.c.id.in_(dead.scalar_subquery())).values(owner=owner).returning(*tasks.c)

        async def take(connection: AsyncConnection) -> list[Task]:
            rows = (await connection.execute(statement)).mappings()
            return [codec.TASKS.record(cast("Mapping[str, Any]", row)) for row in rows]

        return await self.store.call(take)

    async def left_behind(self, owner: str) -> tuple[list[Task], list[str]]:
        """Unfinished tasks and running runs still owned by `owner` (a replica restarted under the
        same name finds what its previous process held)."""
        return await self.owned_tasks(owner), await self.owned_runs(owner)

    async def owned_tasks(self, owner: str) -> list[Task]:
        """Unfinished tasks owned by `owner`."""
        statement = select(tasks).where(tasks.c.owner == owner, tasks.c.state.not_in(_FINISHED))
        async with self.store.reader() as connection:
            rows = (await connection.execute(statement)).mappings()
            return [codec.TASKS.record(cast("Mapping[str, Any]", row)) for row in rows]

    async def owned_runs(self, owner: str) -> list[str]:
        """Ids of the running runs owned by `owner`."""
        statement = select(runs.c.id).where(runs.c.owner == owner, runs.c.state == "running")
        async with self.store.reader() as connection:
            return [str(value) for value in (await connection.execute(statement)).scalars()]

    async def announce_due(self) -> int:
        """Notify every pool that has due pending tasks nobody owns (retries whose backoff
        ended, work a replica handed back): a safety net under the event-driven path."""
        pools = (
            select(tasks.c.namespace, tasks.c.pool)
            .where(
                tasks.c.state == TaskState.PENDING.value,
                tasks.c.owner.is_(None),
                tasks.c.not_before <= _DB_NOW,
            )
            .distinct()
        )

        async def announce(connection: AsyncConnection) -> int:
            found = [pool_payload(row.namespace, row.pool) for row in await connection.execute(pools)]
            await notify(connection, PENDING_CHANNEL, found)
            return len(found)

        return await self.store.call(announce)

    async def request_cancel(self, task_id: str, error: TaskError, now: float) -> Task | None:
        """Cancel a task whichever replica holds it: a pending, unowned task is cancelled here and
        now; otherwise the request is recorded and its owner told. None if the task is unknown."""
        locked = select(tasks).where(tasks.c.id == task_id).with_for_update()

        async def cancel(connection: AsyncConnection) -> Task | None:
            row = (await connection.execute(locked)).mappings().first()
            if row is None:
                return None
            task = codec.TASKS.record(cast("Mapping[str, Any]", row))
            if task.state.terminal:
                return task
            task.cancel_requested = True
            if task.state is TaskState.PENDING and task.owner is None:
                task.state = TaskState.CANCELLED
                task.finished_at = now
                task.error = error
                values: dict[str, Any] = {
                    "cancel_requested": True,
                    "state": task.state.value,
                    "finished_at": now,
                    "error": codec.TASKS.row(task)["error"],
                }
                await connection.execute(update(tasks).where(tasks.c.id == task_id).values(values))
                await notify(connection, DONE_CHANNEL, [task_id])
                return task
            await connection.execute(update(tasks).where(tasks.c.id == task_id).values(cancel_requested=True))
            await notify(connection, CANCEL_CHANNEL, [task_id])
            return task

        return await self.store.call(cancel)

    # -- runs ------------------------------------------------------------------
    async def save_run(
        self,
        owner: str,
        run_id: str,
        run: Run | None,
        steps: Sequence[StepRun],
        events: Sequence[RunEvent],
        new_tasks: Sequence[Task],
    ) -> bool:
        """`Store.save_run` under a lock on the run's row, only while `owner` may drive the run
        (it owns it, or nobody drives it: new, finished or unowned). False: nothing written."""
        writes = queries.run_writes(run, steps, events, new_tasks)
        pools = sorted({pool_payload(task.namespace, task.pool) for task in new_tasks})
        locked = select(runs.c.owner, runs.c.state).where(runs.c.id == run_id).with_for_update()

        async def save(connection: AsyncConnection) -> bool:
            row = (await connection.execute(locked)).first()
            if row is not None and row.owner not in (None, owner) and row.state == "running":
                return False
            for statement, rows in writes:
                await connection.execute(statement, rows)
            if row is not None and row.owner != owner:
                await connection.execute(update(runs).where(runs.c.id == run_id).values(owner=owner))
            await notify(connection, PENDING_CHANNEL, pools)
            return True

        return await self.store.call(save)

    async def take_run(self, run_id: str, owner: str) -> bool:
        """Make `owner` the replica driving a running run (to act on a command it received)."""
        statement = (
            update(runs).where(runs.c.id == run_id, runs.c.state == "running").values(owner=owner).returning(runs.c.id)
        )

        async def take(connection: AsyncConnection) -> bool:
            return (await connection.execute(statement)).first() is not None

        return await self.store.call(take)

    async def orphan_runs(self, owner: str, limit: int) -> list[str]:
        """Running runs whose replica stopped heartbeating (or that nobody drives), now `owner`'s."""
        dead = (
            select(runs.c.id)
            .where(runs.c.state == "running")
            .where(runs.c.owner.is_(None) | runs.c.owner.not_in(self._live_replicas()))
            .order_by(runs.c.seq)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        statement = update(runs).where(runs.c.id.in_(dead.scalar_subquery())).values(owner=owner).returning(runs.c.id)

        async def take(connection: AsyncConnection) -> list[str]:
            return [str(value) for value in (await connection.execute(statement)).scalars()]

        return await self.store.call(take)

    async def replicas(self) -> list[tuple[str, float]]:
        """Live replicas and how many seconds each has left."""
        statement = select(leases.c.holder, (leases.c.expires - _DB_NOW).label("left")).where(
            leases.c.name.startswith(_REPLICA_PREFIX, autoescape=True), leases.c.expires >= _DB_NOW
        )
        async with self.store.reader() as connection:
            return [(str(row.holder), float(row.left)) for row in await connection.execute(statement)]

    async def holder(self, name: str) -> str | None:
        """Who holds the lease `name` now, if anyone."""
        statement = select(leases.c.holder).where(leases.c.name == name, leases.c.expires >= _DB_NOW)
        async with self.store.reader() as connection:
            value = (await connection.execute(statement)).scalar()
        return None if value is None else str(value)

    # -- the agent directory ---------------------------------------------------
    async def publish_agents(self, replica: str, agents: Sequence[dict[str, Any]]) -> None:
        """Replace what `replica` published about its connected agents with `agents` (their
        descriptions, each with an `id`); rows of replicas no longer alive are dropped on the way."""
        now = time.time()
        rows = [
            {"id": agent["id"], "replica": replica, "description": codec.dumps(agent), "published_at": now}
            for agent in agents
        ]
        insert = pg_insert(agent_directory)
        upsert = insert.on_conflict_do_update(
            index_elements=[agent_directory.c.id],
            set_={column: insert.excluded[column] for column in ("replica", "description", "published_at")},
        )
        ids = [row["id"] for row in rows]

        async def publish(connection: AsyncConnection) -> None:
            await connection.execute(
                agent_directory.delete().where(
                    (agent_directory.c.replica == replica) & agent_directory.c.id.not_in(ids)
                    | agent_directory.c.replica.not_in(self._live_replicas())
                )
            )
            if rows:
                await connection.execute(upsert, rows)

        await self.store.call(publish)

    def _published(self) -> Any:
        """(replica, description) of the agents published by live replicas (a select)."""
        return select(agent_directory.c.replica, agent_directory.c.description).where(
            agent_directory.c.replica.in_(self._live_replicas())
        )

    async def agents(self) -> list[tuple[str, dict[str, Any]]]:
        """(replica, description) of every agent published by a live replica, by agent id."""
        async with self.store.reader() as connection:
            rows = await connection.execute(self._published().order_by(agent_directory.c.id))
            return [(str(row.replica), codec.loads(row.description)) for row in rows]

    async def request_drain(self, agent_id: str, grace_seconds: float) -> tuple[str, dict[str, Any]] | None:
        """Ask the replica an agent is connected to (as last published) to drain it; that
        replica's name and the agent's description, or None when no live replica has the agent."""
        statement = self._published().where(agent_directory.c.id == agent_id)

        async def ask(connection: AsyncConnection) -> tuple[str, dict[str, Any]] | None:
            row = (await connection.execute(statement)).first()
            if row is None:
                return None
            await notify(connection, DRAIN_CHANNEL, [f"{agent_id} {grace_seconds}"])
            return str(row.replica), codec.loads(row.description)

        return await self.store.call(ask)

    # -- notifications ---------------------------------------------------------
    async def tell(self, channel: str, lines: Sequence[str]) -> None:
        """Send `lines` on `channel` to every replica listening (this one too), as soon as committed."""
        if not lines:
            return

        async def send(connection: AsyncConnection) -> None:
            await notify(connection, channel, lines)

        await self.store.call(send)

    def listener(self, on_message: Callable[[str, str], None], on_connect: Callable[[], Awaitable[None]]) -> Listener:
        return Listener(self.store.url, self.store.settings["connect_timeout"], on_message, on_connect)
