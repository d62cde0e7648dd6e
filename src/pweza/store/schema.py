"""Table definitions (SQLAlchemy Core): the one description Alembic and every SQL backend share."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

from pweza.domain.tasks import MAX_TASK_ID_CHARS

metadata = MetaData()

objects = Table(
    "objects",
    metadata,
    Column("kind", String(64), nullable=False),
    Column("namespace", String(63), nullable=False),
    Column("name", String(63), nullable=False),
    Column("generation", Integer, nullable=False),
    Column("body", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    PrimaryKeyConstraint("kind", "namespace", "name"),
)

tasks = Table(
    "tasks",
    metadata,
    Column("id", String(MAX_TASK_ID_CHARS), primary_key=True),
    Column("seq", Integer, nullable=False),
    Column("namespace", String(63), nullable=False),
    Column("pool", String(63), nullable=False),
    Column("state", String(16), nullable=False),
    Column("priority", Integer, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("max_retries", Integer),
    Column("timeout_seconds", Float),
    Column("input", Text, nullable=False),
    Column("output", Text),
    Column("error", Text),
    Column("created_at", Float, nullable=False),
    Column("not_before", Float, nullable=False),
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("agent_id", String(64)),
    Column("parent_id", String(MAX_TASK_ID_CHARS)),
    Column("labels", Text, nullable=False),
    Column("cancel_requested", Boolean, nullable=False),
    Column("owner", String(64)),
    Column("retry", Text),
    Index("ix_tasks_state", "state"),
    Index("ix_tasks_parent", "parent_id"),
    Index("ix_tasks_seq", "seq"),
    Index("ix_tasks_owner", "owner"),
    Index("ix_tasks_finished", "finished_at"),
)

# A pool's pending tasks in the order they are claimed: a claim reads the first few instead of
# sorting every pending task of the pool (7.6 -> 0.2 ms with 10,000 pending, PostgreSQL 15).
Index("ix_tasks_claim", tasks.c.namespace, tasks.c.pool, tasks.c.state, tasks.c.priority.desc(), tasks.c.seq)

attempts = Table(
    "attempts",
    metadata,
    Column("task_id", String(MAX_TASK_ID_CHARS), nullable=False),
    Column("number", Integer, nullable=False),
    Column("agent_id", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float),
    Column("error", Text),
    PrimaryKeyConstraint("task_id", "number"),
)

# The journal of `agent` attempts: every model and tool call, kept before the agent uses its answer.
calls = Table(
    "calls",
    metadata,
    Column("task_id", String(MAX_TASK_ID_CHARS), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("position", Integer, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("record", Text, nullable=False),
    Column("recorded_at", Float, nullable=False),
    Column("namespace", String(63), nullable=False),
    Column("pool", String(63), nullable=False),
    Column("run_id", String(64), nullable=False),
    Column("tokens", BigInteger, nullable=False),
    Column("cost_micros", BigInteger),
    Column("currency", String(3)),
    PrimaryKeyConstraint("task_id", "attempt", "position"),
    # Budgets sum a run's tokens and cost, a pool's or a namespace's since some time.
    Index("ix_calls_run", "run_id"),
    Index("ix_calls_pool", "namespace", "pool", "recorded_at"),
    Index("ix_calls_namespace", "namespace", "recorded_at"),
)

# Room within ModelConfigs' limits (pweza.domain.model_slots): per model, `call` slots numbered
# below its concurrency and `start` slots below its requests per minute; free once `until` passed.
model_slots = Table(
    "model_slots",
    metadata,
    Column("namespace", String(63), nullable=False),
    Column("model", String(63), nullable=False),
    Column("kind", String(8), nullable=False),
    Column("number", Integer, nullable=False),
    Column("lease", String(64), nullable=False),
    Column("holder", String(64), nullable=False),
    Column("until", Float, nullable=False),
    PrimaryKeyConstraint("namespace", "model", "kind", "number"),
    Index("ix_model_slots_holder", "holder", "lease"),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("role", String(16), nullable=False),
    Column("hash", String(64), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float),
    # An agent token's pool ("namespace/pool"; NULL: any pool) and its expiry (NULL: never).
    Column("pool", String(127)),
    Column("expires_at", Float),
)

audit = Table(
    "audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("actor", String(128), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(256), nullable=False),
    Column("detail", Text, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("seq", Integer, nullable=False),
    Column("namespace", String(63), nullable=False),
    Column("workflow", String(63), nullable=False),
    Column("generation", Integer, nullable=False),
    Column("spec", Text, nullable=False),
    Column("inputs", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("outputs", Text),
    Column("error", Text),
    Column("created_at", Float, nullable=False),
    Column("finished_at", Float),
    Column("deadline", Float),
    Column("retries", Integer, nullable=False),
    Column("owner", String(64)),
    Index("ix_runs_state", "state"),
    Index("ix_runs_workflow", "namespace", "workflow"),
    Index("ix_runs_seq", "seq"),
    Index("ix_runs_finished", "finished_at"),
)

run_steps = Table(
    "run_steps",
    metadata,
    Column("run_id", String(64), nullable=False),
    Column("name", String(63), nullable=False),
    Column("state", String(24), nullable=False),
    Column("retries", Integer, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("output", Text),
    Column("error", Text),
    Column("items", Integer),
    Column("approval", Text),
    PrimaryKeyConstraint("run_id", "name"),
)

run_events = Table(
    "run_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(64), nullable=False),
    Column("at", Float, nullable=False),
    Column("type", String(32), nullable=False),
    Column("step", String(63)),
    Column("data", Text, nullable=False),
    Index("ix_run_events_run", "run_id", "id"),
)

# Replica liveness (`replica/<id>`) and the singleton duties' lease, with expiry times in seconds.
leases = Table(
    "leases",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("holder", String(64), nullable=False),
    Column("expires", Float, nullable=False),
)

# The agents connected to each manager replica, as each replica last published them (several
# replicas on PostgreSQL: any replica can list them all and forward a drain).
agent_directory = Table(
    "agent_directory",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("replica", String(64), nullable=False),
    Column("description", Text, nullable=False),
    Column("published_at", Float, nullable=False),
    Index("ix_agent_directory_replica", "replica"),
)

# Blocks of sequence numbers handed to replicas (tasks, runs).
counters = Table(
    "counters",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("value", BigInteger, nullable=False),
)
