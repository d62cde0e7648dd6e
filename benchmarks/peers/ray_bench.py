"""Ray's side of benchmarks/compare.py (run with the peers' virtualenv).

A local Ray instance started by `ray.init(num_cpus=2)`: 2 task worker processes. The
driver is this process: `f.remote()` per task, a chain passes each step's ObjectRef to the
next step (Ray resolves it before running it), fan-out is 1,000 `.remote()` calls gathered
with `ray.get`. Ray core keeps no durable record of a job: when the driver dies its tasks
and objects go with it (Ray Workflows, the durable layer, was removed after Ray 2.47).
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import common

HERE = Path(__file__).resolve().parent
# Before `import ray`: no usage reporting, and workers (spawned by the raylet with this
# environment) find `work` like the driver does.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ["PYTHONPATH"] = os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])

import ray  # noqa: E402
import work  # noqa: E402

stamp = ray.remote(work.stamp)
step = ray.remote(work.step)
item = ray.remote(work.item)


def run_chain(n: int, ms: float, log: str | None) -> int:
    ref = step.remote(0, ms, log)
    for _ in range(n - 1):
        ref = step.remote(ref, ms, log)
    return int(ray.get(ref, timeout=300))


class Bench:
    def __init__(self, args: Any, report: common.Report) -> None:
        self.args = args
        self.report = report

    def start(self) -> None:
        ray.init(num_cpus=self.args.workers, include_dashboard=False, log_to_driver=False)
        ray.get([stamp.remote() for _ in range(self.args.workers * 2)], timeout=120)  # workers are up

    def stop(self) -> None:
        ray.shutdown()

    def profile(self, scenario: str) -> Any:
        return common.profiled(self.report, self.args.py_spy, self.args.profile_dir, scenario, {"driver": os.getpid()})

    def noop_tasks(self) -> None:
        ray.get([stamp.remote() for _ in range(500)], timeout=120)
        tasks = self.args.tasks
        with self.profile(common.NOOP):
            started = time.perf_counter()
            ray.get([stamp.remote() for _ in range(tasks)], timeout=600)
            elapsed = time.perf_counter() - started
        self.report.add(common.NOOP, "tasks_per_s", tasks / elapsed, "tasks/s")

        submitted = []
        for _ in common.paced(self.args.latency_samples, self.args.latency_interval):
            at = time.time()
            submitted.append((stamp.remote(), at))
        latencies = [(float(ray.get(ref, timeout=60)) - at) * 1000 for ref, at in submitted]
        self.report.add(common.NOOP, "latency_p50_ms", common.percentile(latencies, 0.5), "ms")
        self.report.add(common.NOOP, "latency_p99_ms", common.percentile(latencies, 0.99), "ms")

    def timed_chain(self, ms: float) -> float:
        started = time.perf_counter()
        value = run_chain(self.args.chain, ms, None)
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
        with self.profile(common.FAN_OUT):
            started = time.perf_counter()
            total = sum(ray.get([item.remote(i) for i in range(n)], timeout=300))
            elapsed = time.perf_counter() - started
        if total != n * (n + 1) // 2:
            raise RuntimeError(f"gather summed to {total}")
        self.report.add(common.FAN_OUT, "wall_s", elapsed, "s")

    def driver(self, log: Path) -> subprocess.Popen[bytes]:
        """A separate driver process on this Ray instance, running the 10 ms chain."""
        address = ray.get_runtime_context().gcs_address
        command = [sys.executable, __file__, "--workdir", str(self.args.workdir), "--driver", address, str(log)]
        output = (self.args.workdir / "driver.log").open("ab")
        return subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)

    def recovery(self) -> None:
        log = self.args.workdir / "recovery.log"
        first = self.driver(log)
        common.wait_steps(log, common.KILL_AFTER_STEPS, 120)
        killed = time.perf_counter()
        common.kill_group(first)  # SIGKILL the driver: it owns the chain's tasks and objects
        ran = len(common.log_lines(log))
        time.sleep(2)
        after = len(common.log_lines(log)) - ran
        # Restarting the driver can only submit the chain again, from step 0: nothing to resume.
        second = self.driver(log)
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
            "driver (owner of the chain's tasks) SIGKILLed after 20 of 40 steps: the run is lost "
            f"({after} step(s) ran in the 2 s after the kill); the restarted driver submits the chain again "
            f"from step 0 (exit code {code}). Ray core has no durable run to resume; "
            f"ray.workflow is gone in Ray {ray.__version__}"
        )


def drive(address: str, log: str) -> None:
    ray.init(address=address, log_to_driver=False)
    value = run_chain(40, 10, log)
    ray.shutdown()
    sys.exit(0 if value == 40 else 1)


def main() -> None:
    if "--driver" in sys.argv:
        at = sys.argv.index("--driver")
        drive(sys.argv[at + 1], sys.argv[at + 2])
        return
    args = common.arguments(__doc__.split("\n")[0])
    args.workdir.mkdir(parents=True, exist_ok=True)
    report = common.Report("ray", ray.__version__)
    try:
        importlib.import_module("ray.workflow")
    except (ImportError, RuntimeError) as error:
        report.notes["workflows"] = str(error)
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
