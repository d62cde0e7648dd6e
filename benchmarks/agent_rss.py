"""Idle agent memory: the resident set (VmRSS) of agent processes connected and doing nothing.

Starts a manager on loopback (`pweza.testing.platform`), applies a pool whose template uses the
python runtime with a no-op handler, starts each agent command below, waits until the manager
lists the agent as connected, lets it settle, then reads VmRSS, VmHWM (its peak) and RssAnon
from /proc/PID/status and Pss and the private pages from /proc/PID/smaps_rollup, and counts the
modules the entry's first module imports. JSON on stdout.

    python benchmarks/agent_rss.py [--agents 3] [--settle 2]

Commands measured: `pweza agent` (the CLI console entry, everything the CLI imports) and
`python -m pweza.agent` (the agent's own entry, what `pweza up` starts).
Linux only (/proc).
"""

from __future__ import annotations

import argparse
import json
import os
import platform as host
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pweza.testing.platform import Platform

TEMPLATE = {
    "apiVersion": "pweza.ai/v1",
    "kind": "AgentTemplate",
    "metadata": {"name": "idle"},
    "spec": {"runtime": {"kind": "python", "handler": "pweza.testing.handlers:noop"}, "concurrency": 4},
}
POOL = {"apiVersion": "pweza.ai/v1", "kind": "AgentPool", "metadata": {"name": "idle"}, "spec": {"templateRef": "idle"}}
# What each measured command runs (before `--pool ... --manager ...`), and the module it loads first.
ENTRIES = {
    "pweza agent": ([sys.executable, "-m", "pweza", "agent"], "pweza.cli.main"),
    "python -m pweza.agent": ([sys.executable, "-m", "pweza.agent"], "pweza.agent.entry"),
}


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def rollup_kib(pid: int) -> dict[str, int]:
    """Pss (shared pages divided among their users) and the pages no other process shares."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, _, rest = line.partition(":")
        values[key] = int(rest.split()[0])
    return {"pss": values["Pss"], "private": values["Private_Clean"] + values["Private_Dirty"]}


def measure(platform: Platform, name: str, count: int, settle: float) -> dict[str, Any]:
    command, first_module = ENTRIES[name]
    processes: list[subprocess.Popen[bytes]] = []
    env = {**platform.env, "PWEZA_TOKEN": platform.agent_token}
    for index in range(count):
        agent_id = f"rss-{len(platform.agents) + index}"
        args = [*command, "--pool", "idle", "--manager", platform.grpc_address, "--agent-id", agent_id]
        with (platform.workdir / f"{agent_id}.log").open("ab") as log:
            processes.append(subprocess.Popen(args, env=env, stdout=log, stderr=log))
    platform.agents.extend(processes)
    pids = {process.pid for process in processes}
    deadline = time.monotonic() + 60
    with platform.client() as client:
        while time.monotonic() < deadline:
            listed = {agent["pid"] for agent in client.get("/api/v1/agents").json()["items"]}
            if pids <= listed:
                break
            time.sleep(0.1)
        else:
            raise TimeoutError(f"{name}: the agents did not connect within 60 s")
    time.sleep(settle)  # the welcome's template is handled and the handler imported by now
    rss = [status_kib(pid, "VmRSS") for pid in sorted(pids)]
    peak = [status_kib(pid, "VmHWM") for pid in sorted(pids)]
    anon = [status_kib(pid, "RssAnon") for pid in sorted(pids)]
    rollups = [rollup_kib(pid) for pid in sorted(pids)]
    for process in processes:
        process.terminate()
    for process in processes:
        process.wait(30)
    return {
        "command": name,
        "agents": count,
        "rss_mib": [round(kib / 1024, 1) for kib in rss],
        "rss_mib_mean": round(sum(rss) / len(rss) / 1024, 1),
        "peak_mib_max": round(max(peak) / 1024, 1),
        # What one more agent costs: its private pages (Python objects, heaps, stacks); the
        # rest of VmRSS is shared libraries (grpc's alone is ~13 MiB) counted in every process.
        "rss_anon_mib_mean": round(sum(anon) / len(anon) / 1024, 1),
        "private_mib_mean": round(sum(r["private"] for r in rollups) / len(rollups) / 1024, 1),
        "pss_mib_mean": round(sum(r["pss"] for r in rollups) / len(rollups) / 1024, 1),
        "modules_at_start": module_count(first_module),
    }


def module_count(module: str) -> int | None:
    """How many modules importing the entry's first module loads (before any handler)."""
    probe = f"import sys, {module}; print(len(sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False)
    return int(done.stdout.strip()) if done.returncode == 0 else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=3, help="agents per command")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds idle before reading VmRSS")
    parser.add_argument("--entry", action="append", choices=list(ENTRIES), help="measure only this command")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="pweza-rss-") as tmp:
        platform = Platform(Path(tmp))
        try:
            platform.start_manager()
            platform.apply(TEMPLATE, POOL)
            for name in args.entry or list(ENTRIES):
                results.append(measure(platform, name, args.agents, args.settle))
        finally:
            platform.stop()
    print(
        json.dumps(
            {
                "benchmark": "agent_rss",
                "at": datetime.now(UTC).isoformat(timespec="seconds"),
                "python": host.python_version(),
                "cpus": os.cpu_count(),
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
