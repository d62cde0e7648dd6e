"""Celery's side of benchmarks/compare.py (run with the peers' virtualenv).

A Celery worker with 2 prefork processes, Redis (started by compare.py on loopback) as
broker and result backend, the app of celery_app.py (at-least-once settings). The client
is this process: `.delay()` for single tasks, `group` for the 10,000, `chain` for the
sequential chain and `chord` for fan-out and gather.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import celery
import celery_app
import common
import redis
from celery import chain, chord, group

HERE = Path(__file__).resolve().parent


class Bench:
    def __init__(self, args: Any, report: common.Report) -> None:
        self.args = args
        self.report = report
        self.worker: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start_worker(self) -> subprocess.Popen[bytes]:
        self.starts += 1
        log = (self.args.workdir / f"worker-{self.starts}.log").open("ab")
        command = [sys.executable, "-m", "celery", "-A", "celery_app", "worker", "--pool", "prefork"]
        command += ["--concurrency", str(self.args.workers), "--loglevel", "WARNING", "--hostname", "bench@%h"]
        command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
        self.worker = subprocess.Popen(
            command, cwd=HERE, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        return self.worker

    def start(self) -> None:
        redis.Redis.from_url(celery_app.REDIS_URL).flushdb()
        self.start_worker()
        celery_app.stamp.delay().get(timeout=120)  # the worker is up and consuming
        self.report.notes["redis"] = str(redis.Redis.from_url(celery_app.REDIS_URL).info()["redis_version"])

    def stop(self) -> None:
        if self.worker is not None and self.worker.poll() is None:
            common.kill_group(self.worker, 15)

    def profile(self, scenario: str) -> Any:
        assert self.worker is not None
        return common.profiled(
            self.report, self.args.py_spy, self.args.profile_dir, scenario, {"worker": self.worker.pid}
        )

    def noop_tasks(self) -> None:
        group(celery_app.stamp.s() for _ in range(500)).apply_async().join_native(timeout=120, interval=0.02)
        tasks = self.args.tasks
        with self.profile(common.NOOP):
            started = time.perf_counter()
            result = group(celery_app.stamp.s() for _ in range(tasks)).apply_async()
            result.join_native(timeout=600, interval=0.05)
            elapsed = time.perf_counter() - started
        self.report.add(common.NOOP, "tasks_per_s", tasks / elapsed, "tasks/s")

        submitted = []
        for _ in common.paced(self.args.latency_samples, self.args.latency_interval):
            at = time.time()
            submitted.append((celery_app.stamp.delay(), at))
        latencies = [(float(result.get(timeout=60)) - at) * 1000 for result, at in submitted]
        self.report.add(common.NOOP, "latency_p50_ms", common.percentile(latencies, 0.5), "ms")
        self.report.add(common.NOOP, "latency_p99_ms", common.percentile(latencies, 0.99), "ms")

    def chain(self, ms: float, log: str | None = None) -> Any:
        links = [celery_app.step.s(0, ms=ms, log=log)]
        links += [celery_app.step.s(ms=ms, log=log) for _ in range(self.args.chain - 1)]
        return chain(*links).apply_async()

    def timed_chain(self, ms: float) -> float:
        started = time.perf_counter()
        value = self.chain(ms).get(timeout=120)
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
            total = chord(celery_app.item.s(i) for i in range(n))(celery_app.total.s()).get(timeout=300)
            elapsed = time.perf_counter() - started
        if total != n * (n + 1) // 2:
            raise RuntimeError(f"gather summed to {total}")
        self.report.add(common.FAN_OUT, "wall_s", elapsed, "s")

    def recovery(self) -> None:
        log = self.args.workdir / "recovery.log"
        result = self.chain(10, str(log))
        common.wait_steps(log, common.KILL_AFTER_STEPS, 60)
        killed = time.perf_counter()
        assert self.worker is not None
        common.kill_group(self.worker)  # SIGKILL the worker and its pool processes
        self.start_worker()
        limit = 3 * celery_app.VISIBILITY_TIMEOUT + 30
        try:
            value = result.get(timeout=limit)
        except Exception as error:  # noqa: BLE001 - a run that never finishes is the figure
            value = None
            outcome = f"did not finish within {limit:g}s after the restart ({type(error).__name__})"
        else:
            outcome = f"finished with {value}"
        done = time.perf_counter()
        finished = value == self.args.chain
        self.report.add(common.RECOVERY, "resumed", 1 if finished else 0, "bool")
        if finished:
            self.report.add(common.RECOVERY, "kill_to_done_s", done - killed, "s")
        self.report.add(common.RECOVERY, "steps_repeated", common.repeated_steps(log), "steps")
        self.report.notes["recovery"] = (
            "worker (the process that sends a chain's next task) SIGKILLed with its pool after 20 of 40 steps "
            f"and started again; acks_late + visibility_timeout {celery_app.VISIBILITY_TIMEOUT:g}s; {outcome}"
        )


def main() -> None:
    args = common.arguments(__doc__.split("\n")[0])
    args.workdir.mkdir(parents=True, exist_ok=True)
    report = common.Report("celery", celery.__version__)
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
