"""`pweza.testing.cluster.Cluster`: manager replicas on one PostgreSQL database, agents spread over them.

PostgreSQL is a throwaway server for the session (`pweza.testing.postgres`), each test a fresh
database on it. Without PostgreSQL's binaries these tests skip, except in CI (CI=true) where they
fail: install them with hack/ensure-postgres.sh.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pweza.testing.cluster import Cluster
from tests.conftest import pool, template

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture
def cluster(postgres_database: str, tmp_path: Path) -> Iterator[Cluster]:
    instance = Cluster(tmp_path, postgres_database, replicas=2)
    try:
        instance.start_managers()
        yield instance
    finally:
        instance.stop()


def test_every_replica_is_ready_on_ports_of_its_own(cluster: Cluster) -> None:
    for url in cluster.urls:
        assert httpx.get(f"{url}/health/ready", timeout=5).status_code == 200
    assert len(set(cluster.urls)) == len(set(cluster.grpc_addresses)) == 2


def test_agents_spread_over_the_replicas_they_list_first(cluster: Cluster) -> None:
    cluster.apply(template(), pool())
    cluster.start_agent("echo", agent_id="agent-0")
    cluster.start_agent("echo", agent_id="agent-1")
    cluster.wait_for_agents(2)
    connected = {index: [agent["id"] for agent in agents] for index, agents in cluster.connected_agents().items()}
    assert connected == {0: ["agent-0"], 1: ["agent-1"]}


def test_a_task_submitted_on_one_replica_completes(cluster: Cluster) -> None:
    cluster.apply(template(), pool())
    cluster.start_agent("echo")
    cluster.start_agent("echo")
    cluster.wait_for_agents(2)
    with cluster.client(0) as client:
        task_id = client.post("/api/v1/tasks", json={"pool": "echo", "input": "shared"}).json()["id"]
    task = cluster.wait_task(task_id, timeout=30)
    assert (task["state"], task["output"]) == ("succeeded", "shared")


def test_an_agent_of_a_killed_replica_fails_over_and_the_replica_comes_back(cluster: Cluster) -> None:
    cluster.apply(template(), pool())
    cluster.start_agent("echo", agent_id="mover")  # lists replica 0 first
    cluster.wait_for_agents(1)
    cluster.kill_manager(0)
    assert cluster.running_indexes() == [1]
    cluster.wait_for_agents(1, timeout=15)
    assert [agent["id"] for agent in cluster.connected_agents()[1]] == ["mover"]
    cluster.restart_manager(0)
    assert httpx.get(f"{cluster.url(0)}/health/ready", timeout=5).status_code == 200
