"""Budgets on the real local model: a Workflow's per-run budget (in tokens, in money), an AgentPool's
and a namespace's per period stop the next model call before it is made (BudgetExceeded, not
retried), and the run view, the task's journal and the Prometheus counters agree with the tokens
the model reported, and with tokens times the ModelConfig's price."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from pweza.testing.local_model import LocalModel
from pweza.testing.platform import Platform
from tests.conftest import pool
from tests.llm.test_local_model import agent_template, model_config

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
MAX_TOKENS = 16
# Above one call's maxTokens, so the first call goes; below any prompt and reply together (the
# chat template alone is over ten tokens), so the second is refused.
BUDGET = MAX_TOKENS + 10


# Micro-units a token: 2 and 3 per million tokens. A cost budget of BUDGET completion tokens' price
# lets the first call go (its maxTokens at 3) and refuses the second (the prompt alone is more).
PRICING = {"currency": "USD", "promptPerMillionTokens": 2, "completionPerMillionTokens": 3}
COST_BUDGET = BUDGET * 3 / 1e6


def chatter(
    platform: Platform, local_model: LocalModel, pricing: dict[str, Any] | None = None, **pool_spec: Any
) -> None:
    template = agent_template("chatter", "local", systemPrompt="Answer in a few words.", maxTokens=MAX_TOKENS)
    template["spec"]["retry"] = {"limit": 2, "backoff": "100ms"}
    model = model_config("local", local_model.base_url, **({"pricing": pricing} if pricing else {}))
    platform.apply(model, template, pool("chat", "chatter", **pool_spec))
    platform.start_agent("chat")
    platform.wait_for_agents(1)


def wait_run(platform: Platform, run_id: str, timeout: float = 240.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    with platform.client() as http:
        while time.monotonic() < deadline:
            run: dict[str, Any] = http.get(f"/api/v1/runs/{run_id}").json()
            if run["state"] in ("succeeded", "failed", "cancelled", "timed_out"):
                return run
            time.sleep(0.2)
    raise TimeoutError(f"run {run_id} did not finish within {timeout}s")


def counters(platform: Platform, name: str) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{platform.metrics_port}/metrics", timeout=10).text
    return {labels: float(value) for labels, value in re.findall(rf"^{name}\{{(.*)\}} (\S+)$", text, re.MULTILINE)}


def test_a_run_budget_stops_the_next_model_call_and_every_view_agrees(
    platform: Platform, local_model: LocalModel
) -> None:
    chatter(platform, local_model)
    workflow = {
        "apiVersion": "pweza.ai/v1",
        "kind": "Workflow",
        "metadata": {"name": "two-answers"},
        "spec": {
            "budget": {"tokens": BUDGET},
            "steps": [
                {"name": "first", "agent": {"pool": "chat"}, "input": "Say hi."},
                {"name": "second", "depends": ["first"], "agent": {"pool": "chat"}, "input": "Say bye."},
            ],
        },
    }
    platform.apply(workflow)
    with platform.client() as http:
        started = http.post("/api/v1/workflows/two-answers/runs", json={"inputs": {}})
        assert started.status_code == 201, started.text
    run = wait_run(platform, started.json()["id"])
    assert run["state"] == "failed"
    first, second = run["steps"]
    assert first["state"] == "succeeded"
    assert second["state"] == "failed"
    assert second["error"]["type"] == "BudgetExceeded", second["error"]
    assert f"budget (Workflow two-answers) is {BUDGET} tokens" in second["error"]["message"]
    assert second["attempts"] == 1, "BudgetExceeded is not retried"
    assert "journal" not in second, "the refused call was never made, so never recorded"
    used = first["usage"]["promptTokens"] + first["usage"]["completionTokens"]
    assert used >= BUDGET - MAX_TOKENS
    assert run["usage"] == {"tokens": used, "budgetTokens": BUDGET}
    with platform.client() as http:
        task = http.get(f"/api/v1/tasks/{first['taskId']}").json()
    reported = task["journal"][0]["usage"]
    assert reported == {
        "promptTokens": first["usage"]["promptTokens"],
        "completionTokens": first["usage"]["completionTokens"],
    }
    tokens = counters(platform, "pweza_model_tokens_total")
    labels = 'model_config="local",namespace="default",pool="chat",type="{}"'
    assert tokens[labels.format("prompt")] == reported["promptTokens"]
    assert tokens[labels.format("completion")] == reported["completionTokens"]
    assert counters(platform, "pweza_budget_refusals_total") == {'namespace="default",scope="run"': 1.0}


def test_a_pool_budget_refuses_calls_once_its_period_used_it(platform: Platform, local_model: LocalModel) -> None:
    chatter(platform, local_model, budget={"tokens": BUDGET, "period": "1h"})
    with platform.client() as http:
        ids = [
            http.post("/api/v1/tasks", json={"pool": "chat", "input": text}).json()["id"] for text in ("Hi.", "Bye.")
        ]
    done = sorted((platform.wait_task(task_id, timeout=200) for task_id in ids), key=lambda t: t["state"])
    failed, succeeded = done  # one agent of concurrency 1: one after the other, whichever first
    assert succeeded["state"] == "succeeded", succeeded.get("error")
    assert failed["state"] == "failed"
    assert failed["error"]["type"] == "BudgetExceeded"
    assert "pool default/chat's budget per 1h" in failed["error"]["message"]
    assert counters(platform, "pweza_budget_refusals_total") == {'namespace="default",scope="pool"': 1.0}


def priced(usage: dict[str, int]) -> float:
    """What PRICING makes of a call's tokens, in dollars."""
    return (usage["promptTokens"] * 2 + usage["completionTokens"] * 3) / 1e6


def two_step_workflow(budget: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "pweza.ai/v1",
        "kind": "Workflow",
        "metadata": {"name": "two-answers"},
        "spec": {
            "budget": budget,
            "steps": [
                {"name": "first", "agent": {"pool": "chat"}, "input": "Say hi."},
                {"name": "second", "depends": ["first"], "agent": {"pool": "chat"}, "input": "Say bye."},
            ],
        },
    }


def test_a_run_cost_budget_stops_the_next_call_and_the_cost_is_tokens_times_the_price(
    platform: Platform, local_model: LocalModel
) -> None:
    chatter(platform, local_model, pricing=PRICING)
    platform.apply(two_step_workflow({"cost": COST_BUDGET}))
    with platform.client() as http:
        started = http.post("/api/v1/workflows/two-answers/runs", json={"inputs": {}})
        assert started.status_code == 201, started.text
    run = wait_run(platform, started.json()["id"])
    first, second = run["steps"]
    assert first["state"] == "succeeded"
    assert second["state"] == "failed" and second["attempts"] == 1
    assert second["error"]["type"] == "BudgetExceeded", second["error"]
    assert "budget (Workflow two-answers) is 0.000078 USD: " in second["error"]["message"]
    cost = priced(first["usage"])
    assert first["usage"]["cost"] == cost and first["usage"]["currency"] == "USD"
    assert run["usage"] == {
        "tokens": first["usage"]["promptTokens"] + first["usage"]["completionTokens"],
        "cost": cost,
        "currency": "USD",
        "budgetTokens": None,
        "budgetCost": COST_BUDGET,
    }
    with platform.client() as http:
        (call,) = http.get(f"/api/v1/tasks/{first['taskId']}").json()["journal"]
    assert (call["cost"], call["currency"], call["endpoint"]) == (cost, "USD", "local")
    costs = counters(platform, "pweza_model_cost_total")
    labels = 'currency="USD",model_config="local",namespace="default",pool="chat"'
    assert costs == {labels: pytest.approx(cost, abs=1e-12)}
    assert counters(platform, "pweza_budget_refusals_total") == {'namespace="default",scope="run"': 1.0}


def test_a_namespace_budget_from_the_manager_settings_refuses_the_next_call(
    tmp_path: Path, local_model: LocalModel
) -> None:
    (tmp_path / "config.yaml").write_text(f"budgets:\n  namespaces:\n    default: {{cost: {COST_BUDGET}}}\n")
    platform = Platform(tmp_path)
    platform.start_manager()
    try:
        chatter(platform, local_model, pricing=PRICING)
        with platform.client() as http:
            ids = [
                http.post("/api/v1/tasks", json={"pool": "chat", "input": text}).json()["id"]
                for text in ("Hi.", "Bye.")
            ]
        done = sorted((platform.wait_task(task_id, timeout=200) for task_id in ids), key=lambda t: t["state"])
        failed, succeeded = done
        assert succeeded["state"] == "succeeded", succeeded.get("error")
        assert failed["state"] == "failed" and failed["error"]["type"] == "BudgetExceeded"
        assert "namespace default's budget per 24h is 0.000078 USD" in failed["error"]["message"]
        with platform.client() as http:
            paid = http.get(f"/api/v1/tasks/{succeeded['id']}").json()["usage"]
            usage = http.get("/api/v1/namespaces/default/usage").json()
        assert usage == {
            "namespace": "default",
            "period": "24h",
            "tokens": paid["promptTokens"] + paid["completionTokens"],
            "cost": priced(paid),
            "currency": "USD",
            "budgetTokens": None,
            "budgetCost": COST_BUDGET,
        }
        assert counters(platform, "pweza_budget_refusals_total") == {'namespace="default",scope="namespace"': 1.0}
    finally:
        platform.stop()
