"""A run's change signal lives only while a stream waits on it: following the events of a run
that ends leaves nothing behind in the workflow engine."""

from __future__ import annotations

import gc
from typing import Any

import httpx

from pweza.manager.service import Manager
from tests.conftest import pool, template


def _workflow() -> dict[str, Any]:
    steps = [{"name": "only", "agent": {"pool": "echo"}, "input": {"n": 1}}]
    return {"apiVersion": "pweza.ai/v1", "kind": "Workflow", "metadata": {"name": "one"}, "spec": {"steps": steps}}


async def test_following_ended_runs_leaves_no_entry_behind(api: httpx.AsyncClient, manager: Manager) -> None:
    for document in (template(), pool(), _workflow()):
        plural = document["kind"].lower() + "s"
        name = document["metadata"]["name"]
        (await api.put(f"/api/v1/{plural}/{name}", json=document)).raise_for_status()
    for _ in range(5):
        started = await api.post("/api/v1/workflows/one/runs", json={"inputs": {}})
        assert started.status_code == 201, started.text
        run_id = started.json()["id"]
        (await api.post(f"/api/v1/runs/{run_id}/cancel", json={})).raise_for_status()
        streamed = await api.get(f"/api/v1/runs/{run_id}/events", params={"follow": "true"})
        assert streamed.status_code == 200
        assert "event: end" in streamed.text
    gc.collect()
    assert manager.workflows.followed == 0
