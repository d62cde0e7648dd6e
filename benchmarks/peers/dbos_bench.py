"""DBOS's side of benchmarks/compare.py (run with its own virtualenv).

DBOS is a library: workflows and their steps are checkpointed in a system database (SQLite
or PostgreSQL here) by the process that runs them. Two ways of running the same work:

- `--mode inprocess`: this process runs every workflow on DBOS's thread pool; a no-op task
  is a workflow of one step (`DBOS.start_workflow`), a chain is one workflow of 40 steps,
  a fan-out is one workflow starting 1,000 child workflows and gathering them;
- `--mode queue`: the work crosses processes through a DBOS queue (polled every 10 ms): 2
  worker processes listen to it and this process does not; a no-op task is a workflow
  enqueued on it, a chain is a workflow here that enqueues each step (a one-step workflow)
  and waits for it, a fan-out enqueues 1,000 and gathers them.

Handles are polled every 10 ms (DBOS's default is 1 s). `--sqlite tuned` sets WAL and
`synchronous=NORMAL` on every connection, as pweza's SQLite store does; `--sqlite shipped`
leaves DBOS's own settings (rollback journal, `synchronous=FULL`). Recovery: the process that
runs the chain's workflow is SIGKILLed after 20 steps and started again with the same executor
id; DBOS recovers the executor's pending workflows at launch and replays the chain from its
checkpoints.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import sys
import time
import uuid
from typing import Any

import common
import sqlalchemy as sa
import work
from dbos import DBOS, SetWorkflowID

QUEUE = "bench"
POLL = 0.01  # seconds: the queue's polling interval and the handles'


@DBOS.step()
def stamp_step() -> float:
    return work.stamp()


@DBOS.workflow()
def noop() -> float:
    return stamp_step()


@DBOS.step()
def chain_step(v: int, ms: float, log: str | None) -> int:
    return work.step(v, ms, log)


@DBOS.workflow()
def step_workflow(v: int, ms: float, log: str | None) -> int:
    return chain_step(v, ms, log)


@DBOS.step()
def item_step(i: int) -> int:
    return work.item(i)


@DBOS.workflow()
def item_workflow(i: int) -> int:
    return item_step(i)


@DBOS.workflow()
def chain(n: int, ms: float, log: str | None, remote: bool) -> int:
    v = 0
    for _ in range(n):
        if remote:
            v = DBOS.retrieve_queue(QUEUE).enqueue(step_workflow, v, ms, log).get_result(polling_interval_sec=POLL)
        else:
            v = chain_step(v, ms, log)
    return v


@DBOS.workflow()
def fan(n: int, remote: bool) -> int:
    if remote:
        queue = DBOS.retrieve_queue(QUEUE)
        handles = [queue.enqueue(item_workflow, i) for i in range(n)]
    else:
        handles = [DBOS.start_workflow(item_workflow, i) for i in range(n)]
    return sum(handle.get_result(polling_interval_sec=POLL) for handle in handles)


def tune_sqlite() -> None:
    """WAL and synchronous=NORMAL on every SQLite connection DBOS opens (its own listener still runs)."""

    @sa.event.listens_for(sa.engine.Engine, "connect")
    def pragmas(connection: Any, _record: Any) -> None:
        if type(connection).__module__.startswith("sqlite3"):
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")


def launch(url: str, executor: str, tuned: bool, listen: list[str] | None) -> None:
    if tuned and url.startswith("sqlite"):
        tune_sqlite()
    config: Any = {
        "name": "pweza-bench",
        "system_database_url": url,
        "executor_id": executor,
        "application_version": "bench",  # every process the same, whatever its code
        "log_level": "WARNING",
    }
    DBOS(config=config)
    if listen is not None:
        DBOS.listen_queues(listen)
    DBOS.launch()
    DBOS.register_queue(QUEUE, polling_interval_sec=POLL)


def store_url(args: argparse.Namespace) -> str:
    if args.store == "postgres":
        url = os.environ.get("BENCH_POSTGRES_URL")
        if not url:
            raise RuntimeError("BENCH_POSTGRES_URL is not set (compare.py starts the PostgreSQL server)")
        return url
    return f"sqlite:///{args.workdir / 'dbos.sqlite'}"


class Bench:
    def __init__(self, args: argparse.Namespace, report: common.Report) -> None:
        self.args = args
        self.report = report
        self.url = ""
        self.remote = args.mode == "queue"
        self.workers: list[Any] = []

    def role(self, *extra: str) -> list[str]:
        """The command line of a helper process: this script in another role, same settings."""
        return [sys.executable, __file__, "--url", self.url, "--sqlite", self.args.sqlite, *extra]

    def start(self) -> None:
        self.url = store_url(self.args)
        launch(self.url, "bench", self.args.sqlite == "tuned", [] if self.remote else None)
        if self.remote:
            for i in range(self.args.workers):
                command = self.role("--worker", f"worker-{i}")
                self.workers.append(common.spawn(command, self.args.workdir / f"worker-{i}.log"))
            self.many(self.args.workers * 4)  # the workers are up

    def stop(self) -> None:
        for worker in self.workers:
            common.kill_group(worker)
        DBOS.destroy()

    def submit(self, function: Any, *args: Any) -> Any:
        if self.remote:
            return DBOS.retrieve_queue(QUEUE).enqueue(function, *args)
        return DBOS.start_workflow(function, *args)

    def many(self, n: int) -> None:
        handles = [self.submit(noop) for _ in range(n)]
        for handle in handles:
            handle.get_result(polling_interval_sec=POLL)

    def one(self) -> Any:
        handle = self.submit(noop)
        return lambda: float(handle.get_result(polling_interval_sec=POLL))

    def chain(self, n: int, ms: float) -> int:
        return int(DBOS.start_workflow(chain, n, ms, None, self.remote).get_result(polling_interval_sec=POLL))

    def fan(self, n: int) -> int:
        return int(DBOS.start_workflow(fan, n, self.remote).get_result(polling_interval_sec=POLL))

    def recovery(self) -> None:
        log = self.args.workdir / "recovery.log"
        key = uuid.uuid4().hex
        driver = self.role("--driver", key, str(log), "--mode", self.args.mode)
        common.measure_driver_recovery(self.report, log, driver, self.args.workdir / "driver.log")
        self.report.notes["recovery"] = (
            "the process running the chain's workflow SIGKILLed after 20 of 40 steps and started again with "
            "the same executor id: DBOS recovered the pending workflow at launch and replayed it from its "
            "checkpoints" + (" (the steps ran on the queue's workers, which stayed up)" if self.remote else "")
        )


def drive(argv: list[str]) -> None:
    """A driver process: starts the recovery chain (or, with --resume, waits for the recovered one)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--sqlite", default="tuned")
    parser.add_argument("--mode", default="inprocess")
    parser.add_argument("--driver", nargs=2, metavar=("KEY", "LOG"))
    parser.add_argument("--worker")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)
    if args.worker:
        launch(args.url, args.worker, args.sqlite == "tuned", [QUEUE])
        while True:  # until compare's bench kills it
            time.sleep(3600)
    key, log = args.driver
    remote = args.mode == "queue"
    launch(args.url, "driver", args.sqlite == "tuned", [] if remote else None)
    if args.resume:
        handle: Any = DBOS.retrieve_workflow(key)  # launch's recovery runs it on
    else:
        with SetWorkflowID(key):
            handle = DBOS.start_workflow(chain, common.RECOVERY_CHAIN, 10, log, remote)
    value = handle.get_result(polling_interval_sec=POLL)
    DBOS.destroy()
    sys.exit(0 if value == common.RECOVERY_CHAIN else 1)


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--sqlite", choices=["tuned", "shipped"], default="tuned")
    parser.add_argument("--mode", choices=["inprocess", "queue"], default="inprocess")


def main() -> None:
    if "--worker" in sys.argv or "--driver" in sys.argv:
        drive(sys.argv[1:])
        return
    args = common.arguments(__doc__.split("\n")[0], options)
    args.workdir.mkdir(parents=True, exist_ok=True)
    report = common.Report("dbos", importlib.metadata.version("dbos"))
    report.notes["store"] = f"{args.store} ({args.sqlite} SQLite settings)" if args.store == "sqlite" else args.store
    common.run_durable(report, args, Bench(args, report))


if __name__ == "__main__":
    main()
