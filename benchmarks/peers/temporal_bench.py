"""Temporal's side of benchmarks/compare.py (run with its own virtualenv).

A Temporal server on loopback (the binary hack/build-temporal.sh builds; path in
$BENCH_TEMPORAL_SERVER), started fresh for each turn with a development config written here:
one SQLite file for the history and visibility stores, 1 history shard, archival off, no
authorizer (`--allow-no-auth`). The server does not create a namespace by itself: this script
registers `default` through the SDK's workflow service (RegisterNamespace) and waits until the
frontend serves it. Start-up is not counted.

Work runs on 2 worker processes (Python SDK, each with up to 64 activities at once on a thread
pool); this process is the client. A no-op task is a workflow running one activity; a chain
is a workflow running 40 activities one after the other; a fan-out is a workflow running
1,000 activities at once and summing them. Workflows run in the SDK's sandbox, as shipped.

`--sqlite tuned`: WAL and `synchronous=NORMAL` (as pweza's store); `--sqlite shipped`: the
server's development-sqlite-file.yaml settings (WAL, `synchronous=FULL`). Recovery: the worker
processes are SIGKILLed after 20 steps and started again; the server holds the run, which goes
on once the step the dead worker had taken times out (`start_to_close_timeout` 10 s) and the
run's sticky queue falls back to the shared one.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import importlib.metadata
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import common
import temporal_app
import work
from google.protobuf.duration_pb2 import Duration
from temporalio import activity
from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.worker import Worker

QUEUE = "bench"
NAMESPACE = "default"
ACTIVITY_SLOTS = 64  # per worker process, as pweza's template concurrency
SERVICES = ["frontend", "history", "matching", "worker"]


@activity.defn(name="stamp")
def stamp() -> float:
    return work.stamp()


@activity.defn(name="step")
def step(v: int, ms: float, log: str | None) -> int:
    return work.step(v, ms, log)


@activity.defn(name="item")
def item(i: int) -> int:
    return work.item(i)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_config(database: Path, synchronous: int) -> tuple[dict[str, Any], str]:
    """A development config (JSON is YAML to the server) and the frontend's address."""
    ports = {name: (free_port(), free_port()) for name in SERVICES}
    http = free_port()
    store = {
        "sql": {
            "pluginName": "sqlite",
            "databaseName": str(database),
            "connectAddr": "localhost",
            "connectProtocol": "tcp",
            "connectAttributes": {
                "cache": "private",
                "setup": "true",  # create the schema in a new file
                "journal_mode": "wal",
                "synchronous": str(synchronous),
            },
            "maxConns": 1,
            "maxIdleConns": 1,
            "maxConnLifetime": "1h",
        }
    }
    services: dict[str, Any] = {
        name: {"rpc": {"grpcPort": grpc, "membershipPort": membership, "bindOnLocalHost": True}}
        for name, (grpc, membership) in ports.items()
    }
    services["frontend"]["rpc"]["httpPort"] = http
    frontend = f"127.0.0.1:{ports['frontend'][0]}"
    off = {"history": {"state": "disabled"}, "visibility": {"state": "disabled"}}
    config = {
        "log": {"stdout": True, "level": "warn"},
        "persistence": {
            "defaultStore": "sqlite-default",
            "visibilityStore": "sqlite-visibility",
            "numHistoryShards": 1,
            "datastores": {"sqlite-default": store, "sqlite-visibility": store},
        },
        "global": {"membership": {"maxJoinDuration": "30s", "broadcastAddress": "127.0.0.1"}},
        "services": services,
        "clusterMetadata": {
            "enableGlobalNamespace": False,
            "failoverVersionIncrement": 10,
            "masterClusterName": "active",
            "currentClusterName": "active",
            "clusterInformation": {
                "active": {
                    "enabled": True,
                    "initialFailoverVersion": 1,
                    "rpcName": "frontend",
                    "rpcAddress": frontend,
                    "httpAddress": f"127.0.0.1:{http}",
                }
            },
        },
        "dcRedirectionPolicy": {"policy": "noop"},
        "archival": off,
        "namespaceDefaults": {"archival": off},
    }
    return config, frontend


async def connect(address: str, timeout: float) -> Client:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await Client.connect(address, namespace=NAMESPACE)
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.25)


async def register_namespace(client: Client) -> None:
    request = RegisterNamespaceRequest(
        namespace=NAMESPACE, workflow_execution_retention_period=Duration(seconds=24 * 3600)
    )
    try:
        await client.workflow_service.register_namespace(request)
    except RPCError as error:
        if "already" not in str(error).lower():
            raise


class Bench:
    def __init__(self, args: argparse.Namespace, report: common.Report) -> None:
        self.args = args
        self.report = report
        self.loop = asyncio.new_event_loop()
        self.server: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        self.address = ""
        self.client: Client | None = None

    def run(self, awaitable: Any) -> Any:
        return self.loop.run_until_complete(awaitable)

    def start(self) -> None:
        binary = os.environ.get("BENCH_TEMPORAL_SERVER", "")
        if not binary or not Path(binary).exists():
            raise RuntimeError(f"no Temporal server at BENCH_TEMPORAL_SERVER={binary!r} (hack/build-temporal.sh)")
        synchronous = 1 if self.args.sqlite == "tuned" else 2  # NORMAL or FULL
        config, self.address = server_config(self.args.workdir / "temporal.sqlite", synchronous)
        path = self.args.workdir / "temporal.json"
        path.write_text(json.dumps(config, indent=1))
        command = [binary, "--config-file", str(path), "--allow-no-auth", "start"]
        self.server = common.spawn(command, self.args.workdir / "temporal-server.log")
        self.client = self.run(connect(self.address, 120))
        self.run(register_namespace(self.client))
        self.start_workers()
        deadline = time.monotonic() + 120
        while True:  # the frontend knows the new namespace once its registry refreshes
            try:
                self.many(self.args.workers * 4)
                break
            except RPCError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def start_workers(self) -> None:
        for i in range(self.args.workers):
            command = [sys.executable, __file__, "--worker", self.address]
            self.workers.append(common.spawn(command, self.args.workdir / f"worker-{i}.log"))

    def stop(self) -> None:
        for process in [*self.workers, *([self.server] if self.server else [])]:
            common.kill_group(process)
        self.loop.close()

    @property
    def api(self) -> Client:
        assert self.client is not None
        return self.client

    async def start_workflow(self, name: str, *args: Any) -> Any:
        return await self.api.start_workflow(name, args=list(args), id=uuid.uuid4().hex, task_queue=QUEUE)

    async def results(self, n: int) -> None:
        for offset in range(0, n, 500):
            handles = await asyncio.gather(*[self.start_workflow("noop") for _ in range(min(500, n - offset))])
            await asyncio.gather(*[handle.result() for handle in handles])

    def many(self, n: int) -> None:
        self.run(self.results(n))

    def one(self) -> Any:
        handle = self.run(self.start_workflow("noop"))
        return lambda: float(self.run(handle.result()))

    def chain(self, n: int, ms: float) -> int:
        return int(self.run(self.execute("chain", n, ms, None)))

    def fan(self, n: int) -> int:
        return int(self.run(self.execute("fan", n)))

    async def execute(self, name: str, *args: Any) -> Any:
        return await (await self.start_workflow(name, *args)).result()

    def recovery(self) -> None:
        log = self.args.workdir / "recovery.log"
        handle = self.run(self.start_workflow("chain", common.RECOVERY_CHAIN, 10, str(log)))
        victims = list(self.workers)
        self.workers = []

        def finished() -> bool:
            value = self.run(asyncio.wait_for(handle.result(), 180))
            return bool(value == common.RECOVERY_CHAIN)

        common.measure_recovery(self.report, log, victims[0], self.restart_workers(victims), finished)
        self.report.notes["recovery"] = (
            "the worker processes SIGKILLed after 20 of 40 steps and started again; the server held the run, "
            "which went on once the step the dead worker held timed out (start_to_close_timeout "
            f"{temporal_app.ACTIVITY_TIMEOUT.total_seconds():.0f} s)"
        )

    def restart_workers(self, victims: list[subprocess.Popen[bytes]]) -> Any:
        def restart() -> None:
            for other in victims[1:]:
                common.kill_group(other)
            self.start_workers()

        return restart


async def serve(address: str) -> None:
    client = await connect(address, 60)
    with concurrent.futures.ThreadPoolExecutor(max_workers=ACTIVITY_SLOTS) as threads:
        worker = Worker(
            client,
            task_queue=QUEUE,
            workflows=[temporal_app.Noop, temporal_app.Chain, temporal_app.Fan],
            activities=[stamp, step, item],
            activity_executor=threads,
            max_concurrent_activities=ACTIVITY_SLOTS,
        )
        await worker.run()


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sqlite", choices=["tuned", "shipped"], default="tuned")


def main() -> None:
    if "--worker" in sys.argv:
        asyncio.run(serve(sys.argv[sys.argv.index("--worker") + 1]))
        return
    args = common.arguments(__doc__.split("\n")[0], options)
    args.workdir.mkdir(parents=True, exist_ok=True)
    report = common.Report("temporal", importlib.metadata.version("temporalio"))
    report.notes["server"] = f"{os.environ.get('BENCH_TEMPORAL_SERVER', '')} ({args.sqlite} SQLite settings)"
    common.run_durable(report, args, Bench(args, report))


if __name__ == "__main__":
    main()
