"""pweza side by side with Celery, Ray, Prefect, DBOS, LangGraph and Temporal: one run, one machine (`make bench`).

Installs the peers (pinned) into their own virtualenvs, never the project's
(`$PWEZA_BENCH_VENV`, default ~/.cache/pweza/bench-peers, and `<it>-dbos`, `-langgraph`,
`-temporal` beside it); starts what they need on loopback (Redis from Debian for Celery, a
Prefect server, Debian's PostgreSQL with fsync on for DBOS, the Temporal server that
hack/build-temporal.sh builds); then runs the same work through
each system in turn — one script per system in benchmarks/peers/, each in a fresh process
with its own worker processes — interleaved within each repetition and repeated, and writes:

- bench-results/compare-<timestamp>.json: every raw figure (system, version, scenario,
  metric, repetition, value) and every error; the same file as docs/benchmarks-results.json;
- docs/benchmarks.md: medians, pweza's ratio to each peer, machine, versions, guarantees,
  the command (text between the `notes` markers of the previous file is kept);
- docs/benchmarks.png: the same as a chart (matplotlib, in the peers' virtualenv).

Then, for every scenario where pweza's median is behind a peer's, runs pweza once more under
py-spy (manager and one agent) and keeps the flame graphs and a summary of the top frames.

    python benchmarks/compare.py [--reps 3] [--systems pweza celery ray prefect ...]
    python benchmarks/compare.py --systems dbos-sqlite,langgraph --rounds 1 --no-profile   # a quick look

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
from comparing.peers_venv import install
from comparing.profiles import profile_where_behind
from comparing.report import machine, write_report
from comparing.running import Results, record, run_system
from comparing.services import (
    Service,
    prefect_env,
    start_postgres,
    start_prefect,
    start_redis,
    temporal_server,
    wait_quiet,
)  # fmt: skip
from comparing.systems import REGISTRY, SCENARIOS_OF, SYSTEMS
from peers import common

from pweza.testing.postgres import PostgresServer


def names(text: str) -> list[str]:
    """`--systems dbos-sqlite,langgraph` or `--systems dbos-sqlite langgraph` (argparse joins the latter)."""
    found = [name for name in text.replace(",", " ").split() if name]
    unknown = [name for name in found if name not in SYSTEMS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown system(s) {', '.join(unknown)}; known: {', '.join(SYSTEMS)}")
    return found


def options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", "--rounds", dest="reps", type=int, default=3, help="repetitions of every turn")
    parser.add_argument("--recovery-reps", type=int, default=2)
    parser.add_argument(
        "--systems",
        nargs="+",
        type=names,
        default=[SYSTEMS],
        help="comma- or space-separated, of: " + ", ".join(SYSTEMS),
    )
    parser.add_argument(
        "--scenarios", nargs="+", default=common.SCENARIOS, choices=common.SCENARIOS, help="only these scenarios"
    )
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
    args.systems = list(dict.fromkeys(name for group in args.systems for name in group))
    return args


def main() -> None:
    args = options()
    # SIGTERM (e.g. a CI time-out) runs the `finally` below, which stops the services.
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
        "scenarios": args.scenarios,
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
    systems = list(args.systems)
    wanted: dict[str, set[str]] = {"peers": {"tools"}}  # the chart and the profiles, whoever runs
    for name in systems:
        if REGISTRY[name].venv != "project":
            wanted.setdefault(REGISTRY[name].venv, set()).add(REGISTRY[name].group)
    pythons, install_errors = install(args.venv.expanduser(), wanted)
    pythons["project"] = Path(sys.executable)
    for system in list(systems):
        if REGISTRY[system].group in install_errors:
            error = install_errors[REGISTRY[system].group]
            results.errors.append({"system": system, "repetition": 0, "scenario": "install", "error": error})
            systems.remove(system)
    services: list[Service] = []
    env: dict[str, dict[str, str]] = {s: {} for s in SYSTEMS}
    scratch = Path(tempfile.mkdtemp(prefix="pweza-compare-"))
    postgres: PostgresServer | None = None
    needed = {REGISTRY[s].needs for s in systems}

    def unavailable(need: str, error: Exception) -> None:
        for system in [s for s in systems if REGISTRY[s].needs == need]:
            results.errors.append({"system": system, "repetition": 0, "scenario": "start", "error": str(error)})
            systems.remove(system)
        log(f"{need} unavailable: {error}")

    try:
        if "redis" in needed:
            try:
                redis = start_redis(scratch)
                services.append(redis)
                env["celery"] = {"BENCH_REDIS_URL": redis.url}
            except Exception as error:  # noqa: BLE001 - reported as Celery's failure
                unavailable("redis", error)
        if "postgres" in needed:
            try:
                postgres = start_postgres()
            except Exception as error:  # noqa: BLE001 - reported as the failure of those that need it
                unavailable("postgres", error)
        if "temporal" in needed:
            try:
                binary = temporal_server()
                for system in systems:
                    if REGISTRY[system].needs == "temporal":
                        env[system] = {"BENCH_TEMPORAL_SERVER": binary}
            except Exception as error:  # noqa: BLE001 - reported as Temporal's failure
                unavailable("temporal", error)
        log(f"set-up done in {time.monotonic() - begun:.0f}s; systems: {', '.join(systems)}")

        for rep in range(args.reps):
            order = systems[rep % len(systems) :] + systems[: rep % len(systems)] if systems else []
            for system in order:
                wanted_scenarios = SCENARIOS_OF[system] + ([common.RECOVERY] if rep < args.recovery_reps else [])
                scenarios = [s for s in wanted_scenarios if s in args.scenarios]
                if not scenarios:
                    continue
                workdir = scratch / f"{system}-{rep}"
                server: Service | None = None
                if system == "prefect":
                    # A fresh server per turn: after a fan-out it works off its event backlog for
                    # minutes, which would slow the next system down; and every turn starts alike.
                    try:
                        server = start_prefect(pythons["peers"], workdir)
                    except Exception as error:  # noqa: BLE001 - reported as Prefect's failure
                        results.errors.append(
                            {"system": system, "repetition": rep, "scenario": "start", "error": str(error)}
                        )
                        log(f"prefect rep {rep}: server did not start: {error}")
                        continue
                    env[system] = {**prefect_env(workdir), "PREFECT_API_URL": server.url}
                if postgres is not None and REGISTRY[system].needs == "postgres":
                    env[system] = {"BENCH_POSTGRES_URL": postgres.create_database(f"{system.replace('-', '_')}_{rep}")}
                started = time.monotonic()
                try:
                    python = pythons[REGISTRY[system].venv]
                    result = run_system(system, python, scenarios, args, env[system], workdir)
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
                pythons["project"],
                pythons["peers"].parent / "py-spy",
                args,
                args.out / f"profile-{stamp}",
                scratch / "pweza-profile",
            )
        data["profiles"] = profiles
    finally:
        for service in services:
            service.stop()
        if postgres is not None:
            postgres.remove()
        shutil.rmtree(scratch, ignore_errors=True)

    data["machine"]["load_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    data["versions"] = results.versions
    data["notes"] = dict(results.notes)
    data["turns"] = results.turns
    data["figures"] = results.figures
    data["errors"] = results.errors
    data["wall_seconds"] = round(time.monotonic() - begun, 1)
    write_report(data, results, args.out, args.docs, pythons["peers"], stamp)
    log(f"total {data['wall_seconds'] / 60:.1f} min")


if __name__ == "__main__":
    main()
