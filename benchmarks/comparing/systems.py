"""The systems compared: the pins of the peers, the scenarios each runs, the metrics taken from
them, and what each system guarantees and runs its work on (shown next to the figures)."""

from __future__ import annotations

from peers import common

PINS = {
    "celery": ["celery[redis]==5.7.0", "redis==8.1.0"],
    "ray": ["ray==2.60.0"],
    "prefect": ["prefect==3.9.1"],
    "tools": ["matplotlib==3.11.2", "py-spy==0.4.3"],
}
SYSTEMS = ["pweza", "celery", "ray", "prefect"]
PERF = [common.NOOP, common.CHAIN_NOOP, common.CHAIN_10MS, common.FAN_OUT]
SCENARIOS_OF = {"pweza": PERF, "celery": PERF, "ray": PERF, "prefect": PERF[1:]}  # issue #7: no Prefect in 1.

# (scenario, metric, label, higher is better)
METRICS = [
    (common.NOOP, "tasks_per_s", "10,000 no-op tasks: throughput (tasks/s)", True),
    (common.NOOP, "latency_p50_ms", "no-op task submit-to-start p50 (ms)", False),
    (common.NOOP, "latency_p99_ms", "no-op task submit-to-start p99 (ms)", False),
    (common.CHAIN_NOOP, "per_step_ms", "40-step chain, no-op steps: time per step (ms)", False),
    (common.CHAIN_10MS, "per_step_overhead_ms", "40-step chain, 10 ms steps: overhead per step (ms)", False),
    (common.FAN_OUT, "wall_s", "fan-out of 1,000 steps and gather: wall time (s)", False),
    (common.RECOVERY, "kill_to_done_s", "coordinator killed mid-chain: kill to result (s)", False),
]

GUARANTEES = {
    "pweza": (
        "durable: tasks, runs and steps are committed to SQLite before they are acknowledged; "
        "retries with backoff by default (3); at-least-once with an idempotency key per attempt; "
        "a run resumes by itself when the manager restarts"
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
}
WORKERS_TEXT = {
    "pweza": "2 agent processes (one pool; template concurrency 64, as benchmarks/dispatch.py)",
    "celery": "1 worker with 2 prefork processes (prefetch multiplier 4, the default)",
    "ray": "`ray.init(num_cpus=2)`: 2 task worker processes",
    "prefect": "flow in one process; fan-out on `ThreadPoolTaskRunner(max_workers=2)`; chain steps in the flow",
}


# Which process the recovery scenario kills, per system.
KILLED = {
    "pweza": "the manager",
    "celery": "the worker (it sends a chain's next task)",
    "ray": "the driver (it owns the tasks)",
    "prefect": "the flow process",
}
