"""Where the time goes during a benchmark run: CPU per process, PostgreSQL wait events and statements.

- `CpuAccount` reads /proc at the start and at the end of the timed window and charges every
  process's CPU time to the nearest root it descends from (a manager, an agent, the PostgreSQL
  server, this client); what the machine spent beyond that is other work sharing it. Figures are
  in cores (CPU seconds per second of wall time), so on this 2-core machine 2.0 is everything.
  Linux only; two reads of /proc cost nothing measurable.
- `WaitSampler` polls pg_stat_activity from a thread of its own (one connection, one query every
  `interval` seconds) and counts what the benchmark database's backends were doing.
- `Database` is a synchronous handle on one asyncpg connection: counts, pg_stat_statements.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]

__all__ = ["CpuAccount", "Database", "WaitSampler"]

_HZ = os.sysconf("SC_CLK_TCK")
_APPLICATION = "pweza-bench"  # our own connections, left out of what we sample
_BACKENDS = """
    SELECT state, wait_event_type, wait_event FROM pg_stat_activity
    WHERE datname = current_database() AND backend_type = 'client backend'
      AND application_name <> $1 AND pid <> pg_backend_pid()
"""
_STATEMENTS = """
    SELECT calls, total_exec_time, rows, left(regexp_replace(query, '\\s+', ' ', 'g'), $2) AS query
    FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
    ORDER BY total_exec_time DESC LIMIT $1
"""


def _processes() -> dict[int, tuple[int, int, str]]:
    """Every process now: pid -> (parent pid, user+system clock ticks, command line)."""
    found: dict[int, tuple[int, int, str]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
            command = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # it exited meanwhile
        fields = stat[stat.rfind(")") + 2 :].split()
        found[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]), command.strip())
    return found


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs since boot; iowait counts as idle."""
    values = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


class CpuAccount:
    """CPU time of labelled process trees between `start()` and `stop()`, in cores."""

    def __init__(self, roots: Mapping[int, str], postmaster: int | None = None) -> None:
        """`roots` maps a pid to its label; descendants get their nearest root's label. Under
        `postmaster`, client backends are told apart from the server's own background processes."""
        self.roots = dict(roots)
        self.postmaster = postmaster
        self._before: dict[int, tuple[int, int, str]] = {}
        self._machine: tuple[int, int] = (0, 0)
        self._started = 0.0

    def start(self) -> None:
        self._started = time.perf_counter()
        self._before = _processes()
        self._machine = _machine_ticks()

    def stop(self, work: int) -> dict[str, Any]:
        """The window's figures; `work` (tasks done in it) turns CPU time into milliseconds per task,
        which other load on the machine disturbs far less than tasks/s."""
        after = _processes()
        busy, total = _machine_ticks()
        seconds = time.perf_counter() - self._started
        cores = os.cpu_count() or 1
        per_label: Counter[str] = Counter()
        per_process: dict[str, float] = {}
        for pid, (_, ticks, command) in after.items():
            label = self._label(pid, after)
            if label is None:
                continue
            before = self._before.get(pid)
            # A pid seen only now started inside the window: all its time is ours to count.
            spent = ticks - before[1] if before and before[2] == command else ticks
            per_label[label] += spent
            per_process[f"{label} {pid}"] = spent / _HZ / seconds
        machine = (busy - self._machine[0]) / max(1, total - self._machine[1]) * cores
        ours = {label: round(ticks / _HZ / seconds, 3) for label, ticks in sorted(per_label.items())}
        busiest = sorted(per_process.items(), key=lambda item: -item[1])[:6]
        return {
            "window_seconds": round(seconds, 3),
            "machine_cores": cores,
            "machine_busy_cores": round(machine, 3),
            "by_component_cores": ours,
            "other_work_cores": round(max(0.0, machine - sum(ours.values())), 3),
            "cpu_ms_per_task": {
                label: round(ticks / _HZ / work * 1000, 3) for label, ticks in sorted(per_label.items())
            },
            "busiest_processes_cores": {name: round(value, 3) for name, value in busiest},
        }

    def _label(self, pid: int, processes: Mapping[int, tuple[int, int, str]]) -> str | None:
        current = pid
        for _ in range(64):  # process trees are shallow; never loop on a bad parent link
            if current == self.postmaster:
                if current != pid and "127.0.0.1(" in processes[pid][2]:
                    return "postgres backends"
                return "postgres (background)"
            if current in self.roots:
                return self.roots[current]
            if current not in processes or current <= 1:
                return None
            current = processes[current][0]
        return None


class Database:
    """One connection to the benchmark database, used synchronously from the main thread."""

    def __init__(self, url: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._connection = self._loop.run_until_complete(
            asyncpg.connect(url, timeout=10, server_settings={"application_name": _APPLICATION})
        )

    def value(self, sql: str, *args: Any) -> Any:
        return self._loop.run_until_complete(asyncio.wait_for(self._connection.fetchval(sql, *args), 60))

    def succeeded(self) -> int:
        return int(self.value("SELECT count(*) FROM tasks WHERE state = 'succeeded'"))

    def reset_statements(self) -> None:
        self.value("SELECT pg_stat_statements_reset()")

    def statements(self, limit: int = 10, width: int = 160) -> list[dict[str, Any]]:
        """The statements that took most execution time since the last reset, this database only."""
        rows = self._loop.run_until_complete(asyncio.wait_for(self._connection.fetch(_STATEMENTS, limit, width), 60))
        return [
            {
                "query": row["query"],
                "calls": row["calls"],
                "rows": row["rows"],
                "total_ms": round(row["total_exec_time"], 1),
                "mean_ms": round(row["total_exec_time"] / max(1, row["calls"]), 3),
            }
            for row in rows
        ]

    def close(self) -> None:
        try:
            self._loop.run_until_complete(asyncio.wait_for(self._connection.close(), 10))
        finally:
            self._loop.close()


class WaitSampler:
    """What the client backends of one database are doing, sampled every `interval` seconds."""

    def __init__(self, url: str, interval: float = 0.05, limit: float = 600.0) -> None:
        self.url = url
        self.interval = interval
        self.limit = limit  # the thread stops by itself after this long, whatever happens
        self.samples = 0
        self.counts: Counter[str] = Counter()
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="wait-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join(15)
        if self.error is not None:
            return {"error": self.error}
        seen = sum(self.counts.values())
        active = sum(count for key, count in self.counts.items() if key.startswith("active"))
        # Each replica writes through one transaction at a time: this over the replica count is
        # roughly how busy those writers are.
        open_ = active + self.counts["idle in transaction"]
        return {
            "samples": self.samples,
            "mean_backends": round(seen / max(1, self.samples), 2),
            "mean_active_backends": round(active / max(1, self.samples), 2),
            "mean_backends_in_a_transaction": round(open_ / max(1, self.samples), 2),
            "share_of_backend_samples": {
                key: round(count / max(1, seen), 3) for key, count in self.counts.most_common(12)
            },
        }

    def _main(self) -> None:
        try:
            asyncio.run(self._sample())
        except Exception as error:  # noqa: BLE001 - reported in the results, never fatal to the run
            self.error = repr(error)

    async def _sample(self) -> None:
        connection = await asyncpg.connect(self.url, timeout=10, server_settings={"application_name": _APPLICATION})
        try:
            deadline = time.monotonic() + self.limit
            while not self._stop.is_set() and time.monotonic() < deadline:
                for row in await asyncio.wait_for(connection.fetch(_BACKENDS, _APPLICATION), 10):
                    self.counts[_describe(row["state"], row["wait_event_type"], row["wait_event"])] += 1
                self.samples += 1
                await asyncio.sleep(self.interval)
        finally:
            await asyncio.wait_for(connection.close(), 10)


def _describe(state: str | None, kind: str | None, event: str | None) -> str:
    if state == "active":
        return "active, on CPU" if kind is None else f"active, waiting {kind}:{event}"
    return str(state)  # idle, idle in transaction (the backend waits for its manager), ...
