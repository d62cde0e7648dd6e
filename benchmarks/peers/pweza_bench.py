"""pweza's side of benchmarks/compare.py (run with the project's own virtualenv).

A real manager (embedded default: SQLite, durable, group commit) and 2 agent processes on
loopback, through `pweza.testing.platform.Platform`; one pool serves every scenario with
`work:pweza_run`. The client is this process, over the REST API, as a user's would be.
With `--store postgres`, the manager is one replica of `pweza.testing.cluster.Cluster` on the
PostgreSQL database in $BENCH_POSTGRES_URL (compare.py's server, fsync on) instead.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import re
import time
from pathlib import Path
from typing import Any

import common
import httpx

from pweza.testing.cluster import Cluster
from pweza.testing.platform import Platform

HERE = Path(__file__).resolve().parent
SUCCEEDED = re.compile(r'^pweza_tasks_total\{pool="default/bench",state="succeeded"\} (\S+)$', re.M)
TERMINAL = {"succeeded", "failed", "cancelled", "timed_out"}


def manifests(chain: int) -> list[dict[str, Any]]:
    runtime = {"kind": "python", "handler": "work:pweza_run"}
    template = {
        "apiVersion": "pweza.ai/v1",
        "kind": "AgentTemplate",
        "metadata": {"name": "bench"},
        "spec": {"runtime": runtime, "concurrency": 64},  # as benchmarks/dispatch.py
    }
    pool = {
        "apiVersion": "pweza.ai/v1",
        "kind": "AgentPool",
        "metadata": {"name": "bench"},
        "spec": {"templateRef": "bench"},
    }

    def link(i: int) -> dict[str, Any]:
        value: Any = 0 if i == 0 else f"${{{{ steps.s{i - 1}.output }}}}"
        body = {"op": "step", "v": value, "ms": "${{ inputs.ms }}", "log": "${{ inputs.log }}"}
        return {"name": f"s{i}", "agent": {"pool": "bench"}, "depends": [f"s{i - 1}"] if i else [], "input": body}

    chain_workflow = {
        "apiVersion": "pweza.ai/v1",
        "kind": "Workflow",
        "metadata": {"name": "chain"},
        "spec": {
            "inputs": {"ms": {"type": "number", "default": 0}, "log": {"type": "string", "default": ""}},
            "steps": [link(i) for i in range(chain)],
            "outputs": {"v": f"${{{{ steps.s{chain - 1}.output }}}}"},
        },
    }
    fan_workflow = {
        "apiVersion": "pweza.ai/v1",
        "kind": "Workflow",
        "metadata": {"name": "fan"},
        "spec": {
            "inputs": {"items": {"type": "array"}},
            "steps": [
                {
                    "name": "each",
                    "agent": {"pool": "bench"},
                    "foreach": "inputs.items",
                    "input": {"op": "item", "i": "${{ item }}"},
                }
            ],
            "outputs": {"items": "${{ steps.each.output }}"},
        },
    }
    return [template, pool, chain_workflow, fan_workflow]


class OnPostgres:
    """What Bench uses of Platform, from a one-replica Cluster on PostgreSQL."""

    def __init__(self, workdir: Path, database_url: str, env: dict[str, str]) -> None:
        self.cluster = Cluster(workdir, database_url, replicas=1, lease_seconds=30, env=env)
        self.agents = self.cluster.agents

    @property
    def manager(self) -> Any:
        return self.cluster.managers[0].process

    @property
    def metrics_port(self) -> int:
        return self.cluster.managers[0].metrics_port

    def start_manager(self) -> None:
        self.cluster.start_manager(0)

    def kill_manager(self) -> None:
        self.cluster.kill_manager(0)

    def apply(self, *documents: dict[str, Any]) -> None:
        self.cluster.apply(*documents)

    def start_agent(self, pool: str, extra: list[str]) -> None:
        self.cluster.start_agent(pool, extra=extra)

    def wait_for_agents(self, count: int) -> None:
        self.cluster.wait_for_agents(count)

    def client(self, timeout: float) -> httpx.Client:
        return self.cluster.client(0, timeout=timeout)

    def wait_task(self, task_id: str, timeout: float) -> dict[str, Any]:
        return self.cluster.wait_task(task_id, timeout, manager=0)

    def stop(self) -> None:
        self.cluster.stop()


class Bench:
    def __init__(self, args: Any, report: common.Report) -> None:
        self.args = args
        self.report = report
        env = {"LOG_LEVEL": "WARNING", "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
        self.platform: Platform | OnPostgres
        if args.store == "postgres":
            self.platform = OnPostgres(args.workdir, os.environ["BENCH_POSTGRES_URL"], env)
        else:
            self.platform = Platform(args.workdir, lease_seconds=30, env=env)
        self.metrics = ""
        self.client: httpx.Client | None = None

    def start(self) -> None:
        self.platform.start_manager()
        self.platform.apply(*manifests(self.args.chain))
        for _ in range(self.args.workers):
            self.platform.start_agent("bench", extra=["--log-level", "WARNING"])
        self.platform.wait_for_agents(self.args.workers)
        self.metrics = f"http://127.0.0.1:{self.platform.metrics_port}/metrics"
        self.client = self.platform.client(timeout=120)

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()
        self.platform.stop()

    @property
    def api(self) -> httpx.Client:
        assert self.client is not None
        return self.client

    @property
    def runs(self) -> int:
        """Under a profiler a short scenario runs several times, for enough samples."""
        return 5 if self.args.py_spy else 1

    def profile(self, scenario: str) -> Any:
        assert self.platform.manager is not None
        targets = {"manager": self.platform.manager.pid}
        targets.update({f"agent{i}": agent.pid for i, agent in enumerate(self.platform.agents)})
        return common.profiled(self.report, self.args.py_spy, self.args.profile_dir, scenario, targets)

    def succeeded(self) -> int:
        match = SUCCEEDED.search(httpx.get(self.metrics, timeout=10).text)
        return int(float(match.group(1))) if match else 0

    def wait_succeeded(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.succeeded() < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {self.succeeded()}/{count} tasks succeeded within {timeout}s")
            time.sleep(0.05)

    # Scenario 1 -------------------------------------------------------------------------
    def noop_tasks(self) -> None:
        done = self.succeeded()
        warmup = [{"pool": "bench", "input": {"op": "stamp"}}] * 500
        self.api.post("/api/v1/tasks:batch", json={"tasks": warmup}).raise_for_status()
        self.wait_succeeded(done + 500, 120)
        tasks = self.args.tasks
        with self.profile(common.NOOP):
            started = time.perf_counter()
            for offset in range(0, tasks, 1000):
                batch = [{"pool": "bench", "input": {"op": "stamp"}}] * min(1000, tasks - offset)
                self.api.post("/api/v1/tasks:batch", json={"tasks": batch}).raise_for_status()
            self.wait_succeeded(done + 500 + tasks, 600)
            elapsed = time.perf_counter() - started
        self.report.add(common.NOOP, "tasks_per_s", tasks / elapsed, "tasks/s")

        submitted: list[tuple[str, float]] = []
        with self.profile(common.NOOP + "-latency"):
            for _ in common.paced(self.args.latency_samples * self.runs, self.args.latency_interval):
                at = time.time()
                response = self.api.post("/api/v1/tasks", json={"pool": "bench", "input": {"op": "stamp"}})
                response.raise_for_status()
                submitted.append((response.json()["id"], at))
        latencies = []
        for task_id, at in submitted:
            task = self.platform.wait_task(task_id, timeout=60)
            if task["state"] != "succeeded":
                raise RuntimeError(f"latency task {task_id} {task['state']}: {task['error']}")
            latencies.append((float(task["output"]) - at) * 1000)
        self.report.add(common.NOOP, "latency_p50_ms", common.percentile(latencies, 0.5), "ms")
        self.report.add(common.NOOP, "latency_p99_ms", common.percentile(latencies, 0.99), "ms")

    # Scenarios 2 and 3 ------------------------------------------------------------------
    def start_run(self, workflow: str, inputs: dict[str, Any]) -> str:
        response = self.api.post(f"/api/v1/workflows/{workflow}/runs", json={"inputs": inputs})
        response.raise_for_status()
        return str(response.json()["id"])

    def follow(self, run_id: str, timeout: float) -> dict[str, Any]:
        """Wait on the run's event stream (pushed, no polling) until it ends, then read the run."""
        with self.api.stream("GET", f"/api/v1/runs/{run_id}/events", timeout=timeout) as stream:
            for line in stream.iter_lines():
                if line == "event: end":
                    break
        run: dict[str, Any] = self.api.get(f"/api/v1/runs/{run_id}").json()
        if run["state"] != "succeeded":
            raise RuntimeError(f"run {run_id} {run['state']}: {run['error']}")
        return run

    def chain(self, ms: float) -> float:
        started = time.perf_counter()
        run = self.follow(self.start_run("chain", {"ms": ms}), 120)
        elapsed = time.perf_counter() - started
        if run["outputs"]["v"] != self.args.chain:
            raise RuntimeError(f"chain returned {run['outputs']}, not {self.args.chain}")
        return elapsed

    def chain_noop(self) -> None:
        self.chain(0)  # warm-up
        with self.profile(common.CHAIN_NOOP):
            elapsed = min(self.chain(0) for _ in range(self.runs))
        self.report.add(common.CHAIN_NOOP, "per_step_ms", elapsed / self.args.chain * 1000, "ms")

    def chain_10ms(self) -> None:
        with self.profile(common.CHAIN_10MS):
            elapsed = min(self.chain(10) for _ in range(self.runs))
        self.report.add(common.CHAIN_10MS, "per_step_overhead_ms", elapsed / self.args.chain * 1000 - 10, "ms")

    def fan_out(self) -> None:
        n = self.args.fan
        with self.profile(common.FAN_OUT):
            started = time.perf_counter()
            run = self.follow(self.start_run("fan", {"items": list(range(n))}), 300)
            total = sum(run["outputs"]["items"])
            elapsed = time.perf_counter() - started
        if total != n * (n + 1) // 2:
            raise RuntimeError(f"gather summed to {total}")
        self.report.add(common.FAN_OUT, "wall_s", elapsed, "s")

    # Scenario 4 -------------------------------------------------------------------------
    def recovery(self) -> None:
        log = self.args.workdir / "recovery.log"
        run_id = self.start_run("chain", {"ms": 10, "log": str(log)})
        common.wait_steps(log, common.KILL_AFTER_STEPS, 60)
        killed = time.perf_counter()
        self.platform.kill_manager()  # SIGKILL: no shutdown code runs
        self.platform.start_manager()
        deadline = time.monotonic() + 120
        state = "running"
        while time.monotonic() < deadline:
            try:
                run = self.api.get(f"/api/v1/runs/{run_id}").json()
            except httpx.HTTPError:
                time.sleep(0.05)
                continue
            state = run["state"]
            if state in TERMINAL:
                break
            time.sleep(0.02)
        done = time.perf_counter()
        finished = state == "succeeded" and run["outputs"]["v"] == self.args.chain
        self.report.add(common.RECOVERY, "resumed", 1 if finished else 0, "bool")
        if finished:
            self.report.add(common.RECOVERY, "kill_to_done_s", done - killed, "s")
        self.report.add(common.RECOVERY, "steps_repeated", common.repeated_steps(log), "steps")
        self.report.notes["recovery"] = (
            "manager SIGKILLed after 20 of 40 steps and started again on the same store; "
            f"the run resumed by itself and ended {state}" + self.retried(run_id)
        )

    def retried(self, run_id: str) -> str:
        """Why a step ran more than once: the errors of its earlier attempts."""
        found = []
        for step in self.api.get(f"/api/v1/runs/{run_id}").json()["steps"]:
            if step.get("attempts", 1) > 1 and step.get("taskId"):
                task = self.api.get(f"/api/v1/tasks/{step['taskId']}").json()
                for attempt in task.get("attemptHistory", [])[:-1]:
                    took = (attempt["finishedAt"] or 0) - (attempt["startedAt"] or 0)
                    error = (attempt["error"] or {}).get("message", "")
                    found.append(f"step {step['name']} attempt {attempt['number']} failed after {took:.1f}s: {error}")
        return "; " + "; ".join(found) if found else ""


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")


def main() -> None:
    args = common.arguments(__doc__.split("\n")[0], options)
    args.workdir.mkdir(parents=True, exist_ok=True)
    report = common.Report("pweza", importlib.metadata.version("pweza-core"))
    bench = Bench(args, report)
    try:
        bench.start()
        report.run(common.NOOP, args.scenarios, bench.noop_tasks)
        report.run(common.CHAIN_NOOP, args.scenarios, bench.chain_noop)
        report.run(common.CHAIN_10MS, args.scenarios, bench.chain_10ms)
        report.run(common.FAN_OUT, args.scenarios, bench.fan_out)
        report.run(common.RECOVERY, args.scenarios, bench.recovery)
    except Exception as error:  # noqa: BLE001 - reported, not raised
        report.fail("start", error)
    finally:
        bench.stop()
        report.emit()


if __name__ == "__main__":
    main()
