"""`pweza doctor`'s logic on a stand-in cluster (the real control plane is in test_cluster.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes.client.exceptions import ApiException

from pweza.cli.doctor import (
    BUILT_IN_DEFAULTS,
    Status,
    expected_namespace_labels,
    load_values,
    merge_values,
    run_checks,
)

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "pweza-core"


@dataclass
class FakeCluster:
    git_version: str = "v1.30.4"
    served: set[str] = field(default_factory=lambda: {"v1", "apps/v1", "metrics.k8s.io/v1beta1"})
    classes: list[tuple[str, bool, str]] = field(default_factory=lambda: [("standard", True, "rancher.io/local-path")])
    drivers: set[str] = field(default_factory=set)
    ingress: set[str] = field(default_factory=set)
    namespaces: dict[str, tuple[dict[str, str], dict[str, str]]] = field(default_factory=dict)
    unreachable: bool = False
    forbid_storage: bool = False

    def version(self) -> str:
        if self.unreachable:
            raise ConnectionRefusedError("[Errno 111] Connection refused")
        return self.git_version

    def group_versions(self) -> set[str]:
        return self.served

    def storage_classes(self) -> list[tuple[str, bool, str]]:
        if self.forbid_storage:
            raise ApiException(status=403, reason="Forbidden")
        return self.classes

    def csi_drivers(self) -> set[str]:
        return self.drivers

    def ingress_classes(self) -> set[str]:
        return self.ingress

    def namespace(self, name: str) -> tuple[dict[str, str], dict[str, str]] | None:
        return self.namespaces.get(name)


def by_name(values: dict[str, Any], cluster: FakeCluster) -> dict[str, Any]:
    return {check.name: check for check in run_checks(values, cluster)}  # type: ignore[arg-type]


def test_built_in_defaults_agree_with_the_charts_values_yaml() -> None:
    chart = yaml.safe_load((CHART / "values.yaml").read_text())

    def pick(source: Any, shape: Any) -> Any:
        if isinstance(shape, dict) and isinstance(source, dict):
            return {key: pick(source.get(key), value) for key, value in shape.items()}
        return source

    expected = dict(BUILT_IN_DEFAULTS)
    # The built-in pools only keep their scaling (what decides whether HPAs, so metrics-server, are needed).
    assert pick(chart, {k: v for k, v in expected.items() if k != "agentPools"}) == {
        k: v for k, v in expected.items() if k != "agentPools"
    }
    assert {name: {"scaling": {k: spec["scaling"][k] for k in ("minReplicas", "maxReplicas")}}
            for name, spec in chart["agentPools"].items()} == expected["agentPools"]  # fmt: skip


def test_values_merge_like_helm(tmp_path: Path) -> None:
    assert merge_values({"a": {"b": 1, "c": [1]}, "d": 1}, {"a": {"c": [2]}, "d": None}) == {"a": {"b": 1, "c": [2]}}
    override = tmp_path / "mine.yaml"
    override.write_text("istio: {enabled: true}\nagentPools: {smoke: null}\n")
    values = load_values([override], chart=CHART)
    assert values["istio"]["enabled"] is True and values["agentPools"] == {}
    assert load_values([], chart=None)["namespace"]["system"] in ("pweza-core-system",)


def test_a_cluster_older_than_1_28_fails() -> None:
    checks = by_name(merge_values({}, BUILT_IN_DEFAULTS), FakeCluster(git_version="v1.27.9-eks-1"))
    assert checks["Kubernetes version"].status is Status.FAIL
    assert "1.28" in checks["Kubernetes version"].fix


def test_an_unreachable_cluster_is_one_failed_check_with_a_fix() -> None:
    checks = run_checks(merge_values({}, BUILT_IN_DEFAULTS), FakeCluster(unreachable=True))  # type: ignore[arg-type]
    assert [(c.name, c.status) for c in checks] == [("cluster reachable", Status.FAIL)]
    assert "kubeconfig" in checks[0].fix


def test_only_the_apis_the_values_need_are_required() -> None:
    values = load_values([], chart=CHART)
    checks = by_name(values, FakeCluster())
    assert checks["metrics-server (metrics.k8s.io/v1beta1)"].status is Status.OK  # the smoke pool scales 1..3
    assert checks["Istio (networking.istio.io/v1)"].status is Status.SKIP
    production = load_values([CHART / "values-production.yaml"], chart=CHART)
    checks = by_name(production, FakeCluster())
    failed = {name for name, check in checks.items() if check.status is Status.FAIL}
    assert {
        "Istio (networking.istio.io/v1)",
        "kube-arangodb (database.arangodb.com/v1)",
        "Vertical Pod Autoscaler (autoscaling.k8s.io/v1)",
        "prometheus-operator (monitoring.coreos.com/v1)",
        "prometheus-adapter (custom.metrics.k8s.io/v1beta1)",
        "ingress class nginx",
        "CSI driver ebs.csi.aws.com",
    } <= failed
    assert all(checks[name].fix for name in failed)


def test_the_webhook_certificate_from_cert_manager_needs_cert_manager() -> None:
    name = "cert-manager (cert-manager.io/v1)"
    assert by_name(load_values([], chart=CHART), FakeCluster())[name].status is Status.SKIP  # Helm makes it
    values = merge_values(load_values([], chart=CHART), {"admissionWebhook": {"certManager": {"enabled": True}}})
    check = by_name(values, FakeCluster())[name]
    assert check.status is Status.FAIL
    assert "admissionWebhook.certManager" in check.detail + check.fix


def test_no_default_storage_class_fails_when_the_manager_needs_a_volume() -> None:
    checks = by_name(load_values([], chart=CHART), FakeCluster(classes=[("slow", False, "x")]))
    assert checks["default StorageClass"].status is Status.FAIL
    assert "is-default-class=true" in checks["default StorageClass"].fix


def test_namespace_labels_are_checked() -> None:
    values = load_values([CHART / "values-production.yaml"], chart=CHART)
    expected = expected_namespace_labels(values)
    assert expected["pweza-core-system"] == {
        "name": "pweza-core-system",
        "istio-injection": "enabled",
        "pod-security.kubernetes.io/enforce": "restricted",
    }
    owned = {"meta.helm.sh/release-name": "pweza-core"}
    # Before the install: the release's namespace does not exist, helm will make it unlabelled.
    checks = by_name(values, FakeCluster())
    assert checks["namespace pweza-core-system"].status is Status.WARN
    assert "kubectl label namespace pweza-core-system --overwrite" in checks["namespace pweza-core-system"].fix
    assert checks["namespace pweza-core-data"].status is Status.OK  # the chart creates it
    # After it: helm made the release's namespace with only `name`; the chart owns the others.
    cluster = FakeCluster(
        namespaces={
            "pweza-core-system": ({"name": "pweza-core-system"}, {}),
            "pweza-core-agents": (dict(expected["pweza-core-agents"]), owned),
            "pweza-core-data": ({"name": "pweza-core-data"}, owned),
            "pweza-core-monitoring": (dict(expected["pweza-core-monitoring"]), {}),
        }
    )
    checks = by_name(values, cluster)
    system = checks["namespace pweza-core-system"]
    assert system.status is Status.FAIL, "nothing but you labels the release's own namespace"
    assert "istio-injection=<unset> (want enabled)" in system.detail
    assert system.fix.startswith("kubectl label namespace pweza-core-system --overwrite istio-injection=enabled")
    assert checks["namespace pweza-core-agents"].status is Status.OK
    assert checks["namespace pweza-core-data"].status is Status.WARN  # an upgrade relabels it
    monitoring = checks["namespace pweza-core-monitoring"]
    assert monitoring.status is Status.WARN and monitoring.fix == "install with --take-ownership"

    unmanaged = merge_values(values, {"namespace": {"create": False}})
    checks = by_name(unmanaged, FakeCluster())
    assert checks["namespace pweza-core-data"].status is Status.FAIL
    assert checks["namespace pweza-core-data"].fix.startswith("kubectl create namespace pweza-core-data")


def test_a_refused_api_call_becomes_a_failed_check() -> None:
    checks = by_name(load_values([], chart=CHART), FakeCluster(forbid_storage=True))
    assert checks["storage"].status is Status.FAIL and "403" in checks["storage"].detail
