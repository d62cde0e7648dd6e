"""The manager's side of the call journal: an `agent` attempt's model and tool calls, stored,
and the token budgets they count against.

An agent sends each call record of an attempt it holds; the record is written to the store and
only then acknowledged, and the agent uses the call's answer only after that. A retried attempt
(after a failure, a lost agent, a manager restart) loads the records of its task's latest
earlier attempt that recorded any, and replays them instead of calling again. Nothing an agent
says is taken on trust: it must hold the attempt it writes for, and a record must have the
shape the runtime writes.

Budgets (a Workflow's per run, an AgentPool's per period) are summed from the stored records,
so they hold across agents, manager restarts and replicas sharing the database. Before each
model call the agent asks for a permit: refused once the budget is used up, or when the call's
maxTokens would go past what is left (the prompt is not known in advance: calls in flight at
once may together pass a budget by their own tokens). The tokens are what the agent reports of
the endpoint's answers: the manager never sees the model.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import orjson
import structlog

from pweza.domain.durations import parse_duration
from pweza.domain.errors import PwezaError
from pweza.domain.tasks import CallEntry, Task
from pweza.manager.clock import Clock
from pweza.manager.dispatching import Dispatcher
from pweza.manager.metrics import Metrics
from pweza.manager.registry import PoolPolicy, Registry
from pweza.manager.sessions import AgentSession
from pweza.store.protocol import Store

log = structlog.get_logger(__name__)
# More calls than any loop makes (max turns are at most a few hundred, each with a few tools).
MAX_CALLS_PER_ATTEMPT = 10_000
_KINDS = ("model", "tool")
MAX_TOKENS = 10**9  # of one call


class JournalRefused(Exception):
    """Why a journal request is refused: sent back to the agent as the reply's error."""

    error_type = ""


class BudgetExceeded(JournalRefused):
    """A budget is used up: the attempt fails, and is not retried."""

    error_type = "BudgetExceeded"


class CallJournal:
    def __init__(
        self, store: Store, dispatcher: Dispatcher, registry: Registry, metrics: Metrics, clock: Clock
    ) -> None:
        self._store = store
        self._dispatcher = dispatcher
        self._registry = registry
        self._metrics = metrics
        self._clock = clock

    async def append(self, session: AgentSession, task_id: str, attempt: int, record_json: bytes) -> None:
        """Store one call record of an attempt `session` holds; durable when this returns."""
        task = self._held_task(session, task_id, attempt)
        record = _read_record(record_json)
        paid = record["kind"] == "model" and not record.get("replayed", False)
        usage = record.get("usage") or {}
        prompt, completion = usage.get("promptTokens", 0), usage.get("completionTokens", 0)
        entry = CallEntry(
            task_id, attempt, record["index"], record["kind"], record, self._clock.time(),
            namespace=task.namespace, pool=task.pool, run_id=task.labels.get("run", "")[:64],
            tokens=prompt + completion if paid else 0,
        )  # fmt: skip
        await self._store.save_calls([entry])
        if paid:
            model = await self._model_config(task)
            self._metrics.model_calls.labels(task.namespace, task.pool, model).inc()
            self._metrics.model_tokens.labels(task.namespace, task.pool, model, "prompt").inc(prompt)
            self._metrics.model_tokens.labels(task.namespace, task.pool, model, "completion").inc(completion)

    async def permit(self, session: AgentSession, task_id: str, attempt: int, max_tokens: int) -> None:
        """Return if the attempt may call its model now; else BudgetExceeded naming the budget."""
        task = self._held_task(session, task_id, attempt)
        run_id = task.labels.get("run")
        if run_id:
            run = await self._store.get_run(run_id)
            limit = (run.spec.get("budget") or {}).get("tokens") if run is not None else None
            if limit is not None:
                used = await self._store.run_tokens(run_id)
                self._check(task, "run", f"run {run_id}'s budget (Workflow {run.workflow if run else '?'})",
                            int(limit), used, max_tokens)  # fmt: skip
        policy = await self._policy(task)
        if policy is not None and policy.budget is not None:
            period = parse_duration(policy.budget.period)
            used = await self._store.pool_tokens(task.namespace, task.pool, self._clock.time() - period)
            what = f"pool {task.namespace}/{task.pool}'s budget per {policy.budget.period}"
            self._check(task, "pool", what, policy.budget.tokens, used, max_tokens)

    def _check(self, task: Task, scope: str, what: str, limit: int, used: int, max_tokens: int) -> None:
        if used < limit and used + max_tokens <= limit:
            return
        self._metrics.budget_refusals.labels(task.namespace, scope).inc()
        more = f"; this call may use up to {max_tokens} more" if used < limit else ""
        log.info("model call refused: budget used", task_id=task.id, budget=what, limit=limit, used=used)
        raise BudgetExceeded(f"{what} is {limit} tokens: {used} used{more}")

    async def _policy(self, task: Task) -> PoolPolicy | None:
        try:
            return await self._registry.pool_policy(task.namespace, task.pool)
        except PwezaError:
            return None  # the pool was deleted while its task ran: no pool budget applies any more

    async def _model_config(self, task: Task) -> str:
        policy = await self._policy(task)
        return (policy.template.runtime.model_ref or "") if policy is not None else ""

    async def load(self, session: AgentSession, task_id: str, attempt: int) -> list[dict[str, Any]]:
        """The records to replay for `attempt`: those of the latest earlier attempt that has any."""
        self._held_task(session, task_id, attempt)
        by_attempt: dict[int, list[CallEntry]] = defaultdict(list)
        for entry in await self._store.list_calls([task_id]):
            if entry.attempt < attempt:
                by_attempt[entry.attempt].append(entry)
        if not by_attempt:
            return []
        latest = by_attempt[max(by_attempt)]
        return [entry.record for entry in sorted(latest, key=lambda entry: entry.position)]

    def _held_task(self, session: AgentSession, task_id: str, attempt: int) -> Task:
        held = self._dispatcher.holds(session, task_id, attempt, "journal")
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
    if not isinstance(record.get("replayed", False), bool):
        raise JournalRefused("replayed must be true or false")
    usage = record.get("usage")
    if usage is not None and not (
        isinstance(usage, dict)
        and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_TOKENS for v in usage.values())
    ):
        raise JournalRefused(f"usage must be an object of integers from 0 to {MAX_TOKENS}")
    return record
