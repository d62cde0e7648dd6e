"""`pweza up`, then `pweza apply -f` of an agent pool on the local model whose ModelConfig comes
last in the file: apply sends models first, so the agent `pweza up` starts for the new pool
finds its ModelConfig when it connects, and answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pweza.testing.local_model import LocalModel
from pweza.testing.platform import free_port
from tests.integration.test_embedded import stop, wait_for
from tests.integration.test_handler_code import up

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

MANIFESTS = """
apiVersion: pweza.ai/v1
kind: AgentTemplate
metadata: {{name: chatter}}
spec:
  runtime: {{kind: agent, modelRef: local, systemPrompt: "Answer in a few words.", maxTokens: 16}}
  retry: {{limit: 0}}
---
apiVersion: pweza.ai/v1
kind: AgentPool
metadata: {{name: chat}}
spec: {{templateRef: chatter}}
---
apiVersion: pweza.ai/v1
kind: ModelConfig
metadata: {{name: local}}
spec: {{baseUrl: "{base_url}", model: {model}, temperature: 0, timeout: 120s}}
"""


def test_pweza_up_runs_an_agent_pool_on_the_local_model(tmp_path: Path, local_model: LocalModel) -> None:
    manifests = tmp_path / "chat.yaml"
    manifests.write_text(MANIFESTS.format(base_url=local_model.base_url, model=local_model.model))
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    embedded = up(data_dir, (free_port(), free_port(), free_port()), [], "up.log")
    try:
        applied = embedded.cli("apply", "-f", str(manifests))
        assert applied.returncode == 0, applied.stderr
        assert applied.stdout.splitlines()[0].startswith("ModelConfig/local applied"), applied.stdout
        wait_for(lambda: [a["state"] for a in embedded.agents()] in (["idle"], ["unhealthy"]), 60, "the chat agent")
        assert [a["state"] for a in embedded.agents()] == ["idle"], embedded.agents()
        done = embedded.cli("task", "submit", "--pool", "chat", "--input", '"Say hi."', "--wait", timeout=180)
        assert done.returncode == 0, done.stderr
        task = json.loads(done.stdout)
    finally:
        stop(embedded)
    assert task["state"] == "succeeded", task.get("error")
    assert isinstance(task["output"]["answer"], str) and task["output"]["answer"].strip()
    assert task["output"]["usage"]["modelCalls"] == 1
