"""Dispatch benchmark: end-to-end no-op tasks/s and submit-to-start latency (JSON on stdout).

Runs the manager and agents as real processes on loopback with the embedded default
store (SQLite, durable: a task is acknowledged only once written). Throughput submits
in batches of 1,000 and stops the clock when the manager has counted every task as
succeeded; latency submits one task at a time (no queueing) and reads each task's
createdAt -> startedAt (the agent's Started message) from the API.

With --postgres, measures tasks/s of 1, 2, 3... manager replicas sharing one PostgreSQL
database instead (`pweza.testing.cluster.Cluster` on a throwaway `PostgresServer`, a fresh
database for every measurement). The agents are a fixed total whatever the replica count
(6 by default: 6, 3 and 2 per replica for 1, 2 and 3 replicas), so the capacity to run
tasks stays the same and only the managers change; --agents-per-replica scales them
instead. The batches go round robin over the replicas; the clock stops when the replicas'
metrics add up to every task and the database confirms them all succeeded. The tables are
ANALYZEd after the warm-up, as autovacuum would have done on any database older than a
minute (--no-analyze measures a fresh database's plans). Every measurement records CPU per
component (benchmarks/bottlenecks.py; --cpu adds it to the SQLite results); --profile adds
pg_stat_activity wait events and pg_stat_statements (a little overhead of their own).

    python benchmarks/dispatch.py [--tasks 10000] [--agents 1 4] [--cpu]
    python benchmarks/dispatch.py --postgres [--replicas 1 2 3] [--agents 6] [--repeat 3] [--profile]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform as host
import re
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from bottlenecks import CpuAccount, Database, WaitSampler

from pweza.testing.cluster import Cluster
from pweza.testing.platform import Platform
from pweza.testing.postgres import PostgresServer

NOOP = {
    "apiVersion": "pweza.ai/v1",
    "kind": "AgentTemplate",
    "metadata": {"name": "noop"},
    "spec": {"runtime": {"kind": "python", "handler": "pweza.testing.handlers:noop"}, "concurrency": 64},
}
POOL = {
    "apiVersion": "pweza.ai/v1",
    "kind": "AgentPool",
    "metadata": {"name": "bench"},
    "spec": {"templateRef": "noop"},
}
SUCCEEDED = re.compile(r'^pweza_tasks_total\{pool="default/bench",state="succeeded"\} (\S+)$', re.M)


def succeeded(metrics_url: str) -> int:
    match = SUCCEEDED.search(httpx.get(metrics_url, timeout=10).text)
    return int(float(match.group(1))) if match else 0


def wait_for(metrics_url: str, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while succeeded(metrics_url) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {succeeded(metrics_url)}/{count} tasks done in {timeout}s")
        time.sleep(0.02)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(agents: int, tasks: int, latency_samples: int, cpu: bool = False) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="pweza-bench-") as tmp:
        platform = Platform(Path(tmp), lease_seconds=30, env={"LOG_LEVEL": "WARNING"})
        platform.start_manager()
        try:
            platform.apply(NOOP, POOL)
            for _ in range(agents):
                platform.start_agent("bench", extra=["--log-level", "WARNING"])
            platform.wait_for_agents(agents)
            metrics = f"http://127.0.0.1:{platform.metrics_port}/metrics"
            with platform.client(timeout=120) as client:
                warmup = [{"pool": "bench", "input": None}] * 500
                client.post("/api/v1/tasks:batch", json={"tasks": warmup}).raise_for_status()
                wait_for(metrics, 500, 60)
                roots = {os.getpid(): "benchmark client", **{agent.pid: "agents" for agent in platform.agents}}
                account = CpuAccount({**roots, platform.manager.pid: "manager"} if platform.manager else roots)
                account.start()
                started = time.perf_counter()
                for offset in range(0, tasks, 1000):
                    batch = [{"pool": "bench", "input": {"n": offset + i}} for i in range(min(1000, tasks - offset))]
                    client.post("/api/v1/tasks:batch", json={"tasks": batch}).raise_for_status()
                wait_for(metrics, 500 + tasks, 600)
                elapsed = time.perf_counter() - started
                usage = account.stop(work=tasks)
                ids = []
                for _ in range(latency_samples):
                    ids.append(client.post("/api/v1/tasks", json={"pool": "bench", "input": None}).json()["id"])
                    time.sleep(0.002)
                wait_for(metrics, 500 + tasks + latency_samples, 60)
                latencies = []
                for task_id in ids:
                    task = client.get(f"/api/v1/tasks/{task_id}").json()
                    latencies.append((task["startedAt"] - task["createdAt"]) * 1000)
        finally:
            platform.stop()
    return {
        "agents": agents,
        "tasks": tasks,
        "seconds": round(elapsed, 3),
        "tasks_per_second": round(tasks / elapsed, 1),
        "submit_to_start_ms": {
            "p50": round(statistics.median(latencies), 3),
            "p99": round(percentile(latencies, 0.99), 3),
            "samples": len(latencies),
        },
    } | ({"cpu": usage} if cpu else {})


BATCH = 1000
WARMUP_PER_REPLICA = 500


def submit(clients: list[httpx.Client], count: int, first: int, batch: int = BATCH) -> None:
    """`count` tasks in batches, batch k to replica k % N, one batch after the other."""
    for k, offset in enumerate(range(0, count, batch)):
        tasks = [{"pool": "bench", "input": {"n": first + offset + i}} for i in range(min(batch, count - offset))]
        clients[k % len(clients)].post("/api/v1/tasks:batch", json={"tasks": tasks}).raise_for_status()


def wait_for_all(metrics: httpx.Client, urls: list[str], database: Database, count: int, timeout: float) -> list[int]:
    """Wait until the replicas' counters add up to `count` succeeded tasks (each replica counts the
    tasks finished on it) and the database has them all; each replica's count."""
    deadline = time.monotonic() + timeout
    while True:
        finished = [int(float(m.group(1))) if (m := SUCCEEDED.search(metrics.get(url).text)) else 0 for url in urls]
        if sum(finished) >= count:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {sum(finished)}/{count} tasks done in {timeout}s")
        time.sleep(0.05)
    while database.succeeded() < count:  # a counter may run ahead of its write's commit
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {database.succeeded()}/{count} tasks succeeded in the database in {timeout}s")
        time.sleep(0.01)
    return finished


def commits(database: Database) -> int:
    """Committed transactions in this database so far (statistics lag by up to a second)."""
    return int(database.value("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"))


def run_replicated(
    server: PostgresServer, replicas: int, agents: int, tasks: int, index: int, profile: bool, analyze: bool
) -> dict[str, Any]:
    """One measurement: a fresh database, `replicas` managers, `agents` agents, `tasks` no-op tasks."""
    name = f"dispatch_{replicas}r_{index}"
    url = server.create_database(name)
    postmaster = int((server.data_dir / "postmaster.pid").read_text().split()[0])
    if profile:
        server.psql("CREATE EXTENSION pg_stat_statements", database=name)
    try:
        with tempfile.TemporaryDirectory(prefix="pweza-bench-") as tmp, contextlib.ExitStack() as stack:
            cluster = Cluster(Path(tmp), url, replicas=replicas, lease_seconds=30, env={"LOG_LEVEL": "WARNING"})
            stack.callback(cluster.stop)
            cluster.start_managers(timeout=60)
            cluster.apply(NOOP, POOL)
            for _ in range(agents):
                cluster.start_agent("bench", extra=["--log-level", "WARNING"])
            cluster.wait_for_agents(agents, timeout=60)
            database = Database(url)
            stack.callback(database.close)
            clients = [stack.enter_context(cluster.client(i, timeout=120)) for i in range(replicas)]
            metrics = stack.enter_context(httpx.Client(timeout=10))
            urls = [f"http://127.0.0.1:{manager.metrics_port}/metrics" for manager in cluster.managers]
            warm = WARMUP_PER_REPLICA * replicas  # every replica's paths and connections warmed
            submit(clients, warm, 0, batch=WARMUP_PER_REPLICA)
            before = wait_for_all(metrics, urls, database, warm, 120)
            if analyze:  # without statistics the planner locks owned rows by scanning every row owned
                database.value("ANALYZE")
            roots = {os.getpid(): "benchmark client"}
            roots |= {agent.pid: "agents" for agent in cluster.agents}
            roots |= {
                manager.process.pid: f"manager-{i}" for i, manager in enumerate(cluster.managers) if manager.process
            }
            account = CpuAccount(roots, postmaster)
            sampler = WaitSampler(url) if profile else None
            if sampler is not None:
                time.sleep(1.2)  # let the warm-up's transaction statistics arrive
                committed = commits(database)
                database.reset_statements()
                sampler.start()
                stack.callback(sampler.stop)  # bounded; a no-op once stopped below
            load = os.getloadavg()[0]
            account.start()
            started = time.perf_counter()
            submit(clients, tasks, warm)
            submitted = time.perf_counter() - started
            after = wait_for_all(metrics, urls, database, warm + tasks, 600)
            elapsed = time.perf_counter() - started
            result: dict[str, Any] = {
                "tasks_per_second": round(tasks / elapsed, 1),
                "seconds": round(elapsed, 3),
                "submit_seconds": round(submitted, 3),
                "load_average_1m": round(load, 2),
                "finished_per_replica": [a - b for a, b in zip(after, before, strict=True)],
                "cpu": account.stop(work=tasks),
            }
            if sampler is not None:
                result["postgres_backends"] = sampler.stop()
                result["top_statements"] = database.statements()
                time.sleep(1.2)
                result["transactions_per_task"] = round((commits(database) - committed) / tasks, 2)
    finally:
        server.drop_database(name)
    return result


def main_replicated(args: argparse.Namespace) -> None:
    if args.agents is not None and len(args.agents) != 1:
        raise SystemExit("with --postgres, --agents is one total (or use --agents-per-replica)")
    total = args.agents[0] if args.agents else 6
    began = datetime.now(UTC).isoformat(timespec="seconds")
    settings = {"fsync": "on", "full_page_writes": "on"} if args.fsync else {}
    if args.profile:
        settings["shared_preload_libraries"] = "pg_stat_statements"
    results = []
    with PostgresServer(settings=settings) as server:
        version = server.psql("SHOW server_version").strip()
        for replicas in args.replicas:
            agents = replicas * args.agents_per_replica if args.agents_per_replica else total
            runs = [
                run_replicated(server, replicas, agents, args.tasks, index, args.profile, args.analyze)
                for index in range(args.repeat)
            ]
            rates = [run["tasks_per_second"] for run in runs]
            results.append(
                {
                    "replicas": replicas,
                    "agents": agents,
                    "agents_per_replica": round(agents / replicas, 2),
                    "tasks": args.tasks,
                    "tasks_per_second": round(statistics.median(rates), 1),
                    "tasks_per_second_all": rates,
                    "seconds": round(statistics.median(run["seconds"] for run in runs), 3),
                    "seconds_all": [run["seconds"] for run in runs],
                    "load_average_1m_all": [run["load_average_1m"] for run in runs],
                    "runs": runs,
                }
            )
        settings = dict(server.settings)
    agents_note = (
        f"{args.agents_per_replica} per replica"
        if args.agents_per_replica
        else f"{total} in total whatever the replica count (agent i lists replica i % N first)"
    )
    report = {
        "benchmark": "dispatch",
        "store": "postgresql: N manager replicas on one database (SKIP LOCKED claims on NOTIFY, group commit)",
        "command": " ".join(["python", *sys.argv]),
        "started": began,
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "submission": f"batches of {BATCH}, round robin over the replicas, one after the other; "
        f"{WARMUP_PER_REPLICA} warm-up tasks per replica first (not timed)",
        "agents": f"{agents_note}; template concurrency {NOOP['spec']['concurrency']}",  # type: ignore[index]
        "machine": {
            "python": sys.version.split()[0],
            "arch": host.machine(),
            "cores": os.cpu_count(),
            "system": host.platform(),
        },
        "postgres": {
            "version": version,
            "settings": settings,
            "statistics": "ANALYZE after the warm-up" if args.analyze else "fresh, never analyzed (--no-analyze)",
        },
        "results": results,
    }
    print(json.dumps(report, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument(
        "--agents", type=int, nargs="+", help="SQLite: each count in turn (1 4); --postgres: the total (6)"
    )
    parser.add_argument("--latency-samples", type=int, default=300)
    parser.add_argument("--cpu", action="store_true", help="SQLite: add CPU per component to the results")
    parser.add_argument("--postgres", action="store_true", help="manager replicas on one PostgreSQL database")
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--agents-per-replica", type=int, help="--postgres: scale the agents with the replicas")
    parser.add_argument("--repeat", type=int, default=3, help="--postgres: measurements per replica count")
    parser.add_argument("--fsync", action="store_true", help="--postgres: flush the WAL (the test server does not)")
    parser.add_argument(
        "--no-analyze", dest="analyze", action="store_false", help="--postgres: skip ANALYZE after the warm-up"
    )
    parser.add_argument("--profile", action="store_true", help="--postgres: sample wait events, pg_stat_statements")
    args = parser.parse_args()
    if args.postgres:
        main_replicated(args)
        return
    results = [run(n, args.tasks, args.latency_samples, args.cpu) for n in args.agents or [1, 4]]
    report = {
        "benchmark": "dispatch",
        "store": "sqlite (embedded default, WAL, group commit)",
        "machine": {"python": sys.version.split()[0], "cpus": host.machine(), "system": host.platform()},
        "results": results,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
