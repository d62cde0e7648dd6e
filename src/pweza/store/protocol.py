"""The `Store` protocol: everything the manager persists, whatever the backend.

Writes may be grouped into one transaction with other callers' writes (group commit);
an awaited write is durable when it returns; an empty batch (no tasks, no attempts, a
`save_run` with nothing in it) is no write at all and returns at once. Listing is
keyset-paginated: `after` is the last key of the previous page.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from pweza.domain.model_slots import SlotClaim
from pweza.domain.pricing import Spent
from pweza.domain.records import AuditEntry, RunFilter, StoredObject, TaskFilter, TokenRecord
from pweza.domain.runs import Run, RunEvent, StepRun
from pweza.domain.tasks import Attempt, CallEntry, Task

if TYPE_CHECKING:
    from pweza.store.postgres.replicas import ReplicaDatabase


class Store(Protocol):
    async def open(self) -> None:
        """Connect and apply migrations."""

    async def close(self) -> None: ...

    async def check_ready(self) -> bool:
        """True when the database answers and the schema is at the newest migration."""

    def replica_database(self) -> ReplicaDatabase | None:
        """What manager replicas sharing this database coordinate through; None when the
        database serves one manager only (the embedded file)."""

    # Objects (templates, pools, workflows), keyed by kind/namespace/name.
    async def put_object(self, kind: str, namespace: str, name: str, body: dict[str, Any]) -> StoredObject:
        """Create or replace; the generation grows only when the body changes."""

    async def get_object(self, kind: str, namespace: str, name: str) -> StoredObject | None: ...

    async def list_objects(
        self, kind: str, namespace: str | None, limit: int, after: str | None = None
    ) -> list[StoredObject]:
        """Ordered by namespace, then name, each compared byte by byte; `after` is the last
        object's 'namespace/name'."""

    async def delete_object(self, kind: str, namespace: str, name: str) -> bool: ...

    # Tasks and attempts.
    async def insert_tasks(self, tasks: Sequence[Task], attempts: Sequence[Attempt] = ()) -> None:
        """Insert the tasks, and the attempts of those handed out as they were created, in one
        transaction."""

    async def update_tasks(self, tasks: Sequence[Task]) -> None:
        """Write the mutable state of each task (state, attempts, output, ...)."""

    async def save_attempts(self, attempts: Sequence[Attempt]) -> None:
        """Insert or update attempts by (task_id, number)."""

    async def get_task(self, task_id: str) -> Task | None: ...

    async def list_tasks(self, where: TaskFilter, limit: int, after_seq: int | None = None) -> list[Task]:
        """Newest first by submission sequence."""

    async def list_children(self, parent_ids: Sequence[str], limit: int) -> list[Task]:
        """The tasks delegated by any of `parent_ids`: the `limit` newest, newest first (one read
        for a whole level of a run's task tree)."""

    async def list_attempts(self, task_id: str) -> list[Attempt]: ...

    async def save_calls(self, calls: Sequence[CallEntry]) -> None:
        """Insert or replace journal entries by (task_id, attempt, position); durable on return."""

    async def replace_call_in_state(self, call: CallEntry, state: str) -> bool:
        """Store `call`'s record in place of the stored one only if that one's "state" is `state`,
        atomically; False when it is not (another writer changed it first) or there is none."""

    async def run_spent(self, run_id: str) -> Spent:
        """What the calls of a run's tasks paid for: tokens, and cost by currency (replays count nothing)."""

    async def pool_spent(self, namespace: str, pool: str, since: float) -> Spent:
        """What the calls of a pool's tasks recorded at or after `since` paid for."""

    async def namespace_spent(self, namespace: str, since: float) -> Spent:
        """What the calls of a namespace's tasks recorded at or after `since` paid for."""

    async def list_calls(self, task_ids: Sequence[str]) -> list[CallEntry]:
        """The journals of `task_ids`: by task, attempt, then position."""

    # Model limits shared by every agent and replica (pweza.domain.model_slots).
    async def take_model_slots(self, claim: SlotClaim) -> bool:
        """Take one free slot of each kind `claim` needs, all or none, atomically across replicas;
        False when a kind has no free slot."""

    async def release_model_slots(self, holder: str, leases: Sequence[str], kinds: Sequence[str], now: float) -> None:
        """Free the slots of those kinds that `holder` took under `leases` (another holder's stay)."""

    async def load_unfinished_tasks(self) -> list[Task]:
        """Every task not in a terminal state, for recovery after a restart."""

    async def max_task_seq(self) -> int: ...

    # Tokens and the audit log.
    async def insert_token(self, token: TokenRecord) -> None: ...

    async def find_token(self, token_hash: str) -> TokenRecord | None: ...

    async def list_tokens(self) -> list[TokenRecord]: ...

    async def revoke_token(self, token_id: str, at: float) -> bool: ...

    async def append_audit(self, entry: AuditEntry) -> None: ...

    async def list_audit(self, limit: int, before_id: int | None = None) -> list[AuditEntry]: ...

    async def get_tasks(self, task_ids: Sequence[str]) -> list[Task]:
        """The tasks that exist among `task_ids`, each once however often it is named (any order)."""

    # Workflow runs.
    async def save_run(
        self,
        run: Run | None,
        steps: Sequence[StepRun] = (),
        events: Sequence[RunEvent] = (),
        new_tasks: Sequence[Task] = (),
        new_attempts: Sequence[Attempt] = (),
    ) -> None:
        """Upsert the run and steps, append the events and insert the tasks with the attempts
        of those handed out at once, in one transaction."""

    async def get_run(self, run_id: str) -> Run | None: ...

    async def get_steps(self, run_id: str) -> list[StepRun]:
        """The run's steps by name."""

    async def list_runs(self, where: RunFilter, limit: int, after_seq: int | None = None) -> list[Run]:
        """Newest first."""

    async def load_active_runs(self) -> list[Run]: ...

    async def max_run_seq(self) -> int: ...

    async def list_events(self, run_id: str, after_id: int = 0, limit: int = 1000) -> list[RunEvent]: ...

    # Retention.
    async def prune_finished(self, before: float, limit: int) -> int:
        """Delete, in one transaction, up to `limit` finished runs (with their steps and events)
        and up to `limit` finished tasks (with their attempts and journals) that finished before `before`.

        A task is kept while the run named by its "run" label is running or its parent task is
        unfinished. Returns how many runs and tasks were deleted.
        """
