"""pweza side by side with Celery, Ray and Prefect: one run, one machine (`make bench`).

Installs the peers (pinned) into their own virtualenv, never the project's
(`$PWEZA_BENCH_VENV`, default ~/.cache/pweza/bench-peers); starts what they need on
loopback (Redis from Debian for Celery, a Prefect server); then runs the same work through
each system in turn — one script per system in benchmarks/peers/, each in a fresh process
with its own worker processes — interleaved within each repetition and repeated, and writes:

- bench-results/compare-<timestamp>.json: every raw figure (system, version, scenario,
  metric, repetition, value) and every error; the same file as docs/benchmarks-results.json;
- docs/benchmarks.md: medians, pweza's ratio to each peer, machine, versions, guarantees,
  the command (text between the `notes` markers of the previous file is kept);
- docs/benchmarks.png: the same as a chart (matplotlib, in the peers' virtualenv).

Then, for every scenario where pweza's median is behind a peer's, runs pweza once more under
py-spy (manager and one agent) and keeps the flame graphs and a summary of the top frames.

    python benchmarks/compare.py [--reps 3] [--systems pweza celery ray prefect]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / "benchmarks" / "peers"
sys.path.insert(0, str(PEERS))

import common  # noqa: E402

PINS = {
    "celery": ["celery[redis]==5.7.0", "redis==8.1.0"],
    "ray": ["ray==2.60.0"],
    "prefect": ["prefect==3.9.1"],
    "tools": ["matplotlib==3.11.2", "py-spy==0.4.3"],
}
SYSTEMS = ["pweza", "celery", "ray", "prefect"]
PERF = [common.NOOP, common.CHAIN_NOOP, common.CHAIN_10MS, common.FAN_OUT]
SCENARIOS_OF = {"pweza": PERF, "celery": PERF, "ray": PERF, "prefect": PERF[1:]}  # issue #7: no Prefect in 1.

# (scenario, metric, label, higher is better)
METRICS = [
    (common.NOOP, "tasks_per_s", "10,000 no-op tasks: throughput (tasks/s)", True),
    (common.NOOP, "latency_p50_ms", "no-op task submit-to-start p50 (ms)", False),
    (common.NOOP, "latency_p99_ms", "no-op task submit-to-start p99 (ms)", False),
    (common.CHAIN_NOOP, "per_step_ms", "40-step chain, no-op steps: time per step (ms)", False),
    (common.CHAIN_10MS, "per_step_overhead_ms", "40-step chain, 10 ms steps: overhead per step (ms)", False),
    (common.FAN_OUT, "wall_s", "fan-out of 1,000 steps and gather: wall time (s)", False),
    (common.RECOVERY, "kill_to_done_s", "coordinator killed mid-chain: kill to result (s)", False),
]

GUARANTEES = {
    "pweza": (
        "durable: tasks, runs and steps are committed to SQLite before they are acknowledged; "
        "retries with backoff by default (3); at-least-once with an idempotency key per attempt; "
        "a run resumes by itself when the manager restarts"
    ),
    "celery": (
        "as configured here: at-least-once (acks_late + reject_on_worker_lost; Celery's default acks on "
        "receipt, at-most-once); retries only where a task asks (autoretry_for / self.retry); state lives "
        "in Redis, run here without persistence (--save '', no AOF) as most Celery+Redis set-ups, so a "
        "Redis crash loses queued tasks; a chain goes on after a worker crash once the visibility timeout "
        "passes"
    ),
    "ray": (
        "not durable: tasks and results live in memory and are owned by the driver; a task is retried "
        "(3 times by default) when its worker process dies, but when the driver dies its job is gone; "
        "Ray Workflows (durable DAGs) was removed after Ray 2.47"
    ),
    "prefect": (
        "flow and task run states are recorded by the Prefect server (SQLite here); results are kept "
        "only when persisted; retries only where a task or flow asks (retries=N); a crashed flow run is "
        "not resumed — a new run can skip finished tasks through result caching"
    ),
}
WORKERS_TEXT = {
    "pweza": "2 agent processes (one pool; template concurrency 64, as benchmarks/dispatch.py)",
    "celery": "1 worker with 2 prefork processes (prefetch multiplier 4, the default)",
    "ray": "`ray.init(num_cpus=2)`: 2 task worker processes",
    "prefect": "flow in one process; fan-out on `ThreadPoolTaskRunner(max_workers=2)`; chain steps in the flow",
}
NOTES_BEGIN = "<!-- notes:begin (kept by compare.py when it rewrites this file) -->"
NOTES_END = "<!-- notes:end -->"


def log(message: str) -> None:
    print(f"[compare {time.strftime('%H:%M:%S')}] {message}", flush=True)


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- set-up -------------------------------------------------------------------------------
def peers_venv(path: Path) -> tuple[Path, dict[str, str]]:
    """Create or complete the peers' virtualenv; an install error is kept per system."""
    errors: dict[str, str] = {}
    python = path / "bin" / "python"
    if not python.exists():
        log(f"creating the peers' virtualenv {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"], check=False)
    check = "import importlib.metadata as m, json, sys; v = {}\nfor n in sys.argv[1:]:\n"
    check += "    try: v[n] = m.version(n)\n    except m.PackageNotFoundError: v[n] = None\nprint(json.dumps(v))"
    for system, pins in PINS.items():
        wanted = {pin.split("==")[0].split("[")[0]: pin.split("==")[1] for pin in pins}
        found = json.loads(subprocess.run([str(python), "-c", check, *wanted], capture_output=True, text=True).stdout)
        if found == wanted:
            continue
        log(f"installing {' '.join(pins)} into {path}")
        done = subprocess.run([str(python), "-m", "pip", "install", "--quiet", *pins], capture_output=True, text=True)
        if done.returncode != 0:
            errors[system] = f"pip install {' '.join(pins)} failed: {done.stderr.strip()[-1500:]}"
            log(errors[system])
    return python, errors


def ensure_redis() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    log("redis-server missing: apt-get install -y redis-server")
    attempt = subprocess.run(["apt-get", "install", "-y", "redis-server"], capture_output=True, text=True)
    if attempt.returncode != 0:
        subprocess.run(["apt-get", "update"], capture_output=True, text=True)
        attempt = subprocess.run(["apt-get", "install", "-y", "redis-server"], capture_output=True, text=True)
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError(f"cannot install redis-server: {attempt.stderr.strip()[-1000:]}")
    return found


@dataclass
class Service:
    name: str
    process: subprocess.Popen[bytes]
    url: str

    def stop(self) -> None:
        if self.process.poll() is None:
            common.kill_group(self.process, signal.SIGTERM)

    def cpu_seconds(self) -> float:
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_redis(scratch: Path) -> Service:
    binary = ensure_redis()
    port = free_port()
    data = scratch / "redis"
    data.mkdir()
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    command += ["--dir", str(data), "--protected-mode", "yes"]
    output = (scratch / "redis.log").open("ab")
    process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return Service("redis", process, f"redis://127.0.0.1:{port}/0")
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"redis-server did not answer on port {port}: {(scratch / 'redis.log').read_text()[-1000:]}")


def prefect_env(scratch: Path) -> dict[str, str]:
    return {
        "PREFECT_HOME": str(scratch / "prefect-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }


def start_prefect(python: Path, scratch: Path) -> Service:
    scratch.mkdir(parents=True, exist_ok=True)
    port = free_port()
    prefect = python.parent / "prefect"
    env = {**os.environ, **prefect_env(scratch)}
    env.pop("PREFECT_API_URL", None)
    output = (scratch / "prefect-server.log").open("ab")
    process = subprocess.Popen(
        [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return Service("prefect-server", process, url)
        except OSError:
            time.sleep(0.5)
    common.kill_group(process)
    raise RuntimeError(f"prefect server did not start: {(scratch / 'prefect-server.log').read_text()[-1500:]}")


def wait_quiet(services: list[Service], limit: float = 60.0) -> float:
    """Wait until background services stop working off the last system's load (bounded)."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        before = sum(s.cpu_seconds() for s in services)
        time.sleep(1.0)
        if sum(s.cpu_seconds() for s in services) - before < 0.15:
            break
    return time.monotonic() - started


# -- running ------------------------------------------------------------------------------
@dataclass
class Results:
    figures: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    notes: dict[str, dict[str, str]] = field(default_factory=lambda: defaultdict(dict))
    turns: list[dict[str, Any]] = field(default_factory=list)


def run_system(
    system: str,
    python: Path,
    scenarios: list[str],
    args: argparse.Namespace,
    env: dict[str, str],
    workdir: Path,
    extra: list[str] | None = None,
) -> dict[str, Any]:
    script = PEERS / f"{system}_bench.py"
    command = [str(python), str(script), "--workdir", str(workdir), "--scenarios", *scenarios]
    command += ["--tasks", str(args.tasks), "--chain", str(args.chain), "--fan", str(args.fan)]
    command += ["--latency-samples", str(args.latency_samples), "--latency-interval", str(args.latency_interval)]
    command += ["--workers", str(args.workers), *(extra or [])]
    log_path = workdir.with_suffix(".log")
    workdir.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as stderr:
        try:
            done = subprocess.run(
                command, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=stderr, text=True,
                timeout=args.turn_timeout, cwd=ROOT,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return {
                "system": system,
                "figures": [],
                "errors": [{"scenario": "all", "error": f"timed out after {args.turn_timeout}s"}],
            }
    for line in done.stdout.splitlines():
        if line.startswith(common.MARK):
            result: dict[str, Any] = json.loads(line[len(common.MARK) :])
            return result
    tail = log_path.read_text(errors="replace")[-1500:]
    return {
        "system": system,
        "figures": [],
        "errors": [{"scenario": "all", "error": f"exit {done.returncode}: {tail}"}],
    }


def record(results: Results, result: dict[str, Any], repetition: int, seconds: float) -> None:
    system = result["system"]
    if result.get("version"):
        results.versions[system] = result["version"]
    for figure in result["figures"]:
        results.figures.append(
            {"system": system, "version": result.get("version", ""), **figure, "repetition": repetition}
        )
    for error in result["errors"]:
        results.errors.append({"system": system, "repetition": repetition, **error})
    for key, text in result.get("notes", {}).items():
        results.notes[system][key] = text
    results.turns.append({"system": system, "repetition": repetition, "seconds": round(seconds, 1)})
    summary = ", ".join(f"{f['scenario']}:{f['metric']}={f['value']:.4g}" for f in result["figures"])
    log(f"{system} rep {repetition} ({seconds:.0f}s): {summary or 'no figures'}")
    for error in result["errors"]:
        log(f"{system} rep {repetition} ERROR {error['scenario']}: {error['error'][:300]}")


def medians(results: Results) -> dict[tuple[str, str, str], list[float]]:
    values: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for row in results.figures:
        values[(row["system"], row["scenario"], row["metric"])].append(float(row["value"]))
    return values


def advantage(ours: float, theirs: float, higher_better: bool) -> float:
    """> 1: pweza is better by that factor; < 1: pweza is behind."""
    if higher_better:
        return ours / theirs if theirs else float("inf")
    return theirs / ours if ours else float("inf")


def behind(results: Results, systems: list[str]) -> dict[str, list[str]]:
    """Scenario -> the peers whose median beats pweza's in one of its metrics."""
    values = medians(results)
    found: dict[str, list[str]] = defaultdict(list)
    for scenario, metric, _, higher in METRICS:
        ours = values.get(("pweza", scenario, metric))
        if not ours:
            continue
        for peer in systems:
            theirs = values.get((peer, scenario, metric))
            if peer == "pweza" or not theirs:
                continue
            if (
                advantage(statistics.median(ours), statistics.median(theirs), higher) < 1
                and peer not in found[scenario]
            ):
                found[scenario].append(peer)
    return dict(found)


_PLUMBING = (
    "<frozen", "<module>", "typer/", "_click/", "asyncio/runners.py", "asyncio/base_events.py", "asyncio/events.py",
    "threading.py", "pweza/cli/main.py", "pweza/agent/main.py",
)  # fmt: skip


# Where a sample's stack passes through one of these, it is counted for that part (inclusive).
_PARTS = [
    ("event loop idle (epoll)", "EpollSelector.select"),
    ("SQLite writer thread", "SqliteStore._serve"),
    ("HTTP request handling (FastAPI routing)", "APIRouter.app (fastapi/routing.py"),
    ("HTTP middleware (BaseHTTPMiddleware)", "BaseHTTPMiddleware.__call__"),
    ("gRPC agent channel (pweza/rpc)", "pweza/rpc/"),
    ("dispatcher", "pweza/manager/dispatching.py"),
    ("workflow engine", "pweza/manager/workflows.py"),
    ("CEL expressions", "pweza/domain/expressions.py"),
    ("agent handler threads", "HandlerThreads._work"),
    ("agent task runner", "pweza/agent/running.py"),
    ("gRPC client stream (agent)", "grpc/aio/_call.py"),
]


def summarise_profile(raw: Path, top: int = 12) -> dict[str, list[tuple[str, float]]]:
    """Top frames of a py-spy collapsed-stack file: own (self) time and inclusive time, in %."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [frame.rsplit(":", 1)[0] + ")" if ":" in frame else frame for frame in stack.split(";")]
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    if not total:
        return {"samples": [("all", 0.0)], "self": [], "inclusive": []}
    # The entry point, the event loop and thread start-up hold every sample: not informative.
    telling = [(f, n) for f, n in inclusive.items() if "pweza/" in f and not any(p in f for p in _PLUMBING)]
    parts = [(label, sum(n for f, n in inclusive.items() if marker in f)) for label, marker in _PARTS]
    return {
        "samples": [("all", float(total))],
        "parts": [(label, round(100 * n / total, 1)) for label, n in parts if n],
        "self": [(f, round(100 * n / total, 1)) for f, n in own.most_common(top)],
        "inclusive": [(f, round(100 * n / total, 1)) for f, n in sorted(telling, key=lambda x: -x[1])[:top]],
    }


# -- reporting ----------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    memory = 0.0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory = int(line.split()[1]) / 1024 / 1024
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(memory, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def fmt(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def markdown(data: dict[str, Any], results: Results, previous_notes: str) -> str:
    systems: list[str] = data["systems"]
    values = medians(results)
    peers = [s for s in systems if s != "pweza"]
    out = ["# Benchmarks: pweza, Celery, Ray and Prefect", ""]
    out += [
        f"One run of `{data['command']}` on one machine, {data['started_at']} "
        f"({data['wall_seconds'] / 60:.1f} min end to end). Every figure is the **median of "
        f"{data['repetitions']} repetitions** (min-max in brackets); within a repetition the systems ran one "
        "after another, each in fresh processes, starting with a different system each time. Raw figures: "
        "[benchmarks-results.json](benchmarks-results.json). Chart: [benchmarks.png](benchmarks.png).",
        "",
        "![pweza and its peers](benchmarks.png)",
        "",
        "## Medians",
        "",
    ]
    header = "| | " + " | ".join(f"{s} {results.versions.get(s, '')}".strip() for s in systems) + " | "
    header += " | ".join(f"pweza vs {p}" for p in peers) + " |"
    out += [header, "|---" * (1 + len(systems) + len(peers)) + "|"]
    for scenario, metric, label, higher in METRICS:
        cells = []
        for system in systems:
            got = values.get((system, scenario, metric))
            if got:
                cells.append(f"{fmt(statistics.median(got))} ({fmt(min(got))}-{fmt(max(got))})")
            elif scenario not in [*SCENARIOS_OF.get(system, PERF), common.RECOVERY]:
                cells.append("not in this scenario")
            else:
                cells.append("**no figure** (see errors)")
        ratios = []
        ours = values.get(("pweza", scenario, metric))
        for peer in peers:
            theirs = values.get((peer, scenario, metric))
            if ours and theirs:
                factor = advantage(statistics.median(ours), statistics.median(theirs), higher)
                ratios.append(f"{factor:.2f}x better" if factor >= 1 else f"**{1 / factor:.2f}x worse**")
            else:
                ratios.append("-")
        out.append(f"| {label} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
    out += [
        "",
        "“pweza vs X”: how many times better (or worse) pweza's median is than X's, in the metric's own "
        "direction (more tasks/s is better; fewer ms or s is better).",
        "",
        "## Recovery: the coordinating process killed mid-chain",
        "",
        "The 40-step chain with 10 ms steps; after 20 steps had run, the process that coordinates the run "
        "was SIGKILLed and started again. `resumed`: the killed run itself finished, without anyone "
        "re-submitting it. `steps run twice`: steps whose handler ran more than once.",
        "",
        "| | coordinator killed | resumed | kill to result (s) | steps run twice | what happened |",
        "|---|---|---|---|---|---|",
    ]
    killed = {
        "pweza": "the manager",
        "celery": "the worker (it sends a chain's next task)",
        "ray": "the driver (it owns the tasks)",
        "prefect": "the flow process",
    }
    for system in systems:
        resumed = values.get((system, common.RECOVERY, "resumed"))
        took = values.get((system, common.RECOVERY, "kill_to_done_s"))
        twice = values.get((system, common.RECOVERY, "steps_repeated"))
        note = results.notes.get(system, {}).get("recovery", "")
        errors = [e["error"] for e in results.errors if e["system"] == system and e["scenario"] == common.RECOVERY]
        out.append(
            f"| {system} | {killed.get(system, '')} | {'yes' if resumed and min(resumed) == 1 else 'no'} | "
            f"{fmt(statistics.median(took)) if took else '-'} | {fmt(statistics.median(twice)) if twice else '-'} | "
            f"{note}{' ERROR: ' + errors[0][:300] if errors else ''} |"
        )
    out += ["", "## Guarantees next to the figures", "", "| | worker processes | guarantees |", "|---|---|---|"]
    for system in systems:
        out.append(f"| {system} | {WORKERS_TEXT[system]} | {GUARANTEES[system]} |")
    out += ["", "## What failed", ""]
    if results.errors:
        for error in results.errors:
            text = error["error"].replace("\n", " ")[:600]
            out.append(f"- {error['system']}, {error['scenario']}, repetition {error['repetition']}: `{text}`")
    else:
        out.append("Nothing: every system installed, started and produced every figure asked of it.")
    out += ["", "## How it was measured", ""]
    out += [
        f"- Command: `{data['command']}` from the repository root (`make bench` runs "
        "`.venv/bin/python benchmarks/compare.py`, with no arguments).",
        f"- Machine: {data['machine']['cpus']} CPUs ({data['machine']['cpu_model']}), "
        f"{data['machine']['memory_gib']} GiB, Linux {data['machine']['kernel']}, Python "
        f"{data['machine']['python']}. The machine was shared with other work: load average "
        f"{data['machine']['load_start']} at the start, {data['machine']['load_end']} at the end "
        "(1, 5, 15 min), so the spread in brackets is mostly that.",
        "- Versions: "
        + ", ".join(f"{s} {v}" for s, v in results.versions.items())
        + (f", Redis {results.notes['celery']['redis']}" if "redis" in results.notes.get("celery", {}) else "")
        + ". Peers installed with pip into their own virtualenv, pinned (benchmarks/compare.py `PINS`).",
        "- Same handler work everywhere (benchmarks/peers/work.py): the no-op returns the time it started; a "
        "chain step returns its input + 1 (after 10 ms of `time.sleep` in the 10 ms variant), so a chain must "
        "return 40; a fan-out element returns i + 1 and the gather must sum to 500,500.",
        f"- Throughput: {data['tasks']:,} tasks submitted as fast as the client can (pweza: batches of 1,000 "
        "through `POST /api/v1/tasks:batch`; Celery: one `group`; Ray: a list of `.remote()`), clock stopped "
        "when the client knows all have succeeded (pweza: its succeeded-tasks counter, polled every 50 ms; "
        "Celery: `join_native`, polling every 50 ms; Ray: `ray.get`), after a 500-task warm-up.",
        f"- Submit-to-start latency: {data['latency_samples']} tasks submitted one at a time, one every "
        f"{data['latency_interval'] * 1000:g} ms (below every system's throughput here, so no queue builds up); "
        "per task, the time the handler started "
        "(its own `time.time()`) minus the client's `time.time()` just before submitting. For pweza the "
        "submit includes the durable commit the API waits for before it answers.",
        "- Chains: the client's wall time from submitting the run to holding its result, divided by 40 "
        "(minus 10 ms for the 10 ms variant), after a warm-up run. pweza: a Workflow whose steps depend on "
        "the previous one and take its output; Celery: `chain`; Ray: each step's ObjectRef passed to the "
        "next; Prefect: 40 task calls in one flow.",
        "- Fan-out: pweza `foreach` over 1,000 items, Celery `chord` with a summing callback, Ray 1,000 "
        "`.remote()` and `ray.get`, Prefect `task.map` and `.result()`.",
        "- Services on loopback: Redis (`--save ''`, no AOF) for the whole run; a Prefect server (SQLite) "
        "started for each Prefect turn and stopped after it, since it works off its event backlog for minutes "
        "after a fan-out. After each turn the run waits (60 s at most) until Redis is idle again.",
        f"- Recovery ran {data['recovery_repetitions']} time(s) per system, as the last scenario of the first "
        "repetition(s). Each Prefect turn has its own fresh Prefect server (start-up not counted).",
    ]
    if data.get("profiles"):
        out += ["", "## Where pweza is behind: profiles (the causes and plans are in the notes below)", ""]
        out += [
            "For each scenario where a peer's median beat pweza's, compare.py ran pweza once more with "
            "py-spy sampling the manager and both agents at 100 Hz (flame graphs under bench-results/, named "
            "below; short scenarios run 5 times under the profiler; a process with fewer than 20 samples is left "
            "out). Shares are of the samples py-spy took (it skips idle threads, but counts the event loop "
            "waiting in epoll):",
            "",
        ]
        for scenario, entry in data["profiles"].items():
            out.append(f"### {scenario} (behind: {', '.join(entry['behind'])})")
            out.append("")
            for name, summary in entry.get("summaries", {}).items():
                samples = int(summary.get("samples", [("", 0)])[0][1])
                out.append(f"{name} ({samples} samples; `{entry['files'].get(name, '')}`):")
                out.append("")
                parts = ", ".join(f"{label} {share}%" for label, share in summary.get("parts", []))
                out.append(f"- by part (a sample can count in two): {parts}")
                top = ", ".join(f"`{frame}` {share}%" for frame, share in summary.get("inclusive", [])[:6])
                out.append(f"- pweza frames, inclusive: {top}")
                own = ", ".join(f"`{f}` {s}%" for f, s in summary.get("self", [])[:4])
                out.append(f"- own time: {own}")
                out.append("")
            if entry.get("error"):
                out.append(f"Profile error: `{entry['error'][:400]}`")
                out.append("")
    out += ["", NOTES_BEGIN, previous_notes.strip("\n"), NOTES_END, ""]
    return "\n".join(out)


def previous_notes(path: Path) -> str:
    if not path.exists():
        return "\n## Notes\n\n(none yet)\n"
    text = path.read_text()
    if NOTES_BEGIN in text and NOTES_END in text:
        return text.split(NOTES_BEGIN, 1)[1].split(NOTES_END, 1)[0]
    return "\n## Notes\n\n(none yet)\n"


# -- main ---------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--recovery-reps", type=int, default=2)
    parser.add_argument("--systems", nargs="+", default=SYSTEMS, choices=SYSTEMS)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--chain", type=int, default=40)
    parser.add_argument("--fan", type=int, default=1000)
    parser.add_argument("--latency-samples", type=int, default=200)
    parser.add_argument("--latency-interval", type=float, default=0.02, help="seconds between latency submits")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--turn-timeout", type=int, default=420, help="seconds for one system's turn")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument(
        "--venv", type=Path, default=Path(os.environ.get("PWEZA_BENCH_VENV", "~/.cache/pweza/bench-peers"))
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results")
    parser.add_argument("--docs", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    # SIGTERM (e.g. a CI time-out) runs the `finally` below, which stops Redis and the Prefect server.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    begun = time.monotonic()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    invoked = ".venv/bin/python benchmarks/compare.py" + (" " + shlex.join(sys.argv[1:]) if sys.argv[1:] else "")
    command = "make bench" if os.environ.get("MAKELEVEL") and not sys.argv[1:] else invoked
    data: dict[str, Any] = {
        "benchmark": "compare",
        "command": command,
        "started_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "systems": args.systems,
        "repetitions": args.reps,
        "recovery_repetitions": args.recovery_reps,
        "tasks": args.tasks,
        "chain": args.chain,
        "fan": args.fan,
        "latency_samples": args.latency_samples,
        "latency_interval": args.latency_interval,
        "workers": args.workers,
    }
    results = Results()
    log(f"machine: {data['machine']}")
    args.out.mkdir(parents=True, exist_ok=True)
    python, install_errors = peers_venv(args.venv.expanduser())
    pythons = {"pweza": Path(sys.executable), "celery": python, "ray": python, "prefect": python}
    systems = list(args.systems)
    for system, error in install_errors.items():
        if system in systems:
            results.errors.append({"system": system, "repetition": 0, "scenario": "install", "error": error})
            systems.remove(system)
    services: list[Service] = []
    env: dict[str, dict[str, str]] = {s: {} for s in SYSTEMS}
    scratch = Path(tempfile.mkdtemp(prefix="pweza-compare-"))
    try:
        if "celery" in systems:
            try:
                redis = start_redis(scratch)
                services.append(redis)
                env["celery"] = {"BENCH_REDIS_URL": redis.url}
            except Exception as error:  # noqa: BLE001 - reported as Celery's failure
                results.errors.append({"system": "celery", "repetition": 0, "scenario": "start", "error": str(error)})
                systems.remove("celery")
        log(f"set-up done in {time.monotonic() - begun:.0f}s; systems: {', '.join(systems)}")

        for rep in range(args.reps):
            order = systems[rep % len(systems) :] + systems[: rep % len(systems)]
            for system in order:
                scenarios = SCENARIOS_OF[system] + ([common.RECOVERY] if rep < args.recovery_reps else [])
                workdir = scratch / f"{system}-{rep}"
                server: Service | None = None
                if system == "prefect":
                    # A fresh server per turn: after a fan-out it works off its event backlog for
                    # minutes, which would slow the next system down; and every turn starts alike.
                    try:
                        server = start_prefect(python, workdir)
                    except Exception as error:  # noqa: BLE001 - reported as Prefect's failure
                        results.errors.append(
                            {"system": system, "repetition": rep, "scenario": "start", "error": str(error)}
                        )
                        log(f"prefect rep {rep}: server did not start: {error}")
                        continue
                    env[system] = {**prefect_env(workdir), "PREFECT_API_URL": server.url}
                started = time.monotonic()
                try:
                    result = run_system(system, pythons[system], scenarios, args, env[system], workdir)
                finally:
                    if server is not None:
                        server.stop()
                record(results, result, rep, time.monotonic() - started)
                waited = wait_quiet(services)
                if waited > 2:
                    log(f"waited {waited:.0f}s for the services to go idle")

        profiles: dict[str, Any] = {}
        lagging = behind(results, systems) if "pweza" in systems and not args.no_profile else {}
        lagging.pop(common.RECOVERY, None)  # a wait, not work: explained in the notes instead
        if lagging:
            log(f"pweza is behind in {', '.join(lagging)}: profiling with py-spy")
            profile_dir = args.out / f"profile-{stamp}"
            extra = ["--py-spy", str(python.parent / "py-spy"), "--profile-dir", str(profile_dir)]
            result = run_system("pweza", pythons["pweza"], list(lagging), args, {}, scratch / "pweza-profile", extra)
            for scenario, peers in lagging.items():
                entry: dict[str, Any] = {"behind": peers, "files": {}, "summaries": {}}
                raws = sorted(
                    profile_dir.glob(f"pweza-{scenario}*.txt"), key=lambda p: ("manager" not in p.stem, p.stem)
                )
                for raw in raws:
                    summary = summarise_profile(raw)
                    if summary["samples"][0][1] >= 20:  # an agent that got (almost) no work is left out
                        name = raw.stem.removeprefix("pweza-")
                        entry["files"][name] = shown(raw.with_suffix(".svg"))
                        entry["summaries"][name] = summary
                problems = [e["error"] for e in result["errors"] if e["scenario"] in (scenario, "all", "start")]
                if problems:
                    entry["error"] = "; ".join(problems)
                profiles[scenario] = entry
        data["profiles"] = profiles
    finally:
        for service in services:
            service.stop()
        shutil.rmtree(scratch, ignore_errors=True)

    data["machine"]["load_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    data["versions"] = results.versions
    data["notes"] = dict(results.notes)
    data["turns"] = results.turns
    data["figures"] = results.figures
    data["errors"] = results.errors
    data["wall_seconds"] = round(time.monotonic() - begun, 1)
    raw_path = args.out / f"compare-{stamp}.json"
    raw_path.write_text(json.dumps(data, indent=1) + "\n")
    args.docs.mkdir(parents=True, exist_ok=True)
    (args.docs / "benchmarks-results.json").write_text(json.dumps(data, indent=1) + "\n")
    chart = args.docs / "benchmarks.png"
    drawn = subprocess.run(
        [str(python), str(PEERS / "plot.py"), str(raw_path), str(chart)], capture_output=True, text=True
    )
    if drawn.returncode != 0:
        log(f"chart failed: {drawn.stderr[-1000:]}")
    doc = args.docs / "benchmarks.md"
    doc.write_text(markdown(data, results, previous_notes(doc)))
    log(f"wrote {shown(raw_path)}, {shown(doc)}, {shown(chart)}")
    log(f"total {data['wall_seconds'] / 60:.1f} min")


if __name__ == "__main__":
    main()
