"""`GET /runs/{id}/events` on a real manager: the stream never ends before the run's last event,
and it resumes after `?after=` or the standard `Last-Event-ID` header.

The manager here reads runs slowly (tests/api/slow_run_reads.py): the run's last commit then
always lands between the stream's look at the events and its look at the run, the race a busy
manager loses now and then."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pweza.testing.platform import Platform, running_platform
from tests.conftest import pool, template

RUNS = 3
FOLLOWERS = 3
REPOSITORY = Path(__file__).resolve().parents[2]
TERMINAL = {"RunSucceeded", "RunFailed", "RunCancelled", "RunTimedOut"}


def quick_workflow() -> dict[str, Any]:
    """A slow step, time for the followers to attach, then a quick one: the run ends while the
    streams are still reading the run after the slow step's commit."""
    steps = [
        {"name": "slow", "agent": {"pool": "sleepy"}, "input": {"seconds": 1.5}},
        {"name": "quick", "agent": {"pool": "echo"}, "input": {"n": 1}, "depends": ["slow"]},
    ]
    return {"apiVersion": "pweza.ai/v1", "kind": "Workflow", "metadata": {"name": "quick"}, "spec": {"steps": steps}}


@pytest.fixture(scope="module")
def busy() -> Iterator[Platform]:
    command = [sys.executable, "-m", "tests.api.slow_run_reads"]
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPOSITORY), os.environ.get("PYTHONPATH")]))}
    with running_platform(env=env, manager_command=command) as instance:
        sleeper = template("sleeper", "pweza.testing.handlers:sleep")
        instance.apply(template(), pool(), sleeper, pool("sleepy", "sleeper"), quick_workflow())
        instance.start_agent("echo")
        instance.start_agent("sleepy")
        instance.wait_for_agents(2)
        yield instance


def parse_stream(text: str) -> list[tuple[int | None, str]]:
    """(id, event type) of each server-sent event, in order."""
    events = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line and not line.startswith(":"))
        if "event" in fields:
            events.append((int(fields["id"]) if "id" in fields else None, fields["event"]))
    return events


async def follow(
    client: httpx.AsyncClient, path: str, headers: dict[str, str] | None = None
) -> list[tuple[int | None, str]]:
    async with client.stream("GET", path, headers=headers) as response:
        assert response.status_code == 200
        return parse_stream((await response.aread()).decode())


async def start_run(client: httpx.AsyncClient) -> str:
    started = await client.post("/api/v1/workflows/quick/runs", json={"inputs": {}})
    assert started.status_code == 201, started.text
    return str(started.json()["id"])


async def test_the_stream_never_ends_before_the_runs_last_event(busy: Platform) -> None:
    """Short runs, each followed from its start: every stream sends the whole history, ending
    with the run's terminal event, then `end`."""
    headers = {"Authorization": f"Bearer {busy.admin_token}"}
    limits = httpx.Limits(max_connections=FOLLOWERS + 5)
    async with httpx.AsyncClient(base_url=busy.url, headers=headers, timeout=60.0, limits=limits) as client:
        cut_short = []
        for _ in range(RUNS):
            run_id = await start_run(client)
            path = f"/api/v1/runs/{run_id}/events"
            streams = await asyncio.wait_for(asyncio.gather(*[follow(client, path) for _ in range(FOLLOWERS)]), 60)
            history = (await client.get(path, params={"follow": "false"})).json()["items"]
            assert history[-1]["type"] in TERMINAL
            whole = [(event["id"], event["type"]) for event in history] + [(None, "end")]
            cut_short += [(run_id, events[-3:]) for events in streams if events != whole]
    assert cut_short == [], f"{len(cut_short)} of {RUNS * FOLLOWERS} streams ended early: {cut_short[:3]}"


async def test_the_stream_resumes_after_last_event_id_or_after(busy: Platform) -> None:
    headers = {"Authorization": f"Bearer {busy.admin_token}"}
    async with httpx.AsyncClient(base_url=busy.url, headers=headers, timeout=60.0) as client:
        run_id = await start_run(client)
        whole = await follow(client, f"/api/v1/runs/{run_id}/events")
        ids = [event_id for event_id, _ in whole if event_id is not None]
        middle = ids[len(ids) // 2]
        expected = [(i, e) for i, e in whole if i is None or i > middle]
        path = f"/api/v1/runs/{run_id}/events"
        assert await follow(client, path, {"Last-Event-ID": str(middle)}) == expected
        assert await follow(client, f"{path}?after={middle}") == expected
        bad = await client.get(path, headers={"Last-Event-ID": "soon"})
        assert bad.status_code == 422
        assert bad.json()["field"] == "Last-Event-ID"
