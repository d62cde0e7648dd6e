"""Two manager replicas on one PostgreSQL database: a template changed through one replica is
what the other uses for the tasks it is given next (it caches a pool's policy only briefly),
not the settings it read before, until a restart."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pweza.manager.registry import POLICY_CACHE_SECONDS
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


def _submitted_timeout(cluster: Cluster, replica: int) -> float:
    """The timeout replica `replica` gives a new task of the pool (from its template)."""
    with cluster.client(replica) as client:
        response = client.post("/api/v1/tasks", json={"pool": "work", "input": {}})
        response.raise_for_status()
        return float(response.json()["timeoutSeconds"])


def test_a_template_changed_through_one_replica_reaches_the_other(cluster: Cluster) -> None:
    cluster.apply(template("worker", timeout="1m"), pool("work", "worker"), manager=0)
    assert _submitted_timeout(cluster, 1) == 60.0  # replica 1 has read and cached the policy now
    cluster.apply(template("worker", timeout="2m"), manager=0)
    assert _submitted_timeout(cluster, 0) == 120.0  # the replica that applied it at once
    # The other within its cache's bound; the deadline is generous, the test does not time it.
    deadline = time.monotonic() + POLICY_CACHE_SECONDS + 30.0
    seen = _submitted_timeout(cluster, 1)
    while seen != 120.0 and time.monotonic() < deadline:
        time.sleep(0.5)
        seen = _submitted_timeout(cluster, 1)
    assert seen == 120.0
