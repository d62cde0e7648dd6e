"""`pweza doctor`'s logic on a stand-in cluster (the real control plane is in test_cluster.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
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

pytestmark = pytest.mark.timeout(600)

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
    resources: dict[str, set[str]] = field(default_factory=dict)
    secrets: dict[tuple[str, str], set[str]] = field(default_factory=dict)
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

    def api_resources(self, group_version: str) -> set[str]:
        return self.resources.get(group_version, set())

    def secret_keys(self, namespace: str, name: str) -> set[str] | None:
        return self.secrets.get((namespace, name))

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
        "CloudNativePG (postgresql.cnpg.io/v1)",
        "Vertical Pod Autoscaler (autoscaling.k8s.io/v1)",
        "prometheus-operator (monitoring.coreos.com/v1)",
        "prometheus-adapter (custom.metrics.k8s.io/v1beta1)",
        "ingress class nginx",
        "CSI driver ebs.csi.aws.com",
    } <= failed
    assert all(checks[name].fix for name in failed)
    assert checks["kube-arangodb (database.arangodb.com/v1)"].status is Status.SKIP, "ArangoDB is off"


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


CNPG = "postgresql.cnpg.io/v1"
CNPG_KINDS = {"clusters", "scheduledbackups", "backups", "poolers"}


def test_arangodb_enabled_is_a_warning_that_the_manager_does_not_use_it() -> None:
    values = merge_values(load_values([], chart=CHART), {"database": {"arangodb": {"enabled": True}}})
    check = by_name(values, FakeCluster())["ArangoDB (database.arangodb)"]
    assert check.status is Status.WARN
    assert "does not use ArangoDB" in check.detail and check.fix == "set database.arangodb.enabled=false"
    assert "ArangoDB (database.arangodb)" not in by_name(load_values([], chart=CHART), FakeCluster())


def test_cloudnativepg_needs_the_operators_crds() -> None:
    production = load_values([CHART / "values-production.yaml"], chart=CHART)
    checks = by_name(production, FakeCluster())
    assert checks["CloudNativePG (postgresql.cnpg.io/v1)"].status is Status.FAIL
    assert "cloudnative-pg" in checks["CloudNativePG (postgresql.cnpg.io/v1)"].fix
    served = {"v1", "apps/v1", "metrics.k8s.io/v1beta1", CNPG}
    partial = by_name(production, FakeCluster(served=served, resources={CNPG: {"clusters"}}))
    assert partial["CloudNativePG (postgresql.cnpg.io/v1)"].status is Status.OK
    crds = partial["CloudNativePG CRDs"]
    assert crds.status is Status.FAIL and "ScheduledBackup" in crds.detail, "production takes scheduled backups"
    complete = by_name(production, FakeCluster(served=served, resources={CNPG: CNPG_KINDS}))
    assert complete["CloudNativePG CRDs"].status is Status.OK
    pooled = merge_values(production, {"database": {"cloudnativepg": {"pooler": {"enabled": True}}}})
    no_pooler = by_name(pooled, FakeCluster(served=served, resources={CNPG: CNPG_KINDS - {"poolers"}}))
    assert "Pooler" in no_pooler["CloudNativePG CRDs"].detail
    # The production class is the chart's own, so no default class is needed for the Cluster.
    assert complete["StorageClass pweza-core-gp3"].status is Status.OK


def test_external_needs_the_secret_and_its_key() -> None:
    values = merge_values(load_values([], chart=CHART), {"database": {"mode": "external", "existingSecret": "rds"}})
    absent = by_name(values, FakeCluster())["database Secret pweza-core-system/rds"]
    assert absent.status is Status.FAIL
    assert absent.fix.startswith("kubectl -n pweza-core-system create secret generic rds --from-literal=database-url=")
    wrong = by_name(values, FakeCluster(secrets={("pweza-core-system", "rds"): {"url"}}))
    assert wrong["database Secret pweza-core-system/rds"].status is Status.FAIL
    assert "has no key database-url (keys: url)" in wrong["database Secret pweza-core-system/rds"].detail
    right = by_name(values, FakeCluster(secrets={("pweza-core-system", "rds"): {"database-url"}}))
    assert right["database Secret pweza-core-system/rds"].status is Status.OK
    written = merge_values(load_values([], chart=CHART), {"database": {"mode": "external", "url": "postgresql://x"}})
    assert by_name(written, FakeCluster())["database Secret"].status is Status.OK


def test_bundled_needs_its_storage_class_or_a_default_one() -> None:
    bundled = merge_values(load_values([], chart=CHART), {"database": {"mode": "bundled"}})
    no_default = by_name(bundled, FakeCluster(classes=[("slow", False, "x")]))["default StorageClass"]
    assert no_default.status is Status.FAIL and "the bundled PostgreSQL's volume" in no_default.detail
    assert by_name(bundled, FakeCluster())["default StorageClass"].status is Status.OK
    named = merge_values(bundled, {"database": {"bundled": {"storageClassName": "local-pv"}}})
    missing = by_name(named, FakeCluster())["StorageClass local-pv"]
    assert missing.status is Status.FAIL and "database.bundled.storageClassName" in missing.fix
    present = by_name(named, FakeCluster(classes=[("local-pv", False, "kubernetes.io/no-provisioner")]))
    assert present["StorageClass local-pv"].status is Status.OK
    assert present["default StorageClass"].status is Status.WARN, "the named class is enough"
    created = merge_values(bundled, {"database": {"storageClass": {"create": True}}})
    assert by_name(created, FakeCluster())["StorageClass pweza-core-gp3"].status is Status.OK
