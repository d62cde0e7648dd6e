"""The operator's own Prometheus metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

registry = CollectorRegistry()
reconciles = Counter(
    "pweza_operator_reconciles", "Reconciliations, by kind and result.", ["kind", "result"], registry=registry
)
reconcile_errors = Counter(
    "pweza_operator_reconcile_errors",
    "Reconciliations that failed, by kind and reason.",
    ["kind", "reason"],
    registry=registry,
)
reconcile_duration = Histogram(
    "pweza_operator_reconcile_duration_seconds", "Time to reconcile one object.", ["kind"], registry=registry
)
leader = Gauge("pweza_operator_leader", "1 while this replica holds the leader lease.", registry=registry)
