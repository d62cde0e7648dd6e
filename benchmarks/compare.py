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

This script parses the options and runs the turns; the parts it is built from are in
benchmarks/comparing/ (one module per job).
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from comparing.analysis import behind
from comparing.console import log
from comparing.paths import ROOT
from comparing.peers_venv import peers_venv
from comparing.profiles import profile_where_behind
from comparing.report import machine, write_report
from comparing.running import Results, record, run_system
from comparing.services import Service, prefect_env, start_prefect, start_redis, wait_quiet
from comparing.systems import SCENARIOS_OF, SYSTEMS
from peers import common


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
            profiles = profile_where_behind(
                lagging,
                pythons["pweza"],
                python.parent / "py-spy",
                args,
                args.out / f"profile-{stamp}",
                scratch / "pweza-profile",
            )
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
    write_report(data, results, args.out, args.docs, python, stamp)
    log(f"total {data['wall_seconds'] / 60:.1f} min")


if __name__ == "__main__":
    main()
