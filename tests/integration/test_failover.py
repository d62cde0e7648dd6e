"""An agent given several manager addresses leaves the ones that do not answer."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from pweza.agent.worker import AgentWorker
from pweza.testing.platform import Platform, free_port
from tests.conftest import pool, template

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture
def silent_address() -> Iterator[str]:
    """A loopback port that accepts connections and never says a word, like a hung replica."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"127.0.0.1:{listener.getsockname()[1]}"


def run_echo(platform: Platform, text: str) -> dict[str, Any]:
    with platform.client() as client:
        task_id = client.post("/api/v1/tasks", json={"pool": "echo", "input": text}).json()["id"]
    return platform.wait_task(task_id, timeout=30)


def test_an_agent_skips_a_dead_address_and_serves_through_the_next(platform: Platform) -> None:
    platform.apply(template(), pool())
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there: the connection is refused
    started = time.monotonic()
    platform.start_agent("echo", agent_id="hopper", extra=["--manager", f"{dead},{platform.grpc_address}"])
    agents = platform.wait_for_agents(1, timeout=15)
    connected_after = time.monotonic() - started
    assert [agent["id"] for agent in agents] == ["hopper"]
    # One short hop, not a backoff; the rest is the agent process starting up.
    assert connected_after < 10
    assert run_echo(platform, "via the second address")["output"] == "via the second address"
    log = (platform.workdir / "agent-echo-0.log").read_text()
    assert '"switching manager"' in log and f'"manager": "{platform.grpc_address}"' in log


def test_an_agent_comes_back_to_a_restarted_manager_through_its_list(platform: Platform) -> None:
    platform.apply(template(), pool())
    dead = f"127.0.0.1:{free_port()}"
    platform.start_agent("echo", extra=["--manager", f"{platform.grpc_address},{dead}"])
    platform.wait_for_agents(1)
    platform.kill_manager()
    platform.start_manager()  # the same ports: the agent reaches it on its next round
    platform.wait_for_agents(1, timeout=30)
    assert run_echo(platform, "after the restart")["state"] == "succeeded"


async def test_an_agent_gives_up_on_a_manager_that_never_welcomes_it(platform: Platform, silent_address: str) -> None:
    platform.apply(template(), pool())
    worker = AgentWorker(
        manager=f"{silent_address},{platform.grpc_address}",
        pool="echo",
        token=platform.agent_token,
        agent_id="patient",
        welcome_timeout=0.5,
    )
    running = asyncio.create_task(worker.run())
    try:
        headers = {"Authorization": f"Bearer {platform.admin_token}"}
        async with httpx.AsyncClient(base_url=platform.url, headers=headers, timeout=10) as client:
            async with asyncio.timeout(15):
                while True:
                    if (await client.get("/api/v1/agents")).json()["items"]:
                        break
                    await asyncio.sleep(0.05)
        assert worker.manager == platform.grpc_address
    finally:
        await worker.stop()
        await asyncio.wait_for(running, 15)
