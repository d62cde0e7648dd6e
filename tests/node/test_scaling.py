"""An AgentPool with an HPA scales out under real CPU load and back in (metrics-server reads the
kubelet's real CPU figures; the HPA drives the pool's scale subresource; the operator follows)."""

from __future__ import annotations

import json

import pytest

from tests.node.conftest import AGENTS, Release, eventually

pytestmark = pytest.mark.node
# Half a minute of pure Python arithmetic per task: nothing but CPU.
BURN = ["/venv/bin/python", "-c", "import time\nend = time.time() + 30\nwhile time.time() < end: pass\nprint(1)"]


def replicas(release: Release) -> tuple[int, int]:
    pool = release.node.get("agentpool", "burners", "-n", AGENTS) or {}
    deployment = release.node.get("deployment", "burners-agents", "-n", AGENTS) or {}
    ready = (deployment.get("status") or {}).get("readyReplicas") or 0
    return int((pool.get("spec") or {}).get("replicas") or 0), int(ready)


def test_an_agent_pool_scales_out_under_cpu_load_and_back_in(triage: Release) -> None:
    node = triage.node
    objects = [
        {
            "apiVersion": "pweza.ai/v1",
            "kind": "AgentTemplate",
            "metadata": {"name": "burner", "namespace": AGENTS},
            "spec": {
                "runtime": {"kind": "shell", "command": BURN},
                "concurrency": 2,
                "timeout": "2m",
                "resources": {"requests": {"cpu": "100m", "memory": "96Mi"}, "limits": {"cpu": "1", "memory": "256Mi"}},
            },
        },
        {
            "apiVersion": "pweza.ai/v1",
            "kind": "AgentPool",
            "metadata": {"name": "burners", "namespace": AGENTS},
            "spec": {"templateRef": "burner", "scaling": {"minReplicas": 1, "maxReplicas": 3, "targetUtilization": 50}},
        },
    ]
    node.kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))
    eventually(lambda: replicas(triage) == (1, 1), 300, "one burner agent Ready", interval=2)
    eventually(
        lambda: node.kubectl("top", "pods", "-n", AGENTS, "-l", "pweza.ai/pool=burners", check=False).returncode == 0,
        180,
        "metrics-server to report the pool's pods",
        interval=3,
    )

    with triage.client() as client:
        for _ in range(2):
            response = client.post(
                "/api/v1/tasks:batch",
                json={"tasks": [{"pool": "burners", "namespace": AGENTS, "input": {}} for _ in range(4)]},
            )
            assert response.status_code in (200, 201, 202), response.text
    hpa = eventually(
        lambda: (
            (h := node.get("hpa", "burners-agents", "-n", AGENTS))
            and (h["status"].get("desiredReplicas") or 0) > 1
            and h
        ),
        240,
        "the HPA to ask for more burners",
        interval=3,
    )
    assert hpa["status"]["currentMetrics"][0]["resource"]["current"]["averageUtilization"] > 50
    eventually(lambda: replicas(triage)[0] > 1, 120, "the pool's replicas to follow the HPA", interval=2)
    # Load over (8 tasks of 30 s): back in, after the test control plane's 20 s stabilization.
    eventually(lambda: replicas(triage)[0] == 1, 420, "the pool to scale back in", interval=5)
