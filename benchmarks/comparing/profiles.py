"""Where pweza is behind: a summary of the py-spy samples taken of its manager and agents."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path
from typing import Any

from comparing.console import log
from comparing.paths import shown
from comparing.running import run_system

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


def profile_where_behind(
    lagging: dict[str, list[str]],
    python: Path,
    py_spy: Path,
    args: argparse.Namespace,
    profile_dir: Path,
    workdir: Path,
) -> dict[str, Any]:
    """Run pweza once more under py-spy in the scenarios where it is behind (scenario -> the peers
    ahead of it); per scenario, the flame graphs kept and their summaries."""
    log(f"pweza is behind in {', '.join(lagging)}: profiling with py-spy")
    extra = ["--py-spy", str(py_spy), "--profile-dir", str(profile_dir)]
    result = run_system("pweza", python, list(lagging), args, {}, workdir, extra)
    profiles: dict[str, Any] = {}
    for scenario, peers in lagging.items():
        entry: dict[str, Any] = {"behind": peers, "files": {}, "summaries": {}}
        raws = sorted(profile_dir.glob(f"pweza-{scenario}*.txt"), key=lambda p: ("manager" not in p.stem, p.stem))
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
    return profiles
