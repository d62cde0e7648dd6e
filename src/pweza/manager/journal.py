"""The manager's side of the call journal: an `agent` attempt's model and tool calls, stored
with what they cost, and the budgets they count against (`pweza.manager.budgets`).

An agent sends each call record of an attempt it holds; the record is written to the store and
only then acknowledged, and the agent uses the call's answer only after that. A retried attempt
(after a failure, a lost agent, a manager restart) loads the records of its task's latest
earlier attempt that recorded any, and replays them instead of calling again. Nothing an agent
says is taken on trust: it must hold the attempt it writes for, and a record must have the
shape the runtime writes.

A model call's cost is computed when it is recorded, from the price of the ModelConfig that
answered, and stored with it: a later price does not rewrite what was paid. Budgets (a
Workflow's per run, an AgentPool's and a namespace's per period) are summed from the stored
records; before each model call the agent asks for a permit (the prompt is not known in
advance: calls in flight at once may together pass a budget by their own tokens). The tokens
are what the agent reports of the endpoint's answers: the manager never sees the model.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import orjson
import structlog

from pweza.domain.manifests import PoolBudget
from pweza.domain.model_configs import Pricing
from pweza.domain.pricing import call_cost, units
from pweza.domain.tasks import APPROVAL_KIND, CallEntry, Task
from pweza.manager.budgets import BudgetExceeded, Budgets, JournalRefused
from pweza.manager.clock import Clock
from pweza.manager.dispatching import Dispatcher
from pweza.manager.metrics import Metrics
from pweza.manager.registry import Registry
from pweza.manager.sessions import AgentSession
from pweza.store.protocol import Store

log = structlog.get_logger(__name__)
# More calls than any loop makes (max turns are at most a few hundred, each with a few tools).
MAX_CALLS_PER_ATTEMPT = 10_000
_KINDS = ("model", "tool")
MAX_TOKENS = 10**9  # of one call


class CallJournal:
    def __init__(
        self,
        store: Store,
        dispatcher: Dispatcher,
        registry: Registry,
        metrics: Metrics,
        clock: Clock,
        namespace_budgets: Mapping[str, PoolBudget] | None = None,
    ) -> None:
        self._store = store
        self._dispatcher = dispatcher
        self._metrics = metrics
        self._clock = clock
        self.budgets = Budgets(store, registry, metrics, clock, namespace_budgets or {})

    async def append(self, session: AgentSession, task_id: str, attempt: int, record_json: bytes) -> None:
        """Store one call record of an attempt `session` holds; durable when this returns."""
        task = self.held_task(session, task_id, attempt)
        record = _read_record(record_json)
        paid = record["kind"] == "model" and not record.get("replayed", False)
        usage = record.get("usage") or {}
        prompt, completion = usage.get("promptTokens", 0), usage.get("completionTokens", 0)
        model, pricing = await self._answered_by(task, record) if paid else ("", None)
        cost = None if pricing is None else call_cost(
            pricing.prompt_per_million_tokens, pricing.completion_per_million_tokens, prompt, completion
        )  # fmt: skip
        entry = CallEntry(
            task_id, attempt, record["index"], record["kind"], record, self._clock.time(),
            namespace=task.namespace, pool=task.pool, run_id=task.labels.get("run", "")[:64],
            tokens=prompt + completion if paid else 0,
            cost_micros=cost, currency=None if pricing is None else pricing.currency,
        )  # fmt: skip
        await self._store.save_calls([entry])
        if paid:
            self._metrics.model_calls.labels(task.namespace, task.pool, model).inc()
            self._metrics.model_tokens.labels(task.namespace, task.pool, model, "prompt").inc(prompt)
            self._metrics.model_tokens.labels(task.namespace, task.pool, model, "completion").inc(completion)
            if pricing is not None and cost is not None:
                self._metrics.model_cost.labels(task.namespace, task.pool, model, pricing.currency).inc(units(cost))

    async def _answered_by(self, task: Task, record: dict[str, Any]) -> tuple[str, Pricing | None]:
        """The ModelConfig that answered a model call, and its price now (kept with the call).

        The record names it (`response.endpoint`); one that is not among the pool's model and its
        fallbacks counts as the model itself, so the metrics' label sets stay the pool's models."""
        chain = await self.budgets.prices(task.namespace, await self.budgets.policy(task))
        endpoint = (record.get("response") or {}).get("endpoint")
        for name, pricing in chain:
            if name == endpoint:
                return name, pricing
        return chain[0] if chain else ("", None)

    async def permit(self, session: AgentSession, task_id: str, attempt: int, max_tokens: int) -> None:
        """Return if the attempt may call its model now; else BudgetExceeded naming the budget."""
        await self.budgets.permit(self.held_task(session, task_id, attempt), max_tokens)

    async def load(self, session: AgentSession, task_id: str, attempt: int) -> list[dict[str, Any]]:
        """The records to replay for `attempt`: those of the latest earlier attempt that has any."""
        self.held_task(session, task_id, attempt)
        by_attempt: dict[int, list[CallEntry]] = defaultdict(list)
        for entry in await self._store.list_calls([task_id]):
            if 0 < entry.attempt < attempt and entry.kind != APPROVAL_KIND:  # approvals are the task's
                by_attempt[entry.attempt].append(entry)
        if not by_attempt:
            return []
        latest = by_attempt[max(by_attempt)]
        return [entry.record for entry in sorted(latest, key=lambda entry: entry.position)]

    def held_task(self, session: AgentSession, task_id: str, attempt: int, message: str = "journal") -> Task:
        """The task if `session` runs `attempt` of it now; else JournalRefused (counted under `message`)."""
        held = self._dispatcher.holds(session, task_id, attempt, message)
        task = self._dispatcher.live(task_id) if held else None
        if task is None:
            raise JournalRefused(f"attempt {attempt} of task {task_id} is not running on this agent")
        return task


def _read_record(record_json: bytes) -> dict[str, Any]:
    """The record if it has the shape the `agent` runtime writes, else JournalRefused saying what is wrong."""
    try:
        record = orjson.loads(record_json)
    except orjson.JSONDecodeError as error:
        raise JournalRefused(f"the record is not JSON: {error}") from None
    if not isinstance(record, dict):
        raise JournalRefused("the record must be a JSON object")
    index = record.get("index")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < MAX_CALLS_PER_ATTEMPT:
        raise JournalRefused(f"index must be an integer from 0 to {MAX_CALLS_PER_ATTEMPT - 1}")
    if record.get("kind") not in _KINDS:
        raise JournalRefused(f"kind must be one of {', '.join(_KINDS)}")
    key = record.get("requestDigest")
    if not isinstance(key, str) or not 1 <= len(key) <= 128:
        raise JournalRefused("requestDigest must be a string of 1 to 128 characters")
    if not isinstance(record.get("response"), dict):
        raise JournalRefused("response must be a JSON object")
    if not isinstance(record.get("replayed", False), bool):
        raise JournalRefused("replayed must be true or false")
    usage = record.get("usage")
    if usage is not None and not (
        isinstance(usage, dict)
        and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_TOKENS for v in usage.values())
    ):
        raise JournalRefused(f"usage must be an object of integers from 0 to {MAX_TOKENS}")
    return record


__all__ = ["MAX_CALLS_PER_ATTEMPT", "BudgetExceeded", "CallJournal", "JournalRefused"]
