"""docs/benchmarks.md from the figures, with the machine they were taken on; the notes between
its markers are kept from the previous file."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
from pathlib import Path
from typing import Any

from peers import common

from comparing.analysis import advantage, medians
from comparing.console import log
from comparing.descriptions import GUARANTEES, KILLED, STORES, WORKERS_TEXT
from comparing.methods import methods
from comparing.paths import PEERS, shown
from comparing.running import Results
from comparing.systems import METRICS, OURS, PERF, SCENARIOS_OF

NOTES_BEGIN = "<!-- notes:begin (kept by compare.py when it rewrites this file) -->"
NOTES_END = "<!-- notes:end -->"


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


def cell(
    data: dict[str, Any], values: dict[tuple[str, str, str], list[float]], system: str, scenario: str, metric: str
) -> str:
    got = values.get((system, scenario, metric))
    if got:
        return f"{fmt(statistics.median(got))} ({fmt(min(got))}-{fmt(max(got))})"
    if scenario not in [*SCENARIOS_OF.get(system, PERF), common.RECOVERY]:
        return "not in this scenario"
    if scenario not in data.get("scenarios", common.SCENARIOS):
        return "not run"
    return "**no figure** (see errors)"


def medians_tables(
    data: dict[str, Any],
    results: Results,
    values: dict[tuple[str, str, str], list[float]],
    systems: list[str],
    peers: list[str],
) -> list[str]:
    """One row per system (its figures, then its store), and one per peer with pweza's ratio to it."""
    # The labels name the default sizes; a quick run with other sizes says its own.
    labels = " | ".join(
        label.replace("10,000", f"{data['tasks']:,}").replace("1,000 steps", f"{data['fan']:,} steps")
        for _, _, label, _ in METRICS
    )
    out = [f"| | {labels} | store, as configured |"]
    out.append("|---" * (len(METRICS) + 2) + "|")
    for system in systems:
        name = f"{system} {results.versions.get(system, '')}".strip()
        cells = [cell(data, values, system, scenario, metric) for scenario, metric, _, _ in METRICS]
        out.append(f"| {name} | " + " | ".join(cells) + f" | {STORES.get(system, '')} |")
    if "pweza" not in systems or not peers:
        return out
    out += ["", "pweza's median against each peer's:", ""]
    out.append(f"| pweza vs | {labels} |")
    out.append("|---" * (len(METRICS) + 1) + "|")
    for peer in peers:
        ratios = []
        for scenario, metric, _, higher in METRICS:
            ours, theirs = values.get(("pweza", scenario, metric)), values.get((peer, scenario, metric))
            if ours and theirs:
                factor = advantage(statistics.median(ours), statistics.median(theirs), higher)
                ratios.append(f"{factor:.2f}x better" if factor >= 1 else f"**{1 / factor:.2f}x worse**")
            else:
                ratios.append("-")
        out.append(f"| {peer} | " + " | ".join(ratios) + " |")
    return out


def markdown(data: dict[str, Any], results: Results, previous_notes: str) -> str:
    systems: list[str] = data["systems"]
    values = medians(results)
    peers = [s for s in systems if s not in OURS]
    out = ["# Benchmarks: pweza, Celery, Ray, Prefect, DBOS, LangGraph and Temporal", ""]
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
    out += medians_tables(data, results, values, systems, peers)
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
    for system in systems:
        resumed = values.get((system, common.RECOVERY, "resumed"))
        took = values.get((system, common.RECOVERY, "kill_to_done_s"))
        twice = values.get((system, common.RECOVERY, "steps_repeated"))
        note = results.notes.get(system, {}).get("recovery", "")
        errors = [e["error"] for e in results.errors if e["system"] == system and e["scenario"] == common.RECOVERY]
        out.append(
            f"| {system} | {KILLED.get(system, '')} | {'yes' if resumed and min(resumed) == 1 else 'no'} | "
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
    out += methods(data, results)
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


def write_report(data: dict[str, Any], results: Results, out: Path, docs: Path, peers_python: Path, stamp: str) -> None:
    """The raw figures (bench-results/compare-<stamp>.json, and the same as
    docs/benchmarks-results.json), the chart (drawn with the peers' matplotlib) and benchmarks.md."""
    raw_path = out / f"compare-{stamp}.json"
    raw_path.write_text(json.dumps(data, indent=1) + "\n")
    docs.mkdir(parents=True, exist_ok=True)
    (docs / "benchmarks-results.json").write_text(json.dumps(data, indent=1) + "\n")
    chart = docs / "benchmarks.png"
    drawn = subprocess.run(
        [str(peers_python), str(PEERS / "plot.py"), str(raw_path), str(chart)], capture_output=True, text=True
    )
    if drawn.returncode != 0:
        log(f"chart failed: {drawn.stderr[-1000:]}")
    doc = docs / "benchmarks.md"
    doc.write_text(markdown(data, results, previous_notes(doc)))
    log(f"wrote {shown(raw_path)}, {shown(doc)}, {shown(chart)}")
