"""A Workflow custom resource reaches a real manager process and runs there."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from pweza.testing.controlplane import ControlPlane
from pweza.testing.platform import Platform
from tests.k8s.conftest import Operator, apply_yaml, eventually, get_json

pytestmark = [pytest.mark.k8s, pytest.mark.timeout(600)]

OBJECTS = """
apiVersion: pweza.ai/v1
kind: AgentTemplate
metadata: {name: echoer}
spec: {runtime: {kind: python, handler: "pweza.testing.handlers:echo"}, concurrency: 4}
---
apiVersion: pweza.ai/v1
kind: AgentPool
metadata: {name: echo}
spec: {templateRef: echoer, scaling: {minReplicas: 1, maxReplicas: 1}}
---
apiVersion: pweza.ai/v1
kind: Workflow
metadata: {name: greet}
spec:
  inputs: {who: {type: string, default: world}}
  steps:
    - {name: hello, agent: {pool: echo}, input: {text: "hello ${{ inputs.who }}"}}
    - {name: shout, agent: {pool: echo}, depends: [hello], input: "${{ steps.hello.output.text }}!"}
  outputs: {greeting: "${{ steps.shout.output }}"}
"""


def test_workflow_resource_is_registered_with_the_manager_and_runs(
    control_plane: ControlPlane,
    namespace: str,
    start_operator: Callable[..., Operator],
    manager: Platform,
    tmp_path: Path,
) -> None:
    with manager.client() as client:
        token = client.post("/api/v1/tokens", json={"name": "operator", "role": "operator"}).json()["token"]
    start_operator("op-a", "--manager-url", manager.url, "--manager-token", token)
    assert apply_yaml(control_plane, namespace, OBJECTS, tmp_path).returncode == 0

    def registered() -> bool:
        status = (get_json(control_plane, "workflow", "greet", "-n", namespace) or {}).get("status") or {}
        return status.get("registeredGeneration") == 1

    eventually(registered, 60, "the Workflow to be registered with the manager")
    with manager.client() as client:
        stored = client.get("/api/v1/workflows/greet", params={"namespace": namespace}).json()
        assert stored["metadata"]["annotations"]["pweza.ai/cr-generation"] == "1"
        # The pool is a separate object the operator registers on its own handler, maybe later.
        eventually(
            lambda: client.get("/api/v1/agentpools/echo", params={"namespace": namespace}).status_code == 200,
            60,
            "the AgentPool to be registered with the manager",
        )
    # The pool's pods run on fake kubelets; a local agent process does the pool's work.
    manager.start_agent("echo", extra=["--namespace", namespace])
    manager.wait_for_agents(1)
    with manager.client() as client:
        run = client.post(f"/api/v1/workflows/greet/runs?namespace={namespace}", json={"inputs": {"who": "k8s"}}).json()
    with manager.client() as client:
        final = eventually(
            lambda: (r := client.get(f"/api/v1/runs/{run['id']}").json())["state"] != "running" and r, 60, "the run"
        )
    assert final["state"] == "succeeded" and final["outputs"] == {"greeting": "hello k8s!"}

    def last_run() -> str | None:
        status = (get_json(control_plane, "workflow", "greet", "-n", namespace) or {}).get("status") or {}
        return (status.get("lastRun") or {}).get("state")

    assert eventually(last_run, 30, "the run summary in the Workflow status") == "succeeded"

    apply_yaml(control_plane, namespace, OBJECTS.replace("default: world", "default: there"), tmp_path)
    eventually(
        lambda: (
            ((get_json(control_plane, "workflow", "greet", "-n", namespace) or {}).get("status") or {}).get(
                "registeredGeneration"
            )
            == 2
        ),
        30,
        "generation 2 to be registered",
    )
    broken = OBJECTS.split("---")[2].replace("depends: [hello]", "depends: [ghost]")
    apply_yaml(control_plane, namespace, broken, tmp_path)

    def refused() -> str:
        status = (get_json(control_plane, "workflow", "greet", "-n", namespace) or {}).get("status") or {}
        ready = next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), {})
        return str(ready.get("message", "")) if ready.get("reason") == "Invalid" else ""

    assert "spec.steps[1].depends: unknown step 'ghost'" in eventually(refused, 30, "an Invalid condition")
