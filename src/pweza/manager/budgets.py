"""Budgets: whether a model call may be made, from what the stored journal says was spent.

Three scopes, each limiting tokens, cost or both: a run (its Workflow's `spec.budget`), a pool
per period (its `spec.budget`) and a namespace per period (the manager's `budgets.namespaces`,
set by whoever runs the platform; `"*"` gives every namespace not named a budget of its own).
Sums come from the store, so they hold across agents, manager restarts and replicas.

A call is refused once a budget is used up, or when its maxTokens would go past what is left:
as tokens, and as cost at the highest completion price among the pool's model and its
fallbacks (any of them may answer). A cost budget counts only calls whose price is known, so
it refuses every call that could reach a model with no price in its currency, saying which:
a budget in money that some calls escape would not be one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import structlog

from pweza.domain.durations import parse_duration
from pweza.domain.errors import PwezaError
from pweza.domain.manifests import PoolBudget, RunBudget
from pweza.domain.model_configs import Pricing
from pweza.domain.pricing import Spent, call_cost, micros, spelled
from pweza.domain.tasks import Task
from pweza.manager.clock import Clock
from pweza.manager.metrics import Metrics
from pweza.manager.registry import PoolPolicy, Registry
from pweza.store.protocol import Store

log = structlog.get_logger(__name__)
ANY_NAMESPACE = "*"
DEFAULT_PERIOD = "24h"


class JournalRefused(Exception):
    """Why a journal request is refused: sent back to the agent as the reply's error."""

    error_type = ""


class BudgetExceeded(JournalRefused):
    """A budget is used up: the attempt fails, and is not retried."""

    error_type = "BudgetExceeded"


@dataclass(frozen=True, slots=True)
class _Scope:
    name: str  # the metric's scope label: run, pool or namespace
    what: str  # how a refusal names the budget
    budget: RunBudget
    spent: Callable[[], Awaitable[Spent]]


class Budgets:
    def __init__(
        self, store: Store, registry: Registry, metrics: Metrics, clock: Clock, namespaces: Mapping[str, PoolBudget]
    ) -> None:
        self._store = store
        self._registry = registry
        self._metrics = metrics
        self._clock = clock
        self._namespaces = dict(namespaces)

    def namespace_budget(self, namespace: str) -> PoolBudget | None:
        return self._namespaces.get(namespace) or self._namespaces.get(ANY_NAMESPACE)

    async def namespace_spent(self, namespace: str, period: str) -> Spent:
        return await self._store.namespace_spent(namespace, self._clock.time() - parse_duration(period))

    async def namespace_usage(self, namespace: str) -> tuple[PoolBudget | None, str, Spent]:
        """A namespace's budget, the period summed (its own, else 24h) and what was spent in it."""
        budget = self.namespace_budget(namespace)
        period = budget.period if budget is not None else DEFAULT_PERIOD
        return budget, period, await self.namespace_spent(namespace, period)

    async def permit(self, task: Task, max_tokens: int) -> None:
        """Return if `task` may call its model now; else BudgetExceeded naming the budget."""
        policy = await self.policy(task)
        prices: list[tuple[str, Pricing | None]] | None = None
        for scope in await self._scopes(task, policy):
            spent = await scope.spent()
            if scope.budget.tokens is not None:
                self._check_tokens(task, scope, spent, max_tokens)
            if scope.budget.cost is not None:
                if prices is None:
                    prices = await self.prices(task.namespace, policy)
                self._check_cost(task, scope, spent, prices, max_tokens)

    async def _scopes(self, task: Task, policy: PoolPolicy | None) -> list[_Scope]:
        scopes: list[_Scope] = []
        run_id = task.labels.get("run")
        run = await self._store.get_run(run_id) if run_id else None
        if run_id and run is not None and run.spec.get("budget"):
            what = f"run {run_id}'s budget (Workflow {run.workflow})"
            budget = RunBudget.model_validate(run.spec["budget"])
            scopes.append(_Scope("run", what, budget, lambda: self._store.run_spent(run_id)))
        if policy is not None and policy.budget is not None:
            pool_budget = policy.budget
            since = self._clock.time() - parse_duration(pool_budget.period)
            what = f"pool {task.namespace}/{task.pool}'s budget per {pool_budget.period}"
            spent = lambda: self._store.pool_spent(task.namespace, task.pool, since)  # noqa: E731
            scopes.append(_Scope("pool", what, pool_budget, spent))
        namespace_budget = self.namespace_budget(task.namespace)
        if namespace_budget is not None:
            what = f"namespace {task.namespace}'s budget per {namespace_budget.period}"
            period = namespace_budget.period
            spent = lambda: self.namespace_spent(task.namespace, period)  # noqa: E731
            scopes.append(_Scope("namespace", what, namespace_budget, spent))
        return scopes

    def _check_tokens(self, task: Task, scope: _Scope, spent: Spent, max_tokens: int) -> None:
        limit, used = scope.budget.tokens or 0, spent.tokens
        if used < limit and used + max_tokens <= limit:
            return
        more = f"; this call may use up to {max_tokens} more" if used < limit else ""
        self._refuse(task, scope, f"{scope.what} is {limit} tokens: {used} used{more}")

    def _check_cost(
        self, task: Task, scope: _Scope, spent: Spent, prices: list[tuple[str, Pricing | None]], max_tokens: int
    ) -> None:
        currency = scope.budget.currency
        limit, used = micros(scope.budget.cost or 0), spent.cost(currency)
        budget = f"{scope.what} is {spelled(limit, currency)}"
        unpriced = [name for name, pricing in prices if pricing is None or pricing.currency != currency]
        if unpriced or not prices:
            models = ", ".join(unpriced) or "?"
            self._refuse(task, scope, f"{budget}, and ModelConfig {models} has no price in {currency} "
                                      "(spec.pricing): a call to it could not be counted")  # fmt: skip
        worst = max(call_cost(0, p.completion_per_million_tokens, 0, max_tokens) for _, p in prices if p is not None)
        if used < limit and used + worst <= limit:
            return
        more = f"; this call may cost up to {spelled(worst, currency)} more" if used < limit else ""
        self._refuse(task, scope, f"{budget}: {spelled(used, currency)} used{more}")

    def _refuse(self, task: Task, scope: _Scope, message: str) -> None:
        self._metrics.budget_refusals.labels(task.namespace, scope.name).inc()
        log.info("model call refused: budget used", task_id=task.id, scope=scope.name, reason=message)
        raise BudgetExceeded(message)

    async def policy(self, task: Task) -> PoolPolicy | None:
        try:
            return await self._registry.pool_policy(task.namespace, task.pool)
        except PwezaError:
            return None  # the pool was deleted while its task ran: no pool budget applies any more

    async def prices(self, namespace: str, policy: PoolPolicy | None) -> list[tuple[str, Pricing | None]]:
        """The models a call of the pool's may reach (its modelRef, then the fallbacks) and their prices."""
        ref = policy.template.runtime.model_ref if policy is not None else None
        primary = await self._registry.find("ModelConfig", namespace, ref) if ref else None
        if ref is None or primary is None:
            return []
        found = [(ref, _pricing(primary.body))]
        for name in primary.body["spec"].get("fallbacks") or []:
            stored = await self._registry.find("ModelConfig", namespace, name)
            if stored is not None:  # a missing fallback is not sent to the agent, so never called
                found.append((name, _pricing(stored.body)))
        return found

    async def price(self, namespace: str, name: str) -> Pricing | None:
        stored = await self._registry.find("ModelConfig", namespace, name)
        return None if stored is None else _pricing(stored.body)


def _pricing(body: Mapping[str, object]) -> Pricing | None:
    spec = body.get("spec")
    pricing = spec.get("pricing") if isinstance(spec, dict) else None
    return Pricing.model_validate(pricing) if pricing else None
