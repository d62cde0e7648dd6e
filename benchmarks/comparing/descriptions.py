"""What each system compared guarantees, runs its work on and keeps its state in, as configured
here, and which of its processes the recovery scenario kills: shown next to the figures."""

from __future__ import annotations

GUARANTEES = {
    "pweza": (
        "durable: tasks, runs and steps are committed to SQLite before they are acknowledged; "
        "retries with backoff by default (3); at-least-once with an idempotency key per attempt; "
        "a run resumes by itself when the manager restarts"
    ),
    "pweza-postgres": (
        "as pweza, on PostgreSQL: one manager replica, tasks, runs and steps committed (SKIP LOCKED claims, "
        "group commit) before they are acknowledged"
    ),
    "celery": (
        "as configured here: at-least-once (acks_late + reject_on_worker_lost; Celery's default acks on "
        "receipt, at-most-once); retries only where a task asks (autoretry_for / self.retry); state lives "
        "in Redis, run here without persistence (--save '', no AOF) as most Celery+Redis set-ups, so a "
        "Redis crash loses queued tasks; a chain goes on after a worker crash once the visibility timeout "
        "passes"
    ),
    "ray": (
        "not durable: tasks and results live in memory and are owned by the driver; a task is retried "
        "(3 times by default) when its worker process dies, but when the driver dies its job is gone; "
        "Ray Workflows (durable DAGs) was removed after Ray 2.47"
    ),
    "prefect": (
        "flow and task run states are recorded by the Prefect server (SQLite here); results are kept "
        "only when persisted; retries only where a task or flow asks (retries=N); a crashed flow run is "
        "not resumed — a new run can skip finished tasks through result caching"
    ),
    "dbos-sqlite": (
        "durable as configured: every workflow's inputs, status and each step's output are committed to "
        "the SQLite system database before the next step runs; a crashed process's pending workflows are "
        "recovered when a process with the same executor id launches, replaying finished steps from their "
        "checkpoints (a step whose output was not yet recorded runs again); steps retry only where they "
        "ask (retries_allowed); "
        "in-process: the work never leaves the process that submits it"
    ),
    "dbos-sqlite-queue": (
        "as dbos-sqlite, with each task, chain step and fan-out item a workflow enqueued on a DBOS queue "
        "(a table polled every 10 ms) that 2 worker processes dequeue; the chain's own workflow runs in "
        "the coordinating process"
    ),
    "dbos-sqlite-shipped": "as dbos-sqlite, with SQLite as DBOS ships it (rollback journal, synchronous=FULL)",
    "dbos-postgres": "as dbos-sqlite, on PostgreSQL (fsync=on, synchronous_commit=on)",
    "dbos-postgres-queue": "as dbos-sqlite-queue, on PostgreSQL (fsync=on, synchronous_commit=on)",
    "langgraph": (
        "durable as configured: SqliteSaver commits the graph's state after every super-step "
        "(durability='sync': before the next one starts; LangGraph's default 'async' writes it meanwhile); "
        "a crashed run is resumed by invoking its thread again (nothing resumes it by itself); "
        "node retries only with a RetryPolicy; in-process, no task queue"
    ),
    "langgraph-shipped": "as langgraph, with SqliteSaver's own settings (WAL, synchronous=FULL)",
    "temporal": (
        "durable: the server commits every workflow's event history (SQLite here) before a task is handed "
        "out; activities retry by default (unlimited attempts, exponential backoff); a run survives its "
        "workers dying: an activity a dead worker held is retried once start_to_close_timeout (10 s here) "
        "passes; workflow code is replayed from the history"
    ),
    "temporal-shipped": "as temporal, with the SQLite settings of the server's development-sqlite-file.yaml",
}
_DBOS_HERE = "in-process: DBOS's thread pool in the client's process; handles polled every 10 ms"
_DBOS_QUEUE = "2 worker processes dequeuing from one DBOS queue (polled every 10 ms); handles polled every 10 ms"
_LANGGRAPH = "in-process: the graph in the client's process; a super-step's sends on LangGraph's thread pool"
_TEMPORAL = "a Temporal server on loopback; 2 worker processes (Python SDK, 64 activity threads each)"
WORKERS_TEXT = {
    "pweza": "2 agent processes (one pool; template concurrency 64, as benchmarks/dispatch.py)",
    "pweza-postgres": "2 agent processes (one pool; template concurrency 64), one manager replica",
    "celery": "1 worker with 2 prefork processes (prefetch multiplier 4, the default)",
    "ray": "`ray.init(num_cpus=2)`: 2 task worker processes",
    "prefect": "flow in one process; fan-out on `ThreadPoolTaskRunner(max_workers=2)`; chain steps in the flow",
    "dbos-sqlite": _DBOS_HERE,
    "dbos-sqlite-queue": _DBOS_QUEUE,
    "dbos-sqlite-shipped": _DBOS_HERE,
    "dbos-postgres": _DBOS_HERE,
    "dbos-postgres-queue": _DBOS_QUEUE,
    "langgraph": _LANGGRAPH,
    "langgraph-shipped": _LANGGRAPH,
    "temporal": _TEMPORAL,
    "temporal-shipped": _TEMPORAL,
}


# Which process the recovery scenario kills, per system.
KILLED = {
    "pweza": "the manager",
    "pweza-postgres": "the manager (its only replica)",
    "celery": "the worker (it sends a chain's next task)",
    "ray": "the driver (it owns the tasks)",
    "prefect": "the flow process",
    "dbos-sqlite": "the process running the chain's workflow",
    "dbos-sqlite-queue": "the process running the chain's workflow (the queue's workers stay up)",
    "dbos-sqlite-shipped": "the process running the chain's workflow",
    "dbos-postgres": "the process running the chain's workflow",
    "dbos-postgres-queue": "the process running the chain's workflow (the queue's workers stay up)",
    "langgraph": "the process running the graph",
    "langgraph-shipped": "the process running the graph",
    "temporal": "the worker processes (workflow and activities)",
    "temporal-shipped": "the worker processes (workflow and activities)",
}


# The store each system keeps its state in, as configured here (beside the figures).
STORES = {
    "pweza": "SQLite: WAL, synchronous=NORMAL, group commit",
    "pweza-postgres": "PostgreSQL on loopback: fsync=on, full_page_writes=on, synchronous_commit=on",
    "celery": "Redis in memory (--save '', no AOF)",
    "ray": "memory (the driver's object store)",
    "prefect": "the Prefect server's SQLite (as Prefect ships it)",
    "dbos-sqlite": "SQLite set as pweza's: WAL, synchronous=NORMAL",
    "dbos-sqlite-queue": "SQLite set as pweza's: WAL, synchronous=NORMAL",
    "dbos-sqlite-shipped": "SQLite as DBOS ships it: rollback journal (DELETE), synchronous=FULL",
    "dbos-postgres": "PostgreSQL on loopback: fsync=on, full_page_writes=on, synchronous_commit=on",
    "dbos-postgres-queue": "PostgreSQL on loopback: fsync=on, full_page_writes=on, synchronous_commit=on",
    "langgraph": "SQLite set as pweza's: WAL, synchronous=NORMAL",
    "langgraph-shipped": "SQLite as SqliteSaver ships it: WAL, synchronous=FULL",
    "temporal": "the server's SQLite set as pweza's: WAL, synchronous=NORMAL",
    "temporal-shipped": "the server's SQLite as its development config ships it: WAL, synchronous=FULL",
}
