"""Dispatch benchmark: end-to-end no-op tasks/s and submit-to-start latency (JSON on stdout).

Runs the manager and agents as real processes on loopback with the embedded default
store (SQLite, durable: a task is acknowledged only once written). Throughput submits
in batches of 1,000 and stops the clock when the manager has counted every task as
succeeded; latency submits one task at a time (no queueing) and reads each task's
createdAt -> startedAt (the agent's Started message) from the API.

    python benchmarks/dispatch.py [--tasks 10000] [--agents 1 4]
"""

from __future__ import annotations

import sys

# benchmarks/operator.py shares its name with the standard library's `operator`; run as a
# script, this folder comes first on sys.path and would shadow it, so take it off.
if sys.path and sys.path[0] and __file__.startswith(sys.path[0]):
    sys.path.pop(0)

import argparse
import json
import platform as host
import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from pweza.testing.platform import Platform

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


def run(agents: int, tasks: int, latency_samples: int) -> dict[str, Any]:
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
                started = time.perf_counter()
                for offset in range(0, tasks, 1000):
                    batch = [{"pool": "bench", "input": {"n": offset + i}} for i in range(min(1000, tasks - offset))]
                    client.post("/api/v1/tasks:batch", json={"tasks": batch}).raise_for_status()
                wait_for(metrics, 500 + tasks, 600)
                elapsed = time.perf_counter() - started
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
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--agents", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--latency-samples", type=int, default=300)
    args = parser.parse_args()
    results = [run(n, args.tasks, args.latency_samples) for n in args.agents]
    report = {
        "benchmark": "dispatch",
        "store": "sqlite (embedded default, WAL, group commit)",
        "machine": {"python": sys.version.split()[0], "cpus": host.machine(), "system": host.platform()},
        "results": results,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
