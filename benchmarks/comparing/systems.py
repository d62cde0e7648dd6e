"""The systems compared: each one's script, virtualenv and options, the pins of the peers'
virtualenvs, the scenarios each runs and the metrics taken from them. What each guarantees and
runs its work on, shown next to the figures, is in ``descriptions``."""

from __future__ import annotations

from dataclasses import dataclass

from peers import common

PERF = [common.NOOP, common.CHAIN_NOOP, common.CHAIN_10MS, common.FAN_OUT]
CHAINS_AND_FAN = PERF[1:]

# Per virtualenv, per group of pins: the peers' own virtualenv holds Celery, Ray, Prefect and
# the tools (matplotlib for the chart, py-spy for the profiles); each durable peer has its own
# (`<venv>-<name>`), so that no peer's dependencies pin another's.
PINS: dict[str, dict[str, list[str]]] = {
    "peers": {
        "celery": ["celery[redis]==5.7.0", "redis==8.1.0"],
        "ray": ["ray==2.60.0"],
        "prefect": ["prefect==3.9.1"],
        "tools": ["matplotlib==3.11.2", "py-spy==0.4.3"],
    },
    "dbos": {"dbos": ["dbos==3.4.0", "psycopg[binary]==3.3.9"]},
    "langgraph": {"langgraph": ["langgraph==1.2.22", "langgraph-checkpoint-sqlite==3.1.2"]},
    "temporal": {"temporal": ["temporalio==1.35.0"]},
}


@dataclass(frozen=True)
class System:
    script: str  # benchmarks/peers/<script>_bench.py
    venv: str  # "project" (pweza's own) or a key of PINS
    group: str  # the group of pins it needs (an install error is its failure)
    scenarios: tuple[str, ...] = tuple(PERF)
    options: tuple[str, ...] = ()  # passed to the script: which variant of the peer
    needs: str = ""  # a service compare.py starts: "redis", "prefect", "postgres" or "temporal"
    slow: float = 1.0  # its turn may take this many times --turn-timeout (10,000 tasks at ~40/s)


def _dbos(*options: str, needs: str = "", slow: float = 1.0) -> System:
    return System("dbos", "dbos", "dbos", options=options, needs=needs, slow=slow)


REGISTRY: dict[str, System] = {
    "pweza": System("pweza", "project", "tools"),
    "pweza-postgres": System("pweza", "project", "tools", options=("--store", "postgres"), needs="postgres"),
    "celery": System("celery", "peers", "celery", needs="redis"),
    "ray": System("ray", "peers", "ray"),
    "prefect": System("prefect", "peers", "prefect", tuple(CHAINS_AND_FAN), needs="prefect"),  # issue #7: no 1.
    "dbos-sqlite": _dbos("--store", "sqlite", "--sqlite", "tuned", "--mode", "inprocess"),
    "dbos-sqlite-queue": _dbos("--store", "sqlite", "--sqlite", "tuned", "--mode", "queue"),
    "dbos-sqlite-shipped": _dbos("--store", "sqlite", "--sqlite", "shipped", "--mode", "inprocess", slow=2),
    "dbos-postgres": _dbos("--store", "postgres", "--mode", "inprocess", needs="postgres"),
    "dbos-postgres-queue": _dbos("--store", "postgres", "--mode", "queue", needs="postgres"),
    "langgraph": System("langgraph", "langgraph", "langgraph", tuple(CHAINS_AND_FAN), ("--sqlite", "tuned")),
    "langgraph-shipped": System("langgraph", "langgraph", "langgraph", tuple(CHAINS_AND_FAN), ("--sqlite", "shipped")),
    "temporal": System("temporal", "temporal", "temporal", options=("--sqlite", "tuned"), needs="temporal", slow=2.5),
    "temporal-shipped": System(
        "temporal", "temporal", "temporal", options=("--sqlite", "shipped"), needs="temporal", slow=2.5
    ),
}
SYSTEMS = list(REGISTRY)
OURS = [name for name in SYSTEMS if name.startswith("pweza")]  # never a peer in the ratios
SCENARIOS_OF = {name: list(system.scenarios) for name, system in REGISTRY.items()}

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
