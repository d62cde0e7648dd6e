"""The operator against a real kube-apiserver: pools become Deployments with Running (kwok) pods."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pweza.testing.controlplane import ControlPlane
from tests.k8s.conftest import Operator, apply_yaml, eventually, get_json

pytestmark = [pytest.mark.k8s, pytest.mark.timeout(600)]

TEMPLATE = """
apiVersion: pweza.ai/v1
kind: AgentTemplate
metadata: {{name: {name}}}
spec:
  runtime: {{kind: python, handler: "pweza.testing.handlers:echo"}}
  image: registry.example/agents:1
  resources: {{requests: {{cpu: 100m, memory: 64Mi}}}}
  environment: [{{name: MODE, value: "{mode}"}}, {{name: KEEP, value: template}}]
"""
POOL = """
apiVersion: pweza.ai/v1
kind: AgentPool
metadata: {{name: {name}}}
spec:
  templateRef: {template}
  template: {{environment: [{{name: MODE, value: pool}}], resources: {{limits: {{memory: 128Mi}}}}}}
  scaling: {{minReplicas: {low}, maxReplicas: {high}, targetUtilization: 60}}
"""


def pool_yaml(name: str = "workers", template: str = "tmpl", low: int = 2, high: int = 5) -> str:
    return POOL.format(name=name, template=template, low=low, high=high)


def ready_replicas(cp: ControlPlane, namespace: str, pool: str) -> int:
    status = (get_json(cp, "agentpool", pool, "-n", namespace) or {}).get("status") or {}
    return int(status.get("readyReplicas") or 0)


def running_pods(cp: ControlPlane, namespace: str, pool: str) -> int:
    pods = get_json(cp, "pods", "-n", namespace, "-l", f"pweza.ai/pool={pool}") or {"items": []}
    return sum(
        1
        for pod in pods["items"]
        if pod["status"].get("phase") == "Running" and not pod["metadata"].get("deletionTimestamp")
    )


def condition(cp: ControlPlane, namespace: str, pool: str, kind: str) -> dict[str, str]:
    status = (get_json(cp, "agentpool", pool, "-n", namespace) or {}).get("status") or {}
    return next((c for c in status.get("conditions") or [] if c["type"] == kind), {})


def test_pool_becomes_running_agents_scales_and_cleans_up(
    control_plane: ControlPlane, namespace: str, start_operator: Callable[..., Operator], tmp_path: Path
) -> None:
    cp = control_plane
    start_operator()
    assert (
        apply_yaml(cp, namespace, TEMPLATE.format(name="tmpl", mode="t") + "---" + pool_yaml(), tmp_path).returncode
        == 0
    )
    eventually(lambda: ready_replicas(cp, namespace, "workers") == 2, 60, "2 ready agents in the pool status")
    assert running_pods(cp, namespace, "workers") == 2
    deployment = get_json(cp, "deployment", "workers-agents", "-n", namespace)
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "registry.example/agents:1"
    assert container["args"][:3] == ["agent", "--pool", "workers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["MODE"] == "pool" and env["KEEP"] == "template", "the pool's environment overrides the template's"
    assert (
        next(e for e in container["env"] if e["name"] == "PWEZA_TOKEN")["valueFrom"]["secretKeyRef"]["key"] == "token"
    )
    assert container["resources"] == {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}}
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["serviceAccountName"] == "workers-agent"
    assert deployment["metadata"]["ownerReferences"][0]["kind"] == "AgentPool"
    assert get_json(cp, "agentpool", "workers", "-n", namespace)["spec"]["replicas"] == 2, (
        "the scale subresource has a value"
    )
    hpa = get_json(cp, "hpa", "workers-agents", "-n", namespace)
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "pweza.ai/v1", "kind": "AgentPool", "name": "workers"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 5)
    status = get_json(cp, "agentpool", "workers", "-n", namespace)["status"]
    assert status["selector"] == "app.kubernetes.io/name=pweza-agent,pweza.ai/pool=workers"
    assert condition(cp, namespace, "workers", "Ready")["status"] == "True"

    cp.kubectl("scale", "agentpool", "workers", "-n", namespace, "--replicas=4")
    eventually(lambda: ready_replicas(cp, namespace, "workers") == 4, 60, "4 ready agents after kubectl scale")
    assert get_json(cp, "deployment", "workers-agents", "-n", namespace)["spec"]["replicas"] == 4
    refused = cp.kubectl("scale", "agentpool", "workers", "-n", namespace, "--replicas=9", check=False)
    assert refused.returncode != 0 and "replicas must be within scaling.minReplicas..maxReplicas" in refused.stderr

    cp.kubectl("delete", "agentpool", "workers", "-n", namespace)
    eventually(
        lambda: get_json(cp, "deployment", "workers-agents", "-n", namespace) is None, 60, "the Deployment to go"
    )
    eventually(lambda: get_json(cp, "hpa", "workers-agents", "-n", namespace) is None, 60, "the HPA to go")
    eventually(lambda: get_json(cp, "serviceaccount", "workers-agent", "-n", namespace) is None, 60, "the SA to go")


def test_drift_is_repaired(
    control_plane: ControlPlane, namespace: str, start_operator: Callable[..., Operator], tmp_path: Path
) -> None:
    cp = control_plane
    start_operator()
    apply_yaml(cp, namespace, TEMPLATE.format(name="tmpl", mode="t") + "---" + pool_yaml(low=2, high=2), tmp_path)
    eventually(lambda: ready_replicas(cp, namespace, "workers") == 2, 60, "2 ready agents")
    assert get_json(cp, "hpa", "workers-agents", "-n", namespace) is None, "no HPA when min == max"
    uid = get_json(cp, "deployment", "workers-agents", "-n", namespace)["metadata"]["uid"]
    cp.kubectl("delete", "deployment", "workers-agents", "-n", namespace)
    eventually(
        lambda: (
            (get_json(cp, "deployment", "workers-agents", "-n", namespace) or {}).get("metadata", {}).get("uid")
            not in (None, uid)
        ),
        30,
        "the deleted Deployment to come back",
    )
    cp.kubectl("scale", "deployment", "workers-agents", "-n", namespace, "--replicas=5")
    eventually(
        lambda: get_json(cp, "deployment", "workers-agents", "-n", namespace)["spec"]["replicas"] == 2,
        30,
        "an edited replica count to be restored",
    )
    eventually(lambda: running_pods(cp, namespace, "workers") == 2, 60, "back to 2 running agents")


def test_template_change_rolls_out_to_every_pool_using_it(
    control_plane: ControlPlane, namespace: str, start_operator: Callable[..., Operator], tmp_path: Path
) -> None:
    cp = control_plane
    start_operator()
    apply_yaml(
        cp,
        namespace,
        TEMPLATE.format(name="tmpl", mode="t") + "---" + pool_yaml("a") + "---" + pool_yaml("b"),
        tmp_path,
    )
    eventually(
        lambda: ready_replicas(cp, namespace, "a") == 2 and ready_replicas(cp, namespace, "b") == 2,
        60,
        "both pools ready",
    )
    apply_yaml(
        cp, namespace, TEMPLATE.format(name="tmpl", mode="t").replace("value: template", "value: changed"), tmp_path
    )

    def rolled(pool: str) -> bool:
        spec = get_json(cp, "deployment", f"{pool}-agents", "-n", namespace)["spec"]["template"]
        env = {e["name"]: e.get("value") for e in spec["spec"]["containers"][0]["env"]}
        return env["KEEP"] == "changed" and spec["metadata"]["annotations"]["pweza.ai/template-generation"] == "2"

    eventually(lambda: rolled("a") and rolled("b"), 30, "the new template in both pools' pod templates")


def test_invalid_pools_are_refused_by_the_api_server_naming_the_field(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    cases = {
        "spec.scaling: Invalid value": pool_yaml(low=5, high=3),
        "spec.scaling.maxReplicas": pool_yaml(low=1, high=101),
        "spec.templateRef: Required value": "apiVersion: pweza.ai/v1\nkind: AgentPool\nmetadata: {name: x}\nspec: {}\n",
        "spec.runtime: Invalid value": TEMPLATE.format(name="bad", mode="t").replace(
            'handler: "pweza.testing.handlers:echo"', ""
        ),
    }
    for field, text in cases.items():
        result = apply_yaml(control_plane, namespace, text, tmp_path)
        assert result.returncode != 0
        assert field in result.stderr, result.stderr
    assert (get_json(control_plane, "agentpools", "-n", namespace) or {"items": []})["items"] == []


def test_a_pool_without_its_template_says_why_and_recovers(
    control_plane: ControlPlane, namespace: str, start_operator: Callable[..., Operator], tmp_path: Path
) -> None:
    cp = control_plane
    start_operator()
    apply_yaml(cp, namespace, pool_yaml(template="later"), tmp_path)
    reason = eventually(lambda: condition(cp, namespace, "workers", "Ready").get("reason"), 30, "a Ready condition")
    assert reason == "TemplateNotFound"
    assert "AgentTemplate 'later' not found" in condition(cp, namespace, "workers", "Degraded")["message"]
    apply_yaml(cp, namespace, TEMPLATE.format(name="later", mode="t"), tmp_path)
    eventually(lambda: ready_replicas(cp, namespace, "workers") == 2, 60, "the pool to recover")


def lease_holder(cp: ControlPlane, namespace: str) -> str | None:
    lease = get_json(cp, "lease", "pweza-operator", "-n", namespace)
    return None if lease is None else lease["spec"].get("holderIdentity")


def test_two_operators_elect_one_leader_and_fail_over(
    control_plane: ControlPlane, namespace: str, start_operator: Callable[..., Operator], tmp_path: Path
) -> None:
    cp = control_plane
    first = start_operator("op-a", lease_seconds=6)
    eventually(lambda: lease_holder(cp, namespace) == "op-a", 30, "op-a to lead")
    second = start_operator("op-b", lease_seconds=6)
    apply_yaml(
        cp, namespace, TEMPLATE.format(name="tmpl", mode="t") + "---" + pool_yaml("one", low=1, high=1), tmp_path
    )
    eventually(lambda: ready_replicas(cp, namespace, "one") == 1, 60, "the leader to reconcile")
    time.sleep(3)
    assert lease_holder(cp, namespace) == "op-a"
    assert "standing by" in second.text() and '"event": "leader"' not in second.text()
    os.kill(first.process.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    eventually(lambda: lease_holder(cp, namespace) == "op-b", 30, "op-b to take the lease")
    took_over = time.monotonic() - killed_at
    assert took_over < 6 + 5, f"takeover took {took_over:.1f}s for a 6s lease"
    apply_yaml(cp, namespace, pool_yaml("two", low=1, high=1), tmp_path)
    eventually(lambda: ready_replicas(cp, namespace, "two") == 1, 60, "the new leader to reconcile a new pool")
    lease = get_json(cp, "lease", "pweza-operator", "-n", namespace)
    assert lease["spec"]["leaseTransitions"] >= 1
    assert (
        json.loads(cp.kubectl("get", "ap", "two", "-n", namespace, "-o", "json").stdout)["status"]["observedGeneration"]
        == 1
    )
