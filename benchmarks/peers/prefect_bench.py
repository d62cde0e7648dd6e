"""Prefect's side of benchmarks/compare.py (run with the peers' virtualenv).

Flows run in this process against a Prefect server that compare.py started on loopback
(`prefect server start`, SQLite), so that every flow and task run is recorded there, as
in a real deployment. A chain is 40 task calls in a row inside one flow (the result of
each passed to the next); fan-out is `task.map` over 1,000 items on a task runner with 2
workers, gathered with `.result()`. Prefect has no automatic resume of a crashed flow
run; the recovery scenario re-runs the flow with task results persisted and cached by
input, which is how Prefect's docs suggest skipping work already done.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import common

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

import prefect
import work
from prefect import flow, task
from prefect.cache_policies import INPUTS, NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner


@task(cache_policy=NO_CACHE)
def step(v: int, ms: float = 0.0) -> int:
    return work.step(v, ms)


@task(cache_policy=NO_CACHE)
def item(i: int) -> int:
    return work.item(i)


@task(cache_policy=INPUTS, persist_result=True)
def durable_step(v: int, ms: float, log: str, key: str) -> int:
    """A step whose result is stored and keyed by its inputs (`key` names the run)."""
    return work.step(v, ms, log)


@flow(name="chain")
def chain(n: int, ms: float) -> int:
    v = 0
    for _ in range(n):
        v = step(v, ms)
    return v


@flow(name="fan-out")
def fan_out(n: int) -> int:
    return sum(future.result() for future in item.map(range(n)))


@flow(name="recovery-chain", persist_result=True)
def recovery_chain(n: int, ms: float, log: str, key: str) -> int:
    v = 0
    for _ in range(n):
        v = durable_step(v, ms, log, key)
    return v


class Bench:
    def __init__(self, args: Any, report: common.Report) -> None:
        self.args = args
        self.report = report

    def profile(self, scenario: str) -> Any:
        return common.profiled(self.report, self.args.py_spy, self.args.profile_dir, scenario, {"flow": os.getpid()})

    def timed_chain(self, ms: float) -> float:
        started = time.perf_counter()
        value = chain(self.args.chain, ms)
        elapsed = time.perf_counter() - started
        if value != self.args.chain:
            raise RuntimeError(f"chain returned {value}, not {self.args.chain}")
        return elapsed

    def chain_noop(self) -> None:
        self.timed_chain(0)  # warm-up
        with self.profile(common.CHAIN_NOOP):
            elapsed = self.timed_chain(0)
        self.report.add(common.CHAIN_NOOP, "per_step_ms", elapsed / self.args.chain * 1000, "ms")

    def chain_10ms(self) -> None:
        with self.profile(common.CHAIN_10MS):
            elapsed = self.timed_chain(10)
        self.report.add(common.CHAIN_10MS, "per_step_overhead_ms", elapsed / self.args.chain * 1000 - 10, "ms")

    def fan_out(self) -> None:
        n = self.args.fan
        fan = fan_out.with_options(task_runner=ThreadPoolTaskRunner(max_workers=self.args.workers))
        fan(10)  # warm-up
        with self.profile(common.FAN_OUT):
            started = time.perf_counter()
            total = fan(n)
            elapsed = time.perf_counter() - started
        if total != n * (n + 1) // 2:
            raise RuntimeError(f"gather summed to {total}")
        self.report.add(common.FAN_OUT, "wall_s", elapsed, "s")

    def driver(self, log: Path, key: str) -> subprocess.Popen[bytes]:
        command = [sys.executable, __file__, "--driver", str(log), key]
        output = (self.args.workdir / "flow.log").open("ab")
        return subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)

    def recovery(self) -> None:
        log = self.args.workdir / "recovery.log"
        key = uuid.uuid4().hex
        first = self.driver(log, key)
        common.wait_steps(log, common.KILL_AFTER_STEPS, 120)
        killed = time.perf_counter()
        common.kill_group(first)  # SIGKILL the flow process
        second = self.driver(log, key)  # a new flow run; finished steps come from the cache
        try:
            code = second.wait(180)
        except subprocess.TimeoutExpired:
            common.kill_group(second)
            code = None
        done = time.perf_counter()
        self.report.add(common.RECOVERY, "resumed", 0, "bool")
        if code == 0:
            self.report.add(common.RECOVERY, "kill_to_done_s", done - killed, "s")
        self.report.add(common.RECOVERY, "steps_repeated", common.repeated_steps(log), "steps")
        self.report.notes["recovery"] = (
            "flow process SIGKILLed after 20 of 40 steps: the flow run is not resumed "
            f"(flow runs of it now: {self.flow_run_states()}); a new run of the flow with task results "
            f"persisted and cached by input skips the steps already done (exit code {code})"
        )

    @staticmethod
    def flow_run_states() -> dict[str, int]:
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import FlowFilter, FlowFilterName

        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["recovery-chain"])))
        return dict(Counter(run.state.type.value if run.state else "none" for run in runs))


def main() -> None:
    if "--driver" in sys.argv:
        at = sys.argv.index("--driver")
        value = recovery_chain(40, 10, sys.argv[at + 1], sys.argv[at + 2])
        sys.exit(0 if value == 40 else 1)
    args = common.arguments(__doc__.split("\n")[0])
    args.workdir.mkdir(parents=True, exist_ok=True)
    report = common.Report("prefect", prefect.__version__)
    report.notes["task_runner"] = f"ThreadPoolTaskRunner(max_workers={args.workers}) for the fan-out"
    bench = Bench(args, report)
    try:
        report.run(common.CHAIN_NOOP, args.scenarios, bench.chain_noop)
        report.run(common.CHAIN_10MS, args.scenarios, bench.chain_10ms)
        report.run(common.FAN_OUT, args.scenarios, bench.fan_out)
        report.run(common.RECOVERY, args.scenarios, bench.recovery)
        if common.NOOP in args.scenarios:
            report.notes[common.NOOP] = "not run: the issue compares plain tasks with Celery and Ray only"
    finally:
        report.emit()


if __name__ == "__main__":
    main()
