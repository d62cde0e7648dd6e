"""The handler work every system runs, standard library only (imported by pweza agents, Celery
workers, Ray workers and Prefect flows alike), so that only the orchestration differs.

- `stamp`: the no-op task; returns the wall-clock time at which the handler started, which
  the client subtracts from its own submit time (submit-to-start latency).
- `step`: one link of the 40-step chain: sleeps `ms` milliseconds, optionally appends
  "v pid" to `log` (the recovery scenario counts steps and repeats), returns `v + 1`; the
  chain's result must be 40.
- `item`: one element of the fan-out: returns `i + 1`; the gather must sum to n(n+1)/2.
"""

from __future__ import annotations

import os
import time
from typing import Any


def stamp() -> float:
    return time.time()


def step(v: int, ms: float = 0.0, log: str | None = None) -> int:
    if ms:
        time.sleep(ms / 1000)
    if log:
        with open(log, "a") as handle:
            handle.write(f"{v} {os.getpid()}\n")
    return v + 1


def item(i: int) -> int:
    return i + 1


# pweza's python runtime calls `module:function` with a task context (`ctx.input`). One
# handler serves every scenario so that one pool of 2 agents does all the work, as 2 Celery
# worker processes and 2 Ray CPUs do on the peers' side.
def pweza_run(ctx: Any) -> float | int:
    given = ctx.input
    op = given["op"]
    if op == "stamp":
        return stamp()
    if op == "step":
        return step(int(given["v"]), float(given.get("ms") or 0), given.get("log") or None)
    if op == "item":
        return item(int(given["i"]))
    raise ValueError(f"unknown op {op!r}")
