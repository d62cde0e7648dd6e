"""The chart installed on a bare control plane (etcd, kube-apiserver, controller-manager, scheduler,
kwok; no add-ons, no third-party CRDs) as the seed's commands do: install, upgrade, rollback, test.

kwok marks pods Running and Ready without running containers, so the chart's manager and operator
pods never really run here. That the chart's operator reconciles the chart's AgentPools is shown
by running the operator as a process on loopback with the chart's own arguments and its
ServiceAccount's token: the RBAC the chart grants is exactly what it gets.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pweza.testing.platform import free_port
from tests.chart.conftest import (
    CHART,
    RELEASE,
    SYSTEM_NAMESPACE,
    Cluster,
    checks_by_name,
    doctor,
    eventually,
    start_control_plane,
)

pytestmark = [pytest.mark.chart, pytest.mark.timeout(600)]
AGENTS_NAMESPACE = "pweza-core-agents"


@dataclass
class Bare:
    cluster: Cluster
    doctor_before: list[dict[str, str]]  # `pweza doctor -f values-production.yaml` before anything is installed


@pytest.fixture(scope="module")
def bare() -> Iterator[Bare]:
    with start_control_plane() as cp:
        _, report = doctor(cp, "values-production.yaml")
        yield Bare(Cluster(cp), report)


@pytest.fixture(scope="module")
def release(bare: Bare) -> Iterator[Cluster]:
    """`helm install` as in the seed, with the default values (no add-on integrations) and the
    SQLite volume off (the test cluster has no storage provisioner) and the admission webhook off;
    then the `kubectl label` that NOTES.txt prints for the namespace Helm made. Helm installs the
    CRDs from the chart's crds/.

    The webhook is off because the API server would call it at the operator Service's ClusterIP,
    where nothing runs on kwok and which is no loopback address; with failurePolicy Fail the
    upgrade of the chart's AgentPool would be refused. tests/chart/test_webhook.py serves the
    certificate the chart makes, and tests/k8s/test_admission.py shows the API server calling the
    operator's webhook."""
    cluster = bare.cluster
    assert cluster.get("namespace", SYSTEM_NAMESPACE) is None
    assert cluster.get("crd", "agentpools.pweza.ai") is None
    result = cluster.helm(
        "install", RELEASE, str(CHART), "--namespace", SYSTEM_NAMESPACE, "--create-namespace",
        "--set", "manager.persistence.enabled=false", "--set", "admissionWebhook.enabled=false",
        "--wait", "--timeout", "120s",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "pweza-core 0.1.0 is installed as release pweza-core" in result.stdout  # NOTES.txt
    (label,) = [line.strip() for line in result.stdout.splitlines() if line.strip().startswith("kubectl label ")]
    cluster.cp.kubectl(*shlex.split(label)[1:])
    yield cluster


def release_status(cluster: Cluster) -> dict[str, Any]:
    result = cluster.helm("status", RELEASE, "--namespace", SYSTEM_NAMESPACE, "--output", "json")
    assert result.returncode == 0, result.stderr
    status: dict[str, Any] = json.loads(result.stdout)
    return status


def test_install_deploys_the_chart_with_wait(release: Cluster) -> None:
    status = release_status(release)
    assert (status["info"]["status"], status["version"]) == ("deployed", 1)
    for name in ("pweza-core-manager", "pweza-core-operator"):
        deployment = release.get("deployment", name, "-n", SYSTEM_NAMESPACE)
        assert deployment["status"]["readyReplicas"] == 1, name
    for namespace in ("pweza-core-agents", "pweza-core-data", "pweza-core-monitoring"):
        labels = release.get("namespace", namespace)["metadata"]["labels"]
        assert labels["name"] == namespace
        assert labels["app.kubernetes.io/managed-by"] == "Helm", "the release owns the chart's namespaces"
        assert labels["pod-security.kubernetes.io/enforce"] in ("restricted", "baseline", "privileged")
    system = release.get("namespace", SYSTEM_NAMESPACE)["metadata"]["labels"]
    assert system["name"] == SYSTEM_NAMESPACE  # Helm's --create-namespace sets it
    assert system["pod-security.kubernetes.io/enforce"] == "restricted"  # NOTES.txt's kubectl label
    pools = release.get("agentpools", "-n", AGENTS_NAMESPACE)
    assert [pool["metadata"]["name"] for pool in pools["items"]] == ["smoke"]


def operator_kubeconfig(cluster: Cluster, path: Path) -> Path:
    """A kubeconfig that authenticates as the chart's operator ServiceAccount."""
    token = cluster.cp.kubectl(
        "create", "token", "pweza-core-operator", "-n", SYSTEM_NAMESPACE, "--duration=1h"
    ).stdout.strip()
    config = json.loads(cluster.cp.kubeconfig.read_text())
    config["users"] = [{"name": "pweza-core-operator", "user": {"token": token}}]
    config["contexts"][0]["context"]["user"] = "pweza-core-operator"
    path.write_text(json.dumps(config))
    return path


def chart_operator_args(cluster: Cluster) -> list[str]:
    """The operator's arguments from the installed Deployment, for a run on loopback: no manager
    (its pod does not run on kwok), and local ports."""
    deployment = cluster.get("deployment", "pweza-core-operator", "-n", SYSTEM_NAMESPACE)
    args: list[str] = list(deployment["spec"]["template"]["spec"]["containers"][0]["args"])
    for flag in ("--manager-url", "--metrics-port", "--health-port", "--resync-seconds"):
        index = args.index(flag)
        del args[index : index + 2]
    return [*args, "--metrics-port", str(free_port()), "--health-port", str(free_port()), "--resync-seconds", "3"]


@pytest.fixture(scope="module")
def operator(release: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    workdir = tmp_path_factory.mktemp("operator")
    kubeconfig = operator_kubeconfig(release, workdir / "operator.kubeconfig")
    log = workdir / "operator.log"
    args = chart_operator_args(release)
    env = {**os.environ, "POD_NAMESPACE": SYSTEM_NAMESPACE, "POD_NAME": "chart-test-operator"}
    env.pop("PWEZA_MANAGER_TOKEN", None)
    with log.open("ab") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "pweza", *args, "--kubeconfig", str(kubeconfig), "--host", "127.0.0.1"],
            stdout=handle,
            stderr=handle,
            env=env,
        )
    try:
        yield log
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


def pool_ready(cluster: Cluster) -> bool:
    pool = cluster.get("agentpool", "smoke", "-n", AGENTS_NAMESPACE) or {}
    conditions = (pool.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def hpa_max(cluster: Cluster) -> int | None:
    hpa = cluster.get("hpa", "smoke-agents", "-n", AGENTS_NAMESPACE)
    return None if hpa is None else int(hpa["spec"]["maxReplicas"])


def test_the_chart_operator_reconciles_the_chart_agent_pools(release: Cluster, operator: Path) -> None:
    eventually(lambda: pool_ready(release), 60, "AgentPool smoke Ready")
    deployment = release.get("deployment", "smoke-agents", "-n", AGENTS_NAMESPACE)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][:3] == ["agent", "--pool", "smoke"]
    assert (
        container["args"][container["args"].index("--manager") + 1] == "pweza-core-manager.pweza-core-system.svc:9090"
    )
    assert container["image"] == "ghcr.io/pweza/pweza-core:0.1.0"
    # The pods got past Pod Security Admission at `restricted` in the agents' namespace.
    pods = release.get("pods", "-n", AGENTS_NAMESPACE, "-l", "pweza.ai/pool=smoke")
    assert [pod["status"]["phase"] for pod in pods["items"]] == ["Running"]
    assert eventually(lambda: hpa_max(release), 30, "the pool's HPA") == 3
    text = operator.read_text(errors="replace")
    assert "forbidden" not in text.lower(), text[-3000:]


def env_value(cluster: Cluster, deployment: str, name: str) -> str:
    found = cluster.get("deployment", deployment, "-n", SYSTEM_NAMESPACE)
    env = found["spec"]["template"]["spec"]["containers"][0]["env"]
    return str(next(e["value"] for e in env if e["name"] == name))


def test_upgrade_with_a_changed_value_and_rollback(release: Cluster, operator: Path) -> None:
    eventually(lambda: hpa_max(release) == 3, 60, "the pool's HPA before the upgrade")
    upgraded = release.helm(
        "upgrade", RELEASE, str(CHART), "--namespace", SYSTEM_NAMESPACE, "--reuse-values",
        "--set", "manager.logLevel=DEBUG", "--set", "agentPools.smoke.scaling.maxReplicas=5", "--wait", "--timeout", "120s",
    )  # fmt: skip
    # New manager pods, admitted by Pod Security Admission at `restricted` (--wait fails otherwise).
    assert upgraded.returncode == 0, upgraded.stderr
    assert release_status(release)["version"] == 2
    assert env_value(release, "pweza-core-manager", "LOG_LEVEL") == "DEBUG"
    eventually(lambda: hpa_max(release) == 5, 60, "the operator to follow the upgraded AgentPool")

    rolled_back = release.helm("rollback", RELEASE, "1", "--namespace", SYSTEM_NAMESPACE, "--wait", "--timeout", "120s")
    assert rolled_back.returncode == 0, rolled_back.stderr
    status = release_status(release)
    assert (status["version"], status["info"]["description"]) == (3, "Rollback to 1")
    assert env_value(release, "pweza-core-manager", "LOG_LEVEL") == "INFO"
    eventually(lambda: hpa_max(release) == 3, 60, "the operator to follow the rolled-back AgentPool")


def test_helm_test_runs_the_agent_workflow_and_integration_hooks(release: Cluster) -> None:
    # On kwok the Jobs' pods are marked Succeeded without running: this shows the hooks are
    # well-formed, admitted at `restricted`, ordered and awaited; a real cluster runs them.
    result = release.helm("test", RELEASE, "--namespace", SYSTEM_NAMESPACE, "--timeout", "120s")
    assert result.returncode == 0, result.stdout + result.stderr
    for job in ("pweza-core-agent-test", "pweza-core-workflow-test", "pweza-core-integration-test"):
        assert f"TEST SUITE:     {job}" in result.stdout
    assert result.stdout.count("Phase:          Succeeded") == 4  # the three Jobs and the workflow ConfigMap


def test_doctor_reports_what_the_bare_test_cluster_lacks(bare: Bare) -> None:
    checks = checks_by_name(bare.doctor_before)
    assert checks["Kubernetes version"]["status"] == "ok"
    for name in (
        "metrics-server (metrics.k8s.io/v1beta1)",
        "prometheus-adapter (custom.metrics.k8s.io/v1beta1)",
        "prometheus-operator (monitoring.coreos.com/v1)",
        "AlertmanagerConfig (monitoring.coreos.com/v1alpha1)",
        "Istio (networking.istio.io/v1)",
        "CloudNativePG (postgresql.cnpg.io/v1)",
        "Vertical Pod Autoscaler (autoscaling.k8s.io/v1)",
        "CSI driver ebs.csi.aws.com",
        "ingress class nginx",
    ):
        assert checks[name]["status"] == "fail", checks[name]
        assert checks[name]["fix"], f"{name} has no fix"
    assert checks["cert-manager (cert-manager.io/v1)"]["status"] == "skip", "production values do not use it"
    assert checks["kube-arangodb (database.arangodb.com/v1)"]["status"] == "skip", "the manager does not use ArangoDB"
    # Production keeps no data on a default-class volume, so a missing default class only warns.
    assert checks["default StorageClass"]["status"] == "warn"
    assert checks["namespace pweza-core-data"]["status"] == "ok"  # absent: the chart creates it
    system = checks["namespace pweza-core-system"]
    assert system["status"] == "warn" and "kubectl label namespace pweza-core-system" in system["fix"]
    assert checks["pweza.ai CRDs (pweza.ai/v1)"]["status"] == "ok"  # helm installs them


def test_doctor_after_the_install_finds_the_namespaces_labelled(release: Cluster) -> None:
    code, report = doctor(release.cp)  # the default values: they need metrics-server (the pool's HPA)
    checks = checks_by_name(report)
    for namespace in ("pweza-core-system", "pweza-core-agents", "pweza-core-data", "pweza-core-monitoring"):
        assert checks[f"namespace {namespace}"]["status"] == "ok", checks[f"namespace {namespace}"]
    assert checks["pweza.ai CRDs (pweza.ai/v1)"]["detail"] == "installed"
    assert checks["metrics-server (metrics.k8s.io/v1beta1)"]["status"] == "fail"
    assert checks["default StorageClass"]["status"] == "fail", "values.yaml keeps SQLite on a volume"
    assert code == 1
