"""One system's turn: its script run in a fresh process, and what it printed recorded."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from peers import common

from comparing.console import log
from comparing.paths import PEERS, ROOT
from comparing.systems import REGISTRY


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
    spec = REGISTRY[system]
    script = PEERS / f"{spec.script}_bench.py"
    command = [str(python), str(script), "--workdir", str(workdir), "--scenarios", *scenarios, *spec.options]
    command += ["--tasks", str(args.tasks), "--chain", str(args.chain), "--fan", str(args.fan)]
    command += ["--latency-samples", str(args.latency_samples), "--latency-interval", str(args.latency_interval)]
    command += ["--workers", str(args.workers), *(extra or [])]
    timeout = round(args.turn_timeout * spec.slow)
    log_path = workdir.with_suffix(".log")
    workdir.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as stderr:
        try:
            done = subprocess.run(
                command, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=stderr, text=True,
                timeout=timeout, cwd=ROOT,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return {
                "system": system,
                "figures": [],
                "errors": [{"scenario": "all", "error": f"timed out after {timeout}s"}],
            }
    for line in done.stdout.splitlines():
        if line.startswith(common.MARK):
            result: dict[str, Any] = json.loads(line[len(common.MARK) :])
            result["system"] = system  # the variant (dbos-sqlite-queue), not the script's name (dbos)
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
