"""What every per-system script shares (standard library only: it runs in both virtualenvs).

Each script `benchmarks/peers/<system>_bench.py` runs the scenarios it is asked for, once,
and prints one line `BENCH-RESULT {json}` with its figures and errors; `compare.py` runs
the scripts in turn, repeatedly, and keeps nothing else from their output.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MARK = "BENCH-RESULT "

NOOP = "noop-tasks"  # scenario 1: throughput and submit-to-start latency
CHAIN_NOOP = "chain-noop"  # scenario 2: 40 sequential no-op steps
CHAIN_10MS = "chain-10ms"  # scenario 2: 40 sequential 10 ms steps
FAN_OUT = "fan-out"  # scenario 3: fan-out of 1,000 steps and gather
RECOVERY = "recovery"  # scenario 4: coordinator killed mid-chain and restarted
SCENARIOS = [NOOP, CHAIN_NOOP, CHAIN_10MS, FAN_OUT, RECOVERY]

KILL_AFTER_STEPS = 20  # the recovery scenario kills the coordinator once this many steps ran
RECOVERY_CHAIN = 40  # steps of 10 ms in the recovery scenario's chain


@dataclass
class Report:
    system: str
    version: str
    figures: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)

    def add(self, scenario: str, metric: str, value: float, unit: str) -> None:
        self.figures.append({"scenario": scenario, "metric": metric, "value": round(float(value), 4), "unit": unit})
        print(f"  {self.system} {scenario} {metric} = {value:.4g} {unit}", file=sys.stderr, flush=True)

    def fail(self, scenario: str, error: BaseException) -> None:
        text = f"{type(error).__name__}: {error}"
        self.errors.append({"scenario": scenario, "error": text[:2000]})
        print(f"  {self.system} {scenario} FAILED: {text[:500]}", file=sys.stderr, flush=True)
        traceback.print_exc(file=sys.stderr)

    def run(self, scenario: str, wanted: list[str], body: Callable[[], None]) -> None:
        """Run one scenario if asked for; a failure is recorded, and the next scenario still runs."""
        if scenario not in wanted:
            return
        try:
            body()
        except Exception as error:  # noqa: BLE001 - every failure is a reported figure
            self.fail(scenario, error)

    def emit(self) -> None:
        body = {
            "system": self.system,
            "version": self.version,
            "figures": self.figures,
            "errors": self.errors,
            "notes": self.notes,
        }
        print(MARK + json.dumps(body), flush=True)


def arguments(description: str, extend: Callable[[argparse.ArgumentParser], None] | None = None) -> argparse.Namespace:
    """The options compare.py passes to every script; `extend` adds a script's own (its variants)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--scenarios", nargs="+", default=SCENARIOS, choices=SCENARIOS)
    parser.add_argument("--tasks", type=int, default=10_000, help="no-op tasks for the throughput figure")
    parser.add_argument("--latency-samples", type=int, default=200, help="tasks submitted one by one")
    parser.add_argument("--latency-interval", type=float, default=0.02, help="seconds between those submits")
    parser.add_argument("--chain", type=int, default=40)
    parser.add_argument("--fan", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--workdir", type=Path, required=True, help="scratch directory (logs, state)")
    parser.add_argument("--py-spy", default="", help="profile the coordinator with this py-spy binary")
    parser.add_argument("--profile-dir", type=Path, default=None)
    if extend is not None:
        extend(parser)
    return parser.parse_args()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def paced(count: int, interval: float) -> Iterator[int]:
    """Yield 0..count-1, the k-th no earlier than start + k * interval (no queue builds up)."""
    start = time.perf_counter()
    for k in range(count):
        delay = start + k * interval - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        yield k


def log_lines(path: Path) -> list[tuple[int, int]]:
    """The (v, pid) lines `work.step` appended: one per executed step."""
    if not path.exists():
        return []
    lines = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2:
            lines.append((int(parts[0]), int(parts[1])))
    return lines


def wait_steps(path: Path, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while len(log_lines(path)) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(log_lines(path))}/{count} steps ran within {timeout}s")
        time.sleep(0.005)


def repeated_steps(path: Path) -> int:
    """How many steps ran more than once (at-least-once shows here)."""
    values = [v for v, _ in log_lines(path)]
    return len(values) - len(set(values))


def kill_group(process: subprocess.Popen[Any], sig: int = signal.SIGKILL) -> None:
    """Signal a process started with start_new_session=True and everything in its group."""
    with suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


@contextmanager
def profiled(
    report: Report, py_spy: str, out_dir: Path | None, scenario: str, targets: dict[str, int]
) -> Iterator[None]:
    """py-spy (flame graph SVG and collapsed stacks) on each target pid while the body runs."""
    if not py_spy or out_dir is None:
        yield
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    spies: list[subprocess.Popen[bytes]] = []
    for role, pid in targets.items():
        for fmt, suffix in (("flamegraph", "svg"), ("raw", "txt")):
            out = out_dir / f"{report.system}-{scenario}-{role}.{suffix}"
            command = [py_spy, "record", "--pid", str(pid), "--rate", "100", "--format", fmt, "--output", str(out)]
            spies.append(
                subprocess.Popen([*command, "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            )
    time.sleep(0.5)  # let py-spy attach
    try:
        yield
    finally:
        for spy in spies:
            spy.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
        for spy in spies:
            try:
                _, err = spy.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                spy.kill()
                _, err = spy.communicate()
            if spy.returncode not in (0, None) and err:
                report.notes[f"py-spy-{scenario}"] = err.decode(errors="replace")[-500:]


# The measurements the durable peers' scripts share: each script passes what a chain, a fan-out
# or a no-op task is in its system, and these time them as the older scripts do.
def measure_noop(
    report: Report, args: argparse.Namespace, many: Callable[[int], None], one: Callable[[], Callable[[], float]]
) -> None:
    """`many(n)` runs n no-op tasks and returns once all succeeded; `one()` submits one and returns
    a getter of the wall-clock time its handler started."""
    many(min(500, args.tasks))  # warm-up
    started = time.perf_counter()
    many(args.tasks)
    report.add(NOOP, "tasks_per_s", args.tasks / (time.perf_counter() - started), "tasks/s")
    submitted = []
    for _ in paced(args.latency_samples, args.latency_interval):
        at = time.time()
        submitted.append((one(), at))
    latencies = [(started_at() - at) * 1000 for started_at, at in submitted]
    report.add(NOOP, "latency_p50_ms", percentile(latencies, 0.5), "ms")
    report.add(NOOP, "latency_p99_ms", percentile(latencies, 0.99), "ms")


def measure_chains(report: Report, args: argparse.Namespace, chain: Callable[[int, float], int]) -> None:
    """`chain(n, ms)` runs an n-step chain of `work.step` and returns its result (n)."""

    def timed(ms: float) -> float:
        started = time.perf_counter()
        value = chain(args.chain, ms)
        elapsed = time.perf_counter() - started
        if value != args.chain:
            raise RuntimeError(f"chain returned {value}, not {args.chain}")
        return elapsed

    def noop() -> None:
        timed(0)  # warm-up
        report.add(CHAIN_NOOP, "per_step_ms", timed(0) / args.chain * 1000, "ms")

    def slow() -> None:
        report.add(CHAIN_10MS, "per_step_overhead_ms", timed(10) / args.chain * 1000 - 10, "ms")

    report.run(CHAIN_NOOP, args.scenarios, noop)
    report.run(CHAIN_10MS, args.scenarios, slow)


def measure_fan_out(report: Report, args: argparse.Namespace, fan: Callable[[int], int]) -> None:
    """`fan(n)` runs `work.item` over range(n) and returns the sum of the results."""

    def body() -> None:
        fan(10)  # warm-up
        started = time.perf_counter()
        total = fan(args.fan)
        elapsed = time.perf_counter() - started
        if total != args.fan * (args.fan + 1) // 2:
            raise RuntimeError(f"gather summed to {total}")
        report.add(FAN_OUT, "wall_s", elapsed, "s")

    report.run(FAN_OUT, args.scenarios, body)


def measure_recovery(
    report: Report, log: Path, victim: subprocess.Popen[Any], restart: Callable[[], Any], finished: Callable[[], bool]
) -> None:
    """Kill `victim` (it runs or coordinates the 40-step 10 ms chain that appends to `log`) after
    KILL_AFTER_STEPS steps; `restart()` starts what replaces it; `finished()` waits (bounded)
    until the killed run itself has its result, and says whether it is right."""
    wait_steps(log, KILL_AFTER_STEPS, 120)
    killed = time.perf_counter()
    kill_group(victim)
    restart()
    resumed = finished()
    done = time.perf_counter()
    report.add(RECOVERY, "resumed", 1 if resumed else 0, "bool")
    if resumed:
        report.add(RECOVERY, "kill_to_done_s", done - killed, "s")
    report.add(RECOVERY, "steps_repeated", repeated_steps(log), "steps")


def exits_ok(process: subprocess.Popen[Any], timeout: float = 180) -> bool:
    """Wait (bounded) for a driver process; True when it exited 0."""
    try:
        return process.wait(timeout) == 0
    except subprocess.TimeoutExpired:
        kill_group(process)
        return False


def spawn(command: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """A helper process in its own session (so kill_group reaches its children), output to `log`.
    It dies with this process (setpriv's parent-death signal, where there is setpriv): a turn that
    compare.py kills when it overruns leaves no worker or server behind."""
    if shutil.which("setpriv"):
        command = ["setpriv", "--pdeathsig", "KILL", "--", *command]
    output = log.open("ab")
    return subprocess.Popen(
        command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, **(env or {})}
    )


def measure_driver_recovery(report: Report, log: Path, driver: list[str], output: Path) -> None:
    """Recovery where the victim is a driver process (`driver` runs the chain; with `--resume` added
    it picks the same run up again and exits 0 once it has the right result)."""
    first = spawn(driver, output)
    restarted: list[subprocess.Popen[bytes]] = []
    measure_recovery(
        report,
        log,
        first,
        lambda: restarted.append(spawn([*driver, "--resume"], output)),
        lambda: exits_ok(restarted[0]),
    )


def measure_all(
    report: Report,
    args: argparse.Namespace,
    chain: Callable[[int, float], int],
    fan: Callable[[int], int],
    recovery: Callable[[], None],
    noop: tuple[Callable[[int], None], Callable[[], Callable[[], float]]] | None = None,
) -> None:
    """Every scenario asked for, in the usual order; `noop` is (many, one) of measure_noop."""
    if noop is not None:
        report.run(NOOP, args.scenarios, lambda: measure_noop(report, args, *noop))
    measure_chains(report, args, chain)
    measure_fan_out(report, args, fan)
    report.run(RECOVERY, args.scenarios, recovery)


def run_turn(report: Report, start: Callable[[], None], body: Callable[[], None], stop: Callable[[], None]) -> None:
    """Start the system, run the scenarios, stop it and print the result line, whatever fails."""
    try:
        start()
        body()
    except Exception as error:  # noqa: BLE001 - reported, not raised
        report.fail("start", error)
    finally:
        stop()
        report.emit()


def run_durable(report: Report, args: argparse.Namespace, bench: Any, tasks: bool = True) -> None:
    """A durable peer's turn: `bench` has start, stop, chain, fan and recovery (and many and one,
    of measure_noop, when the peer has plain tasks)."""
    noop = (bench.many, bench.one) if tasks else None
    run_turn(
        report, bench.start, lambda: measure_all(report, args, bench.chain, bench.fan, bench.recovery, noop), bench.stop
    )
