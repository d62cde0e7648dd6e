"""Prices and budgets in money: the arithmetic (exact decimals, integer micro-units, rounded up),
what is refused naming the field, and the permit's rules for cost and namespace budgets."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from pweza.domain.errors import InvalidInput
from pweza.domain.kinds import parse_manifest
from pweza.domain.manifests import PoolBudget
from pweza.domain.pricing import Spent, call_cost, micros, spelled
from pweza.domain.tasks import CallEntry, Task
from pweza.manager.budgets import BudgetExceeded, Budgets
from pweza.manager.clock import SystemClock
from pweza.manager.config import load_settings
from pweza.manager.service import Manager
from tests.unit.test_model_configs import ADMIN, agent_template, model_config

PRICED = {"promptPerMillionTokens": 0.15, "completionPerMillionTokens": 0.6}


def test_a_price_per_million_tokens_is_a_price_in_micro_units_per_token() -> None:
    assert call_cost(0.15, 0.6, 1000, 500) == 150 + 300
    assert call_cost(0, 0, 10**6, 10**6) == 0
    assert call_cost(2.5, 10, 10**6, 10**6) == 12_500_000  # 12.5 units


def test_a_call_cost_is_exact_in_decimals_and_rounded_up_to_the_micro_unit() -> None:
    assert 0.07 * 100 > 7, "in binary floating point"
    assert call_cost(0.07, 0, 100, 0) == 7, "0.07 is read as 7/100"
    assert call_cost(0.15, 0, 1, 0) == 1, "0.15 of a micro-unit is paid as one"
    assert micros(5.0) == 5_000_000 and micros(0.000001) == 1 and micros(0.1) == 100_000


def test_amounts_are_spelled_with_as_few_places_as_they_need() -> None:
    assert spelled(1500, "USD") == "0.0015 USD"
    assert spelled(5_000_000, "EUR") == "5 EUR"
    assert Spent(10, {"USD": 3}).currency == "USD" and Spent(10, {"USD": 3, "EUR": 1}).currency is None


def workflow(budget: Any) -> dict[str, Any]:
    spec = {"budget": budget, "steps": [{"name": "a", "agent": {"pool": "p"}}]}
    return {"apiVersion": "pweza.ai/v1", "kind": "Workflow", "metadata": {"name": "w"}, "spec": spec}


def pool(budget: Any) -> dict[str, Any]:
    spec = {"templateRef": "thinker", "budget": budget}
    return {"apiVersion": "pweza.ai/v1", "kind": "AgentPool", "metadata": {"name": "p"}, "spec": spec}


@pytest.mark.parametrize(
    ("document", "field", "words"),
    [
        (model_config(pricing={**PRICED, "currency": "usd"}), "spec.pricing.currency", "pattern '^[A-Z]{3}$'"),
        (model_config(pricing={**PRICED, "currency": "EURO"}), "spec.pricing.currency", "pattern"),
        (model_config(pricing={**PRICED, "promptPerMillionTokens": -1}), "spec.pricing.promptPerMillionTokens",
         "greater than or equal to 0"),
        (model_config(pricing={**PRICED, "completionPerMillionTokens": 2e6}),
         "spec.pricing.completionPerMillionTokens", "less than or equal to 1000000"),
        (model_config(pricing={**PRICED, "promptPerMillionTokens": 0.0000001}), "spec.pricing.promptPerMillionTokens",
         "more than 6 decimal places"),
        (model_config(pricing={"promptPerMillionTokens": 1}), "spec.pricing.completionPerMillionTokens", "required"),
        (workflow({}), "spec.budget", "give tokens, cost or both"),
        (workflow({"cost": 0}), "spec.budget.cost", "greater than 0"),
        (workflow({"cost": 1e10}), "spec.budget.cost", "less than or equal to 1000000000"),
        (workflow({"cost": 1.5, "currency": "dollars"}), "spec.budget.currency", "pattern"),
        (pool({"period": "1h"}), "spec.budget", "give tokens, cost or both"),
        (pool({"cost": 0.1234567}), "spec.budget.cost", "more than 6 decimal places"),
    ],
)  # fmt: skip
def test_a_wrong_price_or_budget_is_refused_naming_its_field(document: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_manifest(document)
    assert caught.value.field == field and words in caught.value.detail, (caught.value.field, caught.value.detail)


def test_a_namespace_budget_in_the_settings_is_refused_naming_where(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("budgets:\n  namespaces:\n    team-a: {period: 1h}\n")
    with pytest.raises(InvalidInput) as caught:
        load_settings(path, environ={})
    assert "budgets.namespaces.team-a" in str(caught.value) and "give tokens, cost or both" in str(caught.value)
    path.write_text("budgets:\n  namespaces:\n    Team_A: {tokens: 5}\n")
    with pytest.raises(InvalidInput) as caught:
        load_settings(path, environ={})
    assert "Team_A" in str(caught.value)


async def priced_pool(manager: Manager, *, fallback_pricing: dict[str, Any] | None = None) -> None:
    spare = model_config("spare") if fallback_pricing is None else model_config("spare", pricing=fallback_pricing)
    for document in (
        model_config("main", fallbacks=["spare"], pricing=PRICED),
        spare,
        agent_template(modelRef="main"),
        {
            "apiVersion": "pweza.ai/v1",
            "kind": "AgentPool",
            "metadata": {"name": "p"},
            "spec": {"templateRef": "thinker"},
        },
    ):
        await manager.apply_object(ADMIN, parse_manifest(document))


def budgets(manager: Manager, **namespaces: PoolBudget) -> Budgets:
    return Budgets(manager.store, manager.registry, manager.metrics, SystemClock(), namespaces)


def paid(position: int, tokens: int, cost: int | None, namespace: str = "default") -> CallEntry:
    record = {"index": position, "kind": "model", "requestDigest": "d", "response": {}}
    currency = None if cost is None else "USD"
    return CallEntry("t-0", 1, position, "model", record, time.time(), namespace, "p", "", tokens, cost, currency)


TASK = Task("t-1", "default", "p", "hi")


async def test_a_namespace_cost_budget_refuses_a_call_whose_max_tokens_would_pass_it(manager: Manager) -> None:
    await priced_pool(manager, fallback_pricing={**PRICED, "completionPerMillionTokens": 1.2})
    limits = budgets(manager, default=PoolBudget(cost=0.001))  # 1000 micro-units
    await manager.store.save_calls([paid(0, 1000, 600)])
    await limits.permit(TASK, 300)  # the spare's 1.2 per million: 360 more, 960 in all
    with pytest.raises(BudgetExceeded) as refused:
        await limits.permit(TASK, 400)  # 480 more at the spare's price, though 240 at main's
    assert str(refused.value) == (
        "namespace default's budget per 24h is 0.001 USD: 0.0006 USD used; this call may cost up to 0.00048 USD more"
    )
    await limits.permit(Task("t-2", "other", "p", "hi"), 400)  # another namespace: not this budget


async def test_a_star_budget_gives_each_namespace_its_own_and_tokens_count_too(manager: Manager) -> None:
    await priced_pool(manager, fallback_pricing=PRICED)
    limits = budgets(manager, **{"*": PoolBudget(tokens=1000)})
    await manager.store.save_calls([paid(0, 990, None), paid(1, 5, None, namespace="other")])
    with pytest.raises(BudgetExceeded, match="namespace default's budget per 24h is 1000 tokens: 990 used"):
        await limits.permit(TASK, 16)
    await limits.permit(Task("t-2", "other", "p", "hi"), 16)


async def test_a_cost_budget_refuses_calls_that_may_reach_a_model_with_no_price(manager: Manager) -> None:
    await priced_pool(manager)  # the fallback `spare` has no pricing
    limits = budgets(manager, default=PoolBudget(cost=5))
    with pytest.raises(BudgetExceeded) as refused:
        await limits.permit(TASK, 16)
    assert "ModelConfig spare has no price in USD (spec.pricing)" in str(refused.value)
    euros = budgets(manager, default=PoolBudget(cost=5, currency="EUR"))
    with pytest.raises(BudgetExceeded, match="ModelConfig main, spare has no price in EUR"):
        await euros.permit(TASK, 16)
    await budgets(manager, default=PoolBudget(tokens=100)).permit(TASK, 16)  # a token budget needs no price
