"""A ModelConfig's concurrency and rate limits hold across agents on different manager replicas.

Two manager replicas on one PostgreSQL database, one `agent` runtime agent on each, both
calling one model. The model is a stand-in provider (tests/model_providers.py, a real HTTP
server on loopback) because what is measured is what reaches it: how many chats it answers at
once and how many it gets in all, which a real model server would only hide by queueing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from pweza.testing.cluster import Cluster, running_cluster
from tests.conftest import pool
from tests.model_providers import Reply, StandInProvider, provider

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

REPLY_SECONDS = 0.3


def streamed_answer(_number: int, body: dict[str, Any]) -> Reply:
    """A short answer, streamed as the agent runtime asks for under a manager, after a pause."""
    events: list[Any] = [
        {"model": "stand-in", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "ok"}}]},
        {"model": "stand-in", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {"model": "stand-in", "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 1}},
    ]
    assert body.get("stream") is True
    return Reply(stream=events, delay=REPLY_SECONDS)


@pytest.fixture
def cluster(postgres_database: str) -> Iterator[Cluster]:
    with running_cluster(postgres_database, replicas=2) as instance:
        yield instance


def model_config(name: str, base_url: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "pweza.ai/v1",
        "kind": "ModelConfig",
        "metadata": {"name": name},
        "spec": {"baseUrl": base_url, "model": "stand-in", "timeout": "30s", **spec},
    }


def start_agents_on_both_replicas(cluster: Cluster, model_ref: str) -> None:
    template = {
        "apiVersion": "pweza.ai/v1",
        "kind": "AgentTemplate",
        "metadata": {"name": "caller"},
        "spec": {
            "runtime": {"kind": "agent", "modelRef": model_ref, "maxTokens": 8},
            "concurrency": 4,
            "retry": {"limit": 0},
        },
    }
    cluster.apply(template, pool("callers", "caller"))
    for _ in range(2):
        cluster.start_agent("callers")
    agents = cluster.wait_for_agents(2)
    assert sorted(agent["replica"] for agent in agents) == ["manager-0", "manager-1"], agents


def run_tasks(cluster: Cluster, count: int) -> list[dict[str, Any]]:
    """`count` tasks submitted to the two replicas in turn, all at once; each as it finished."""
    task_ids = []
    for number in range(count):
        with cluster.client(number % 2) as http:
            response = http.post("/api/v1/tasks", json={"pool": "callers", "input": f"question {number}"})
            response.raise_for_status()
            task_ids.append(response.json()["id"])
    return [cluster.wait_task(task_id, timeout=120) for task_id in task_ids]


def assert_both_agents_worked(finished: list[dict[str, Any]]) -> None:
    assert all(task["state"] == "succeeded" for task in finished), [task.get("error") for task in finished]
    assert len({task["agentId"] for task in finished}) == 2, "both agents, on both replicas, called the model"


def test_a_models_concurrency_holds_across_agents_on_different_replicas(cluster: Cluster) -> None:
    with provider(streamed_answer) as model:
        cluster.apply(model_config("shared", model.base_url, concurrency=1))
        start_agents_on_both_replicas(cluster, "shared")
        finished = run_tasks(cluster, 8)
    assert_both_agents_worked(finished)
    assert len(model.requests) == 8
    # Two agents with 4 slots each would have up to 8 chats in flight; the limit is one.
    assert model.most_in_flight == 1, f"{model.most_in_flight} chats at once under a concurrency of 1"


def test_a_models_rate_limit_holds_across_replicas_and_the_rest_go_to_its_fallback(cluster: Cluster) -> None:
    with provider(streamed_answer) as metered, provider(streamed_answer) as spare:
        cluster.apply(
            model_config("spare", spare.base_url),
            model_config("metered", metered.base_url, rateLimit={"requestsPerMinute": 3}, fallbacks=["spare"]),
        )
        start_agents_on_both_replicas(cluster, "metered")
        finished = run_tasks(cluster, 6)
    assert_both_agents_worked(finished)
    # Each agent alone would allow itself 3 a minute; together they get 3, and the others fall back.
    assert len(metered.requests) == 3, _counts(metered, spare)
    assert len(spare.requests) == 3, _counts(metered, spare)


def _counts(*models: StandInProvider) -> str:
    return "requests per model: " + ", ".join(str(len(model.requests)) for model in models)
