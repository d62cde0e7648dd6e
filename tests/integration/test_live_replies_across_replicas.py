"""A run's model reply pieces reach its readers on every replica, not only the agent's.

Two manager replicas on one PostgreSQL database; the agent (a raw one on the agent channel,
tests/integration/hostile_agent.py, so the pieces are exactly those the test sends) is on
replica 0 and holds the run's step; the reader follows the run's events on replica 1.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from pweza.testing.cluster import Cluster, running_cluster
from pweza.v1 import agent_pb2 as pb
from tests.conftest import pool, template
from tests.integration.hostile_agent import HostileAgent
from tests.integration.test_hostile_agents import first_reply_pieces

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture
def cluster(postgres_database: str) -> Iterator[Cluster]:
    with running_cluster(postgres_database, replicas=2) as instance:
        yield instance


async def test_a_reader_on_another_replica_gets_the_runs_reply_pieces(cluster: Cluster) -> None:
    workflow = {"apiVersion": "pweza.ai/v1", "kind": "Workflow", "metadata": {"name": "one"},
                "spec": {"steps": [{"name": "only", "agent": {"pool": "echo"}, "input": "x"}]}}  # fmt: skip
    cluster.apply(template(), pool(), workflow)
    async with HostileAgent(cluster.grpc_addresses[0]) as agent:
        await agent.hello(token=cluster.agent_token, pool="echo", agent_id="writer", free_slots=1)
        with cluster.client(1) as client:
            run_id = client.post("/api/v1/workflows/one/runs", json={}).json()["id"]
        item = (await agent.assignments(timeout=15))[0]
        pieces: list[dict[str, Any]] = []
        replica = cluster.managers[1]
        reading = (replica.url, cluster.admin_token, replica.verify, run_id, pieces, "last")
        reader = threading.Thread(target=first_reply_pieces, args=reading, daemon=True)
        reader.start()
        await asyncio.sleep(1.5)  # replica 1 has told replica 0 that the run is read there
        long_text = "é" * 4000  # more bytes than one notification holds: cut, not lost
        for text in ["one", "two", long_text, "last"]:
            agent.send(
                pb.AgentMessage(model_stream=pb.ModelStream(task_id=item.task_id, attempt=item.attempt, text=text))
            )
        await asyncio.to_thread(reader.join, 30)
    texts = [piece.get("text", "") for piece in pieces]
    assert texts[:2] == ["one", "two"] and texts[-1] == "last" and len(texts) == 4, texts
    assert texts[2] and long_text.startswith(texts[2]), "the long piece arrives, cut to fit"
    assert {(piece["step"], piece["taskId"]) for piece in pieces} == {("only", item.task_id)}
