"""The served APIs: the Kubernetes version, and the API groups the integrations that the values
switch on need (metrics-server, prometheus-adapter and -operator, Istio, kube-arangodb,
CloudNativePG, the VPA, cert-manager), each with why these values need it and how to install it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from pweza.cli.doctor.cluster import Cluster
from pweza.cli.doctor.results import Check, Status
from pweza.cli.doctor.values import database_mode, enabled, lookup

__all__ = ["APIS", "MIN_KUBERNETES", "check_apis", "check_version"]

MIN_KUBERNETES: Final = (1, 28)


@dataclass(frozen=True, slots=True)
class _Api:
    name: str
    group_version: str
    needed: Callable[[Mapping[str, Any]], str | None]  # why these values need it, or None
    fix: str


def _pools_scale(values: Mapping[str, Any]) -> bool:
    pools = lookup(values, "agentPools", default={}) or {}
    for spec in pools.values():
        scaling = (spec or {}).get("scaling") or {}
        if int(scaling.get("minReplicas", 1)) < int(scaling.get("maxReplicas", 1)):
            return True
    return False


def _metrics_needed(values: Mapping[str, Any]) -> str | None:
    reasons = []
    if enabled(values, "manager", "hpa"):
        reasons.append("the manager's HPA (CPU, memory)")
    if _pools_scale(values):
        reasons.append("the HPAs the operator makes for agent pools (CPU)")
    return " and ".join(reasons) or None


def _when(*paths: tuple[str, ...], reason: str) -> Callable[[Mapping[str, Any]], str | None]:
    def needed(values: Mapping[str, Any]) -> str | None:
        return reason if any(enabled(values, *path) for path in paths) else None

    return needed


def _custom_metrics_needed(values: Mapping[str, Any]) -> str | None:
    if enabled(values, "manager", "hpa") and enabled(values, "prometheusAdapter"):
        return "the HPA's Pods metric agent_coordination_requests_per_second"
    return None


def _backup_needed(values: Mapping[str, Any]) -> str | None:
    if enabled(values, "database", "arangodb") and enabled(values, "database", "backup"):
        return "database.backup (ArangoBackupPolicy)"
    return None


def _cnpg_needed(values: Mapping[str, Any]) -> str | None:
    return "database.mode=cloudnativepg (Cluster)" if database_mode(values) == "cloudnativepg" else None


def _cert_manager_needed(values: Mapping[str, Any]) -> str | None:
    if enabled(values, "tls") and enabled(values, "tls", "certManager"):
        return "tls.certManager (Certificate)"
    webhook = enabled(values, "operator") and enabled(values, "admissionWebhook")
    if webhook and enabled(values, "admissionWebhook", "certManager"):
        return "admissionWebhook.certManager (Certificate)"
    return None


APIS: Final = (
    _Api(
        "metrics-server",
        "metrics.k8s.io/v1beta1",
        _metrics_needed,
        "helm install metrics-server metrics-server/metrics-server -n kube-system "
        "(repo https://kubernetes-sigs.github.io/metrics-server/)",
    ),
    _Api(
        "prometheus-adapter",
        "custom.metrics.k8s.io/v1beta1",
        _custom_metrics_needed,
        "helm install prometheus-adapter prometheus-community/prometheus-adapter -n pweza-core-monitoring "
        "--set rules.existing=pweza-core-prometheus-adapter (or prometheusAdapter.enabled=false)",
    ),
    _Api(
        "prometheus-operator",
        "monitoring.coreos.com/v1",
        _when(
            ("monitoring", "serviceMonitor"),
            ("monitoring", "prometheusRule"),
            reason="monitoring.serviceMonitor / prometheusRule",
        ),
        "install prometheus-operator (e.g. the kube-prometheus-stack chart), or set "
        "monitoring.serviceMonitor.enabled=false and monitoring.prometheusRule.enabled=false",
    ),
    _Api(
        "AlertmanagerConfig",
        "monitoring.coreos.com/v1alpha1",
        _when(("monitoring", "alertmanagerConfig"), reason="monitoring.alertmanagerConfig"),
        "install prometheus-operator with its AlertmanagerConfig CRD, "
        "or set monitoring.alertmanagerConfig.enabled=false",
    ),
    _Api(
        "Istio",
        "networking.istio.io/v1",
        _when(("istio",), reason="istio (VirtualService, DestinationRule)"),
        "install Istio 1.22+ with its CNI node agent (istioctl install --set components.cni.enabled=true), "
        "or set istio.enabled=false",
    ),
    _Api(
        "kube-arangodb",
        "database.arangodb.com/v1",
        _when(("database", "arangodb"), reason="database.arangodb (ArangoDeployment)"),
        "install the kube-arangodb operator (helm install kube-arangodb "
        "https://github.com/arangodb/kube-arangodb/releases/download/1.4.4/kube-arangodb-1.4.4.tgz), "
        "or set database.arangodb.enabled=false",
    ),
    _Api(
        "ArangoDB backups",
        "backup.arangodb.com/v1",
        _backup_needed,
        "install kube-arangodb with its backup operator, or set database.backup.enabled=false",
    ),
    _Api(
        "CloudNativePG",
        "postgresql.cnpg.io/v1",
        _cnpg_needed,
        "install the CloudNativePG operator (helm install cnpg cnpg/cloudnative-pg -n cnpg-system "
        "--create-namespace, repo https://cloudnative-pg.github.io/charts), or choose another database.mode",
    ),
    _Api(
        "Vertical Pod Autoscaler",
        "autoscaling.k8s.io/v1",
        _when(("manager", "vpa"), reason="manager.vpa (VerticalPodAutoscaler)"),
        "install the VPA (kubernetes/autoscaler vertical-pod-autoscaler, ./hack/vpa-up.sh or its Helm chart), "
        "or set manager.vpa.enabled=false",
    ),
    _Api(
        "cert-manager",
        "cert-manager.io/v1",
        _cert_manager_needed,
        "install cert-manager (helm install cert-manager jetstack/cert-manager --set crds.enabled=true), "
        "or set tls.certManager.enabled=false and admissionWebhook.certManager.enabled=false",
    ),
)


def _parse_version(text: str) -> tuple[int, int] | None:
    core = text.lstrip("v").split("-", 1)[0].split("+", 1)[0].split(".")
    try:
        return int(core[0]), int(core[1])
    except (IndexError, ValueError):
        return None


def check_version(cluster: Cluster) -> Check:
    version = cluster.version()
    parsed = _parse_version(version)
    wanted = ".".join(map(str, MIN_KUBERNETES))
    if parsed is None:
        return Check("Kubernetes version", Status.WARN, f"cannot read the server version {version!r}")
    if parsed < MIN_KUBERNETES:
        return Check(
            "Kubernetes version",
            Status.FAIL,
            f"{version} is older than {wanted}",
            f"upgrade the cluster to Kubernetes {wanted} or newer (the chart needs Pod Security Admission, "
            "autoscaling/v2 and CEL validation in CRDs)",
        )
    return Check("Kubernetes version", Status.OK, f"{version} (>= {wanted})")


def check_apis(values: Mapping[str, Any], served: set[str]) -> list[Check]:
    checks = []
    for api in APIS:
        reason = api.needed(values)
        present = api.group_version in served
        name = f"{api.name} ({api.group_version})"
        if reason is None:
            state = "served" if present else "not served"
            checks.append(Check(name, Status.SKIP, f"not needed by these values ({state})"))
        elif present:
            checks.append(Check(name, Status.OK, f"served; needed by {reason}"))
        else:
            checks.append(Check(name, Status.FAIL, f"not served; needed by {reason}", api.fix))
    crds = "pweza.ai/v1" in served
    checks.append(
        Check(
            "pweza.ai CRDs (pweza.ai/v1)",
            Status.OK,
            "installed" if crds else "not installed yet: `helm install` installs them from the chart's crds/",
        )
    )
    return checks
