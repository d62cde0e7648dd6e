"""CLI start-up benchmark: how long `pweza` takes to start and answer (JSON).

Each command runs `--runs` times in a fresh interpreter; the figures are the median wall
time and the median CPU time (user + system) of the process, in seconds. `get ap` talks to
a manager URL where nothing listens, so it measures start-up plus one failed connection.

    python benchmarks/cli_startup.py [--runs 10]

To compare with another version: `git archive REV src | tar -x -C /tmp/rev`, then
`python benchmarks/cli_startup.py --baseline /tmp/rev/src`; the two versions' runs alternate.
The machine's load average (at the start and the end) is printed too: on a busy machine every
figure grows.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

# `python -m pweza` rather than the console script, so PYTHONPATH can point at another checkout.
PWEZA = [sys.executable, "-m", "pweza"]
COMMANDS = {
    "import pweza.cli.main": [sys.executable, "-c", "import pweza.cli.main"],
    "pweza --help": [*PWEZA, "--help"],
    "pweza get ap": [*PWEZA, "get", "ap", "-s", "http://127.0.0.1:1"],
    "pweza version": [*PWEZA, "version"],
}


def measure(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def summary(samples: list[tuple[float, float]]) -> dict[str, float]:
    return {
        "wall_median_s": round(statistics.median(s[0] for s in samples), 3),
        "cpu_median_s": round(statistics.median(s[1] for s in samples), 3),
        "wall_min_s": round(min(s[0] for s in samples), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--baseline", help="the src/ folder of another version: its samples alternate with this one's")
    args = parser.parse_args()
    versions = {"current": dict(os.environ)}
    if args.baseline:
        versions["baseline"] = {**os.environ, "PYTHONPATH": args.baseline}
    loads = [os.getloadavg()[0]]
    results: dict[str, dict[str, dict[str, float]]] = {version: {} for version in versions}
    for name, command in COMMANDS.items():
        samples: dict[str, list[tuple[float, float]]] = {version: [] for version in versions}
        for env in versions.values():
            measure(command, env)  # warm the file cache and the bytecode
        # Alternating, so that both versions see the same load from whatever else runs.
        for _ in range(args.runs):
            for version, env in versions.items():
                samples[version].append(measure(command, env))
        for version in versions:
            results[version][name] = summary(samples[version])
    loads.append(os.getloadavg()[0])
    report = {"runs": args.runs, "load_average_1m": [round(load, 2) for load in loads], **results}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
