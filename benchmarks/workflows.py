"""Workflow benchmark: per-step overhead of a sequential chain, and fan-out/gather time (JSON).

The manager and one agent run as real processes on loopback, on the embedded default
(SQLite, durable). A chain of 40 steps each waiting for the previous one measures what
the engine adds per step (run wall time / 40, minus the handler's own time for the
10 ms variant); a `foreach` over 1,000 items measures fan-out and gather.

    python benchmarks/workflows.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pweza.testing.platform import Platform

CHAIN = 40
FAN_OUT = 1000


def manifests() -> list[dict[str, Any]]:
    def template(name: str, handler: str) -> dict[str, Any]:
        runtime = {"kind": "python", "handler": f"pweza.testing.handlers:{handler}"}
        return {"apiVersion": "pweza.ai/v1", "kind": "AgentTemplate", "metadata": {"name": name},
                "spec": {"runtime": runtime, "concurrency": 64}}  # fmt: skip

    def pool(name: str) -> dict[str, Any]:
        return {
            "apiVersion": "pweza.ai/v1",
            "kind": "AgentPool",
            "metadata": {"name": name},
            "spec": {"templateRef": name},
        }

    def chain(name: str, pool_name: str, payload: dict[str, Any]) -> dict[str, Any]:
        steps = [{"name": "s0", "agent": {"pool": pool_name}, "input": payload}]
        steps += [
            {"name": f"s{i}", "agent": {"pool": pool_name}, "depends": [f"s{i - 1}"], "input": payload}
            for i in range(1, CHAIN)
        ]
        return {"apiVersion": "pweza.ai/v1", "kind": "Workflow", "metadata": {"name": name}, "spec": {"steps": steps}}

    each = {"name": "each", "agent": {"pool": "noop"}, "foreach": "inputs.items", "input": "${{ item }}"}
    fan = {
        "apiVersion": "pweza.ai/v1", "kind": "Workflow", "metadata": {"name": "fan"},
        "spec": {"inputs": {"items": {"type": "array"}}, "steps": [each],
                 "outputs": {"count": "${{ size(steps.each.output) }}"}},
    }  # fmt: skip
    return [
        template("noop", "noop"), pool("noop"), template("sleepy", "sleep"), pool("sleepy"),
        chain("chain-noop", "noop", {}), chain("chain-10ms", "sleepy", {"seconds": 0.01}), fan,
    ]  # fmt: skip


def run_once(platform: Platform, workflow: str, inputs: dict[str, Any]) -> dict[str, Any]:
    with platform.client(timeout=120) as client:
        run_id = client.post(f"/api/v1/workflows/{workflow}/runs", json={"inputs": inputs}).json()["id"]
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            run: dict[str, Any] = client.get(f"/api/v1/runs/{run_id}").json()
            if run["state"] != "running":
                if run["state"] != "succeeded":
                    raise RuntimeError(f"{workflow} run {run_id} {run['state']}: {run['error']}")
                return run
            time.sleep(0.05)
    raise TimeoutError(f"{workflow} run did not finish")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    noop, slow, fan = [], [], []
    with tempfile.TemporaryDirectory(prefix="pweza-bench-") as tmp:
        platform = Platform(Path(tmp), lease_seconds=30, env={"LOG_LEVEL": "WARNING"})
        platform.start_manager()
        try:
            platform.apply(*manifests())
            platform.start_agent("noop", extra=["--log-level", "WARNING"])
            platform.start_agent("sleepy", extra=["--log-level", "WARNING"])
            platform.wait_for_agents(2)
            run_once(platform, "chain-noop", {})  # warm-up
            for _ in range(args.repeat):
                run = run_once(platform, "chain-noop", {})
                noop.append((run["finishedAt"] - run["createdAt"]) / CHAIN * 1000)
                run = run_once(platform, "chain-10ms", {})
                slow.append(((run["finishedAt"] - run["createdAt"]) / CHAIN - 0.010) * 1000)
                run = run_once(platform, "fan", {"items": list(range(FAN_OUT))})
                assert run["outputs"] == {"count": FAN_OUT}, run["outputs"]
                fan.append(run["finishedAt"] - run["createdAt"])
        finally:
            platform.stop()
    report = {
        "benchmark": "workflows",
        "store": "sqlite (embedded default)",
        "python": sys.version.split()[0],
        "repeat": args.repeat,
        "chain_steps": CHAIN,
        "per_step_overhead_ms": {
            "noop_steps": {"median": round(statistics.median(noop), 3), "all": [round(v, 3) for v in noop]},
            "10ms_steps": {"median": round(statistics.median(slow), 3), "all": [round(v, 3) for v in slow]},
        },
        "fan_out_gather_seconds": {
            "items": FAN_OUT,
            "median": round(statistics.median(fan), 3),
            "all": [round(v, 3) for v in fan],
        },
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
