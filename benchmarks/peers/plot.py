"""Chart of a compare.py result file (run with the peers' virtualenv, which has matplotlib).

python benchmarks/peers/plot.py RESULTS.json OUT.png
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

PANELS = [
    ("noop-tasks", "tasks_per_s", "10,000 no-op tasks\nthroughput (tasks/s, higher is better)"),
    ("noop-tasks", "latency_p50_ms", "submit-to-start p50 (ms)"),
    ("noop-tasks", "latency_p99_ms", "submit-to-start p99 (ms)"),
    ("chain-noop", "per_step_ms", "40-step chain, no-op steps\nper step (ms)"),
    ("chain-10ms", "per_step_overhead_ms", "40-step chain, 10 ms steps\noverhead per step (ms)"),
    ("fan-out", "wall_s", "fan-out 1,000 + gather\nwall time (s)"),
    ("recovery", "kill_to_done_s", "coordinator killed mid-chain\nkill to result (s)"),
]
# By family: a peer's variants (dbos-sqlite-queue, temporal-shipped) share its colour.
COLOURS = {
    "pweza": "#1b7837", "celery": "#762a83", "ray": "#2166ac", "prefect": "#d6604d",
    "dbos": "#b8860b", "langgraph": "#4d4d4d", "temporal": "#35978f",
}  # fmt: skip


def main() -> None:
    source, target = Path(sys.argv[1]), Path(sys.argv[2])
    data: dict[str, Any] = json.loads(source.read_text())
    systems: list[str] = data["systems"]
    values: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for row in data["figures"]:
        values[(row["system"], row["scenario"], row["metric"])].append(float(row["value"]))
    figure, axes = plt.subplots(2, 4, figsize=(16, 7.5 if sum(len(s) for s in systems) <= 32 else 10))
    for ax, (scenario, metric, title) in zip(axes.flat, PANELS, strict=False):
        shown = [s for s in systems if values.get((s, scenario, metric))]
        medians = [statistics.median(values[(s, scenario, metric)]) for s in shown]
        labels = shown
        if scenario == "recovery":  # say which finished by re-running rather than resuming
            labels = [
                s if min(values.get((s, scenario, "resumed"), [1])) else f"{s}\n(not resumed:\nre-run)" for s in shown
            ]
        ax.bar(labels, medians, color=[COLOURS.get(s.split("-")[0], "grey") for s in shown], alpha=0.75)
        if medians and min(medians) > 0 and max(medians) / min(medians) > 10:
            ax.set_yscale("log")
            title += " - log scale"
        for x, system in enumerate(shown):
            points = values[(system, scenario, metric)]
            ax.scatter([x] * len(points), points, color="black", s=10, zorder=3)
            text = f"{medians[x]:,.0f}" if medians[x] >= 100 else f"{medians[x]:.3g}"
            ax.annotate(text, (x, medians[x]), ha="center", va="bottom", fontsize=8)
        missing = [s for s in systems if s not in shown]
        if missing:
            ax.text(0.5, 0.97, "no figure: " + ", ".join(missing), transform=ax.transAxes, ha="center", va="top",
                    fontsize=7, color="grey")  # fmt: skip
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=8)
        if sum(len(s) for s in shown) > 32:  # the durable peers' variants: long names side by side
            plt.setp(ax.get_xticklabels(), rotation=60, ha="right", rotation_mode="anchor", fontsize=7)
    axes.flat[-1].axis("off")
    machine = data["machine"]
    axes.flat[-1].text(
        0,
        0.5,
        f"bars: median of {data['repetitions']} runs; dots: each run\n"
        f"{machine['cpus']} CPUs ({machine['cpu_model']}), {machine['memory_gib']} GiB\n"
        f"load average at start {machine['load_start']}, at end {machine.get('load_end', '?')}\n"
        f"{data['started_at']}",
        fontsize=8,
        va="center",
    )
    figure.suptitle("pweza and its peers on one machine, one run: " + data["command"], fontsize=10)
    figure.tight_layout()
    figure.savefig(target, dpi=110)


if __name__ == "__main__":
    main()
