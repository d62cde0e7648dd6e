"""How many agent sessions one manager holds: its memory per session, what their heartbeats cost,
and how fast it dispatches at that size. JSON on stdout.

A real manager (`pweza.testing.platform`, SQLite, the production heartbeat of 5 s) and a load
generator of many sessions in few processes: each generator process opens its share of agent
streams over a few gRPC channels and speaks the agent channel as a real agent does (a Hello with
its own agent id and one slot, heartbeats every interval the Welcome gives, a result for every
assignment at once). The generator is a stand-in for agent processes only in that it runs no
handler and holds thousands of agents in one process; the manager cannot tell.

    python benchmarks/manager_sessions.py [--sessions 10000] [--processes 4] [--tasks 20000]

Measured: the manager's VmRSS with no session and with all of them, so KiB per session; its CPU
(cores) over a quiet window of heartbeats only; no-op tasks/s through all the sessions. Linux
only (/proc).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import httpx

from pweza.testing.platform import Platform
from pweza.v1 import agent_pb2 as pb
from pweza.v1 import agent_pb2_grpc as pb_grpc

POOL = {"apiVersion": "pweza.ai/v1", "kind": "AgentPool", "metadata": {"name": "load"},
        "spec": {"templateRef": "load"}}  # fmt: skip
NOOP = {"kind": "python", "handler": "pweza.testing.handlers:noop"}
TEMPLATE = {"apiVersion": "pweza.ai/v1", "kind": "AgentTemplate", "metadata": {"name": "load"},
            "spec": {"runtime": NOOP, "concurrency": 1}}  # fmt: skip
CONNECTED = re.compile(r'^pweza_agents\{pool="default/load",state="(?:idle|busy)"\} (\S+)$', re.M)
SUCCEEDED = re.compile(r'^pweza_tasks_total\{pool="default/load",state="succeeded"\} (\S+)$', re.M)
STREAMS_PER_CHANNEL = 100  # HTTP/2 streams multiplexed on one connection
_HZ = os.sysconf("SC_CLK_TCK")


# -- the load generator (a child process) ------------------------------------------------
async def _session(
    stub: pb_grpc.AgentChannelStub, token: str, agent_id: str, ready: asyncio.Event, retries: list[int]
) -> None:
    """One agent's stream, opened again after a failure as a real agent does (jittered backoff
    of 0.1 s up to 0.5 s): in a connect storm of thousands, gRPC fails some streams at once."""
    backoff = 0.1
    while True:
        try:
            await _stream(stub, token, agent_id, ready)
            return
        except grpc.aio.AioRpcError:
            retries[0] += 1
            await asyncio.sleep(backoff * random.uniform(0.75, 1.25))
            backoff = min(backoff * 2, 0.5)


async def _stream(stub: pb_grpc.AgentChannelStub, token: str, agent_id: str, ready: asyncio.Event) -> None:
    outgoing: asyncio.Queue[pb.AgentMessage] = asyncio.Queue()
    hello = pb.Hello(pool="load", token=token, agent_id=agent_id, free_slots=1, pid=os.getpid())

    async def requests() -> Any:
        yield pb.AgentMessage(hello=hello)
        while True:
            yield await outgoing.get()

    call = stub.Connect(requests(), metadata=(("authorization", f"Bearer {token}"),))
    heartbeat: asyncio.Task[None] | None = None
    try:
        async for message in call:
            body = message.WhichOneof("body")
            if body == "welcome":
                ready.set()
                heartbeat = asyncio.create_task(_heartbeats(outgoing, message.welcome.heartbeat_interval_seconds))
            elif body == "assignments":
                done = [pb.TaskResult(task_id=item.task_id, attempt=item.attempt, ok=True, output_json=b"null")
                        for item in message.assignments.items]  # fmt: skip
                outgoing.put_nowait(pb.AgentMessage(results=pb.Results(results=done, credit=len(done))))
    finally:
        if heartbeat is not None:
            heartbeat.cancel()


async def _heartbeats(outgoing: asyncio.Queue[pb.AgentMessage], interval: float) -> None:
    await asyncio.sleep(interval * (os.getpid() % 97) / 97)  # spread the fleet over the interval
    while True:
        outgoing.put_nowait(pb.AgentMessage(heartbeat=pb.Heartbeat()))
        await asyncio.sleep(interval)


async def generate(address: str, token: str, prefix: str, count: int, run_for: float) -> None:
    channels = [grpc.aio.insecure_channel(address) for _ in range(-(-count // STREAMS_PER_CHANNEL))]
    readies = [asyncio.Event() for _ in range(count)]
    retries = [0]
    stubs = [pb_grpc.AgentChannelStub(channel) for channel in channels]
    sessions = [
        asyncio.create_task(_session(stubs[i // STREAMS_PER_CHANNEL], token, f"{prefix}-{i}", readies[i], retries))
        for i in range(count)
    ]
    async with asyncio.timeout(600):
        await asyncio.gather(*(ready.wait() for ready in readies))
    print(f"ready {retries[0]}", flush=True)
    await asyncio.sleep(run_for)  # the parent kills us sooner
    for session in sessions:
        session.cancel()


# -- the benchmark ---------------------------------------------------------------------------
def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _HZ


def _gauge(pattern: re.Pattern[str], metrics_url: str) -> float:
    """The sum of the samples the pattern matches."""
    return sum(float(value) for value in pattern.findall(httpx.get(metrics_url, timeout=30).text))


def _wait(what: str, check: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout:g}s")
        time.sleep(0.5)


def measure(sessions: int, processes: int, tasks: int, quiet: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="pweza-sessions-") as tmp:
        # The production lease and heartbeat (30 s, 5 s), not the tests' short ones.
        platform = Platform(Path(tmp), lease_seconds=20, env={"LOG_LEVEL": "WARNING", "PWEZA_HEARTBEAT_SECONDS": "5"})
        platform.start_manager()
        generators: list[subprocess.Popen[str]] = []
        try:
            manager = platform.manager
            assert manager is not None
            platform.apply(TEMPLATE, POOL)
            metrics = f"http://127.0.0.1:{platform.metrics_port}/metrics"
            time.sleep(2)
            rss_before = _status_kib(manager.pid, "VmRSS")
            started = time.monotonic()
            share = [sessions // processes + (1 if i < sessions % processes else 0) for i in range(processes)]
            for index, count in enumerate(share):
                command = [sys.executable, __file__, "--generate", str(count), "--address", platform.grpc_address,
                           "--prefix", f"load{index}", "--run-for", "3600"]  # fmt: skip
                generators.append(subprocess.Popen(
                    command, stdout=subprocess.PIPE, text=True, env={**os.environ, "PWEZA_TOKEN": platform.agent_token}
                ))  # fmt: skip
            connect_retries = 0
            for generator in generators:
                assert generator.stdout is not None
                word, _, retried = generator.stdout.readline().strip().partition(" ")
                if word != "ready":
                    raise RuntimeError("a load generator did not connect its sessions")
                connect_retries += int(retried or 0)
            _wait("every session ready", lambda: _gauge(CONNECTED, metrics) >= sessions, 300)
            connect_seconds = time.monotonic() - started
            time.sleep(5)  # one heartbeat interval: every session has heartbeated once
            rss_after = _status_kib(manager.pid, "VmRSS")
            cpu_start, wall_start = _cpu_seconds(manager.pid), time.monotonic()
            time.sleep(quiet)
            heartbeat_cores = (_cpu_seconds(manager.pid) - cpu_start) / (time.monotonic() - wall_start)
            with platform.client(timeout=120) as client:
                started = time.monotonic()
                for offset in range(0, tasks, 1000):
                    batch = [{"pool": "load", "input": None}] * min(1000, tasks - offset)
                    client.post("/api/v1/tasks:batch", json={"tasks": batch}).raise_for_status()
                _wait(f"{tasks} tasks done", lambda: _gauge(SUCCEEDED, metrics) >= tasks, 600)
                dispatch_seconds = time.monotonic() - started
            peak = _status_kib(manager.pid, "VmHWM")
        finally:
            for generator in generators:
                generator.kill()
                generator.wait(10)
            platform.stop()
    return {
        "sessions": sessions,
        "generator_processes": processes,
        "connect_all_s": round(connect_seconds, 2),
        # Streams gRPC failed during the storm of connects, each opened again after a backoff.
        "connect_retries": connect_retries,
        "manager_rss_mib_no_sessions": round(rss_before / 1024, 1),
        "manager_rss_mib_with_sessions": round(rss_after / 1024, 1),
        "kib_per_session": round((rss_after - rss_before) / sessions, 1),
        "manager_peak_rss_mib": round(peak / 1024, 1),
        "heartbeat_interval_s": 5.0,
        "manager_cores_heartbeats_only": round(heartbeat_cores, 3),
        "tasks": tasks,
        "tasks_per_s": round(tasks / dispatch_seconds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--quiet", type=float, default=20.0, help="seconds of heartbeats only, for their CPU cost")
    parser.add_argument("--generate", type=int, help=argparse.SUPPRESS)  # a load generator process
    parser.add_argument("--address", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    parser.add_argument("--run-for", type=float, default=3600, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate is not None:
        asyncio.run(generate(args.address, os.environ["PWEZA_TOKEN"], args.prefix, args.generate, args.run_for))
        return
    result = measure(args.sessions, args.processes, args.tasks, args.quiet)
    load = os.getloadavg()
    result["when"] = datetime.now(UTC).isoformat(timespec="seconds")
    result["load_average"] = [round(value, 2) for value in load]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
