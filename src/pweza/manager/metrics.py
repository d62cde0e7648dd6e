"""The manager's Prometheus metrics, on a registry of its own so that managers in one
process (tests, the embedded platform) never collide."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


class AgentCount(Collector):
    """`pweza_agents{pool,state}`, counted from the sessions when scraped.

    Kept up to date on every connect instead, it cost a pass over all sessions per connect: a
    fleet of 10,000 agents reconnecting made 50 million label updates. Counted on a scrape, it
    costs one pass per scrape, and busy/idle are as they are then, not as at the last connect.
    """

    def __init__(self) -> None:
        # (pool, state) of each connected agent; the dispatcher sets it. Scrapes run on the
        # metrics server's thread: the source must hand over a snapshot (a list), not a view.
        self.source: Callable[[], Iterable[tuple[str, str]]] = list

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("pweza_agents", "Connected agents.", labels=["pool", "state"])
        for (pool, state), count in sorted(Tally(self.source()).items()):
            family.add_metric([pool, state], count)
        yield family


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.api_requests = Counter(
            "pweza_api_requests",
            "HTTP API requests handled.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.api_duration = Histogram(
            "pweza_api_request_duration_seconds",
            "HTTP API request duration.",
            ["method", "route"],
            registry=self.registry,
        )
        self.tasks = Counter(
            "pweza_tasks",
            "Tasks reaching a state.",
            ["pool", "state"],
            registry=self.registry,
        )
        self.task_duration = Histogram(
            "pweza_task_duration_seconds",
            "Time from a task's submission to its final state.",
            ["pool"],
            registry=self.registry,
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120, 600),
        )
        self.pending = Gauge(
            "pweza_pool_pending_tasks",
            "Tasks waiting for an agent.",
            ["pool"],
            registry=self.registry,
        )
        # Counted when scraped, from the dispatcher's sessions (see `AgentCount`).
        self.agents = AgentCount()
        self.registry.register(self.agents)
        # Agent-channel messages about an attempt the sending session does not hold. `message`:
        # result, started, heartbeat, in_flight (a hello's list); `reason`: stale (no such attempt
        # in flight, or an older one), not_holder (another agent, or another stream, holds it),
        # other_pool (the task is of a pool the agent does not serve). Bounded labels only; the
        # agent ids are in the WARNING log.
        self.agent_refusals = Counter(
            "pweza_agent_messages_refused",
            "Agent-channel messages refused because the session does not hold the attempt.",
            ["message", "reason"],
            registry=self.registry,
        )
        self.database_errors = Counter(
            "pweza_database_errors",
            "Store operations that failed.",
            registry=self.registry,
        )
        # The seed's HPA scales on the per-second rate of this counter
        # (agent_coordination_requests_per_second via prometheus-adapter).
        self.coordination = Counter(
            "agent_coordination_requests",
            "Agent-channel messages and task API calls handled.",
            registry=self.registry,
        )
        self.runs = Counter(
            "pweza_workflow_runs",
            "Workflow runs started and finished, by final state.",
            ["workflow", "state"],
            registry=self.registry,
        )
        self.steps = Counter(
            "pweza_workflow_steps",
            "Workflow steps finished, by state.",
            ["workflow", "state"],
            registry=self.registry,
        )
        # From the `agent` runtime's call journal: what each pool's model calls paid for (replays
        # count nothing). `model_config` is the ModelConfig that answered (the pool's modelRef or
        # one of its fallbacks: the journal names it); `type`: prompt or completion.
        self.model_tokens = Counter(
            "pweza_model_tokens",
            "Model tokens the agent runtime's calls used, as the endpoints reported them.",
            ["namespace", "pool", "model_config", "type"],
            registry=self.registry,
        )
        self.model_calls = Counter(
            "pweza_model_calls",
            "Model calls the agent runtime made (replays of recorded calls not counted).",
            ["namespace", "pool", "model_config"],
            registry=self.registry,
        )
        # In currency units, from the answering ModelConfig's price when the call was recorded;
        # calls to a model with no price add nothing.
        self.model_cost = Counter(
            "pweza_model_cost",
            "What the agent runtime's model calls cost, in units of the currency, at their ModelConfig's price.",
            ["namespace", "pool", "model_config", "currency"],
            registry=self.registry,
        )
        self.budget_refusals = Counter(
            "pweza_budget_refusals",
            "Model calls refused before they were made because a budget was used up; scope: run, pool or namespace.",
            ["namespace", "scope"],
            registry=self.registry,
        )
        # ModelConfigs' limits across agents and replicas (manager.model_slots): requests that
        # found no room in the time they could wait, so went to a fallback or failed.
        self.model_slot_refusals = Counter(
            "pweza_model_slot_refusals",
            "Model requests refused room within their ModelConfig's concurrency or rate limit after waiting.",
            ["namespace", "model_config"],
            registry=self.registry,
        )
        self.pruned = Counter(
            "pweza_pruned",
            "Finished runs and tasks deleted by retention.",
            registry=self.registry,
        )
