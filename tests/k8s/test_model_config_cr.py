"""ModelConfig custom resources on a real kube-apiserver, with the operator and a real manager.

The CRD's schema refuses a bad spec naming the field; the operator mirrors a ModelConfig into
the manager and copies the manager's status (reachable, models, last error) back into the
resource; the pods of a pool whose template uses it get its Secret-backed key as a variable the
kubelet fills; a change of the ModelConfig reaches the manager, the status and the pool's pods.
The model endpoint is a stand-in provider (tests/model_providers.py) on loopback: the manager
probes its `/models`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pweza.testing.controlplane import ControlPlane
from pweza.testing.platform import Platform
from tests.k8s.conftest import Operator, apply_yaml, eventually, get_json
from tests.model_providers import chat_reply, provider

pytestmark = [pytest.mark.k8s, pytest.mark.timeout(600)]

MODEL = """
apiVersion: pweza.ai/v1
kind: ModelConfig
metadata: {{name: main-model}}
spec:
  baseUrl: {url}
  model: m-1
  apiKey: {{secretKeyRef: {{name: provider, key: {key}}}}}
  concurrency: 2
  fallbacks: [spare]
"""
OTHERS = """
apiVersion: pweza.ai/v1
kind: ModelConfig
metadata: {{name: spare}}
spec: {{baseUrl: {url}, model: m-1, apiKey: {{secretKeyRef: {{name: spare-provider, key: token}}}}}}
---
apiVersion: pweza.ai/v1
kind: AgentTemplate
metadata: {{name: writer}}
spec:
  runtime: {{kind: agent, modelRef: main-model, systemPrompt: "Be brief.", maxTokens: 32}}
  image: registry.example/agents:1
---
apiVersion: pweza.ai/v1
kind: AgentPool
metadata: {{name: writers}}
spec: {{templateRef: writer, scaling: {{minReplicas: 1, maxReplicas: 1}}}}
"""


def status(cp: ControlPlane, namespace: str, name: str) -> dict[str, Any]:
    return dict((get_json(cp, "modelconfig", name, "-n", namespace) or {}).get("status") or {})


def key_variables(cp: ControlPlane, namespace: str) -> dict[str, Any]:
    deployment = get_json(cp, "deployment", "writers-agents", "-n", namespace) or {}
    containers = ((deployment.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or [{}]
    return {e["name"]: e.get("valueFrom") for e in containers[0].get("env") or [] if "PWEZA_MODEL_KEY" in e["name"]}


def test_a_model_config_resource_is_checked_mirrored_reported_and_given_to_the_pools_pods(
    control_plane: ControlPlane,
    namespace: str,
    start_operator: Callable[..., Operator],
    manager: Platform,
    tmp_path: Path,
) -> None:
    cp = control_plane
    bad = MODEL.format(url="http://127.0.0.1:9/v1", key="api-key").replace("concurrency: 2", "concurrency: 0")
    refused = apply_yaml(cp, namespace, bad, tmp_path)
    assert refused.returncode != 0 and "spec.concurrency" in refused.stderr, refused.stderr

    with manager.client() as client:
        token = client.post("/api/v1/tokens", json={"name": "operator", "role": "operator"}).json()["token"]
    start_operator("op-a", "--manager-url", manager.url, "--manager-token", token)
    with provider(lambda _n, _body: chat_reply("hi"), models=["m-1", "m-2"]) as up:
        documents = MODEL.format(url=up.base_url, key="api-key") + "---" + OTHERS.format(url=up.base_url)
        applied = apply_yaml(cp, namespace, documents, tmp_path)
        assert applied.returncode == 0, applied.stderr

        def registered() -> dict[str, Any]:
            found = status(cp, namespace, "main-model")
            ready = next((c for c in found.get("conditions") or [] if c["type"] == "Ready"), {})
            return found if ready.get("reason") == "Registered" and "reachable" in found else {}

        reported = eventually(registered, 60, "the manager's status of main-model in the resource")
        assert (reported["reachable"], reported["models"]) == (True, ["m-1", "m-2"]), reported
        with manager.client() as client:
            stored = client.get("/api/v1/modelconfigs/main-model", params={"namespace": namespace}).json()
        assert stored["spec"]["concurrency"] == 2 and stored["spec"]["fallbacks"] == ["spare"]
        assert "secret" not in str(stored).lower().replace("secretkeyref", ""), "no key reaches the manager"

        # The pool's pods get each model's key from its Secret, the primary's and the fallback's.
        variables = eventually(lambda: key_variables(cp, namespace), 60, "the pool's Deployment")
        assert variables == {
            "PWEZA_MODEL_KEY_MAIN_MODEL": {"secretKeyRef": {"name": "provider", "key": "api-key"}},
            "PWEZA_MODEL_KEY_SPARE": {"secretKeyRef": {"name": "spare-provider", "key": "token"}},
        }, variables

    # Changed: a new key entry, an endpoint that no longer answers. Both reach where they matter.
    moved = apply_yaml(cp, namespace, MODEL.format(url="http://127.0.0.1:9/v1", key="rotated"), tmp_path)
    assert moved.returncode == 0, moved.stderr
    eventually(
        lambda: (
            key_variables(cp, namespace).get("PWEZA_MODEL_KEY_MAIN_MODEL")
            == {"secretKeyRef": {"name": "provider", "key": "rotated"}}
        ),
        60,
        "the pool's pods to get the rotated key's entry",
    )
    down = eventually(
        lambda: (found := status(cp, namespace, "main-model")).get("reachable") is False and found,
        60,
        "the resource's status to say the moved endpoint is unreachable",
    )
    assert down["lastError"], down
    with manager.client() as client:
        stored = client.get("/api/v1/modelconfigs/main-model", params={"namespace": namespace}).json()
    assert stored["spec"]["baseUrl"] == "http://127.0.0.1:9/v1"
