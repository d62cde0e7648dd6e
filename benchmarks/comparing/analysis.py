"""Medians of the repetitions, and the scenarios where a peer beats pweza."""

from __future__ import annotations

import statistics
from collections import defaultdict

from comparing.running import Results
from comparing.systems import METRICS, OURS


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
            if peer in OURS or not theirs:
                continue
            if (
                advantage(statistics.median(ours), statistics.median(theirs), higher) < 1
                and peer not in found[scenario]
            ):
                found[scenario].append(peer)
    return dict(found)
