"""The agent runtime kind in real agent processes: what an agent whose ModelConfig is missing does."""

from __future__ import annotations

import pytest

from pweza.testing.platform import Platform
from pweza.testing.waiting import eventually
from tests.conftest import pool

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def test_an_agent_whose_model_config_is_missing_is_unhealthy_and_says_which(platform: Platform) -> None:
    platform.apply(
        {
            "apiVersion": "pweza.ai/v1",
            "kind": "AgentTemplate",
            "metadata": {"name": "thinker"},
            "spec": {"runtime": {"kind": "agent", "modelRef": "no-such-model"}},
        },
        pool("thinkers", "thinker"),
    )
    agent = platform.start_agent("thinkers")
    eventually(lambda: platform.wait_for_agents(1)[0]["state"] == "unhealthy", timeout=30, what="an unhealthy agent")
    [listed] = platform.wait_for_agents(1)
    assert "ModelConfig 'no-such-model' does not exist" in listed["error"]
    assert agent.poll() is None, "it stays connected and says why it cannot serve"
