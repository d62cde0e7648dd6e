# The official Kubernetes client ships py.typed but leaves most of its functions unannotated.
# mypy: disable-error-code="no-untyped-call"
"""`pweza doctor`: does the cluster of the current kubeconfig have what the Helm chart needs?

The checks follow the chart's values (its values.yaml, then each ``--values`` file, merged as
Helm merges them): the Kubernetes version, the APIs of the integrations those values switch on
(metrics.k8s.io, custom.metrics.k8s.io, monitoring.coreos.com, networking.istio.io,
database.arangodb.com, backup.arangodb.com, postgresql.cnpg.io, autoscaling.k8s.io,
cert-manager.io), the ingress class, what the chosen database.mode needs (the CloudNativePG
kinds, the external database's Secret and key, the bundled PostgreSQL's StorageClass), a
default StorageClass and the CSI driver of the chart's own class, and the labels of the chart's
namespaces. Each failed check says how to fix it; an enabled ArangoDB, which the manager does
not use yet, is a warning.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from rich.table import Table

from pweza.cli.output import console, emit
from pweza.domain.errors import InvalidInput
from pweza.domain.safe_yaml import load_one

__all__ = [
    "BUILT_IN_DEFAULTS",
    "MIN_KUBERNETES",
    "Check",
    "Cluster",
    "Status",
    "check_database",
    "expected_namespace_labels",
    "load_values",
    "merge_values",
    "print_report",
    "run_checks",
]

MIN_KUBERNETES: Final = (1, 28)
DEFAULT_CHART: Final = Path("charts/pweza-core")

# What the checks read from the chart's values.yaml, for when the chart is not at hand
# (tests/chart/test_doctor.py keeps this in step with charts/pweza-core/values.yaml).
BUILT_IN_DEFAULTS: Final[Mapping[str, Any]] = {
    "namespace": {
        "create": True,
        "adoptReleaseNamespace": False,
        "system": "pweza-core-system",
        "agents": "pweza-core-agents",
        "data": "pweza-core-data",
        "monitoring": "pweza-core-monitoring",
        "podSecurity": {
            "system": {"enforce": "restricted"},
            "agents": {"enforce": "restricted"},
            "data": {"enforce": "baseline", "warn": "restricted"},
            "monitoring": {"enforce": "privileged", "warn": "baseline"},
        },
    },
    "manager": {
        "hpa": {"enabled": False},
        "vpa": {"enabled": False},
        "persistence": {"enabled": True, "storageClass": ""},
    },
    "database": {
        "mode": "sqlite",
        "existingSecret": "",
        "secretKey": "database-url",
        "bundled": {"storageClassName": ""},
        "cloudnativepg": {
            "storage": {"storageClass": ""},
            "backup": {"enabled": False},
            "pooler": {"enabled": False},
        },
        "arangodb": {"enabled": False},
        "storageClass": {"create": False, "name": "pweza-core-gp3", "provisioner": "ebs.csi.aws.com"},
        "backup": {"enabled": False},
    },
    "tls": {"enabled": False, "certManager": {"enabled": False}},
    "operator": {"enabled": True},
    # certManager.enabled None: as tls.certManager, which _cert_manager_needed checks first.
    "admissionWebhook": {"enabled": True, "certManager": {"enabled": None}},
    "agentPools": {"smoke": {"scaling": {"minReplicas": 1, "maxReplicas": 3}}},
    "monitoring": {
        "serviceMonitor": {"enabled": False},
        "prometheusRule": {"enabled": False},
        "alertmanagerConfig": {"enabled": False},
    },
    "prometheusAdapter": {"enabled": False},
    "ingress": {"enabled": False, "className": "nginx"},
    "istio": {"enabled": False, "injection": True},
}


class Status(enum.StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"check": self.name, "status": self.status.value, "detail": self.detail, "fix": self.fix}


# ---------------------------------------------------------------------------------------------
# values


def merge_values(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Helm's merge: maps merge key by key, anything else replaces, and null deletes the key."""
    merged: dict[str, Any] = dict(base)
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_values(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_values(files: Sequence[Path], chart: Path | None = None) -> dict[str, Any]:
    """The chart's values.yaml (or the built-in defaults), then each file in order."""
    chart_dir = chart if chart is not None else (DEFAULT_CHART if (DEFAULT_CHART / "values.yaml").exists() else None)
    values = _read_mapping(chart_dir / "values.yaml") if chart_dir else merge_values({}, BUILT_IN_DEFAULTS)
    for path in files:
        values = merge_values(values, _read_mapping(path))
    return values


def _read_mapping(path: Path) -> dict[str, Any]:
    try:
        loaded = load_one(path.read_bytes(), str(path))
    except OSError as error:
        raise ValueError(f"{path}: {error}") from None
    except InvalidInput as error:
        raise ValueError(error.detail) from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: expected a mapping of values")
    return loaded


def _get(values: Mapping[str, Any], *path: str, default: Any = None) -> Any:
    node: Any = values
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return default
        node = node[key]
    return node


def _enabled(values: Mapping[str, Any], *path: str) -> bool:
    return bool(_get(values, *path, "enabled", default=False))


# ---------------------------------------------------------------------------------------------
# the cluster


class Cluster:
    """The few read-only calls the checks make."""

    def __init__(self, api: Any) -> None:
        self._api = api

    @classmethod
    def connect(cls, kubeconfig: str | None, context: str | None) -> Cluster:
        if kubeconfig is None and context is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            configuration = client.Configuration()
            config.load_incluster_config(client_configuration=configuration)
            return cls(client.ApiClient(configuration))
        return cls(config.new_client_from_config(config_file=kubeconfig, context=context))

    def _plain(self, result: object) -> Any:
        """The JSON form of a client model: plain dicts and lists, as the API sent them."""
        return self._api.sanitize_for_serialization(result)

    def version(self) -> str:
        return str(self._plain(client.VersionApi(self._api).get_code(_request_timeout=10))["gitVersion"])

    def group_versions(self) -> set[str]:
        """Every served "group/version", the core "v1" included."""
        core = self._plain(client.CoreApi(self._api).get_api_versions(_request_timeout=10))
        groups = self._plain(client.ApisApi(self._api).get_api_versions(_request_timeout=10))
        served = {str(version) for version in core["versions"]}
        for group in groups["groups"]:
            served.update(str(version["groupVersion"]) for version in group["versions"])
        return served

    def storage_classes(self) -> list[tuple[str, bool, str]]:
        items = self._plain(client.StorageV1Api(self._api).list_storage_class(_request_timeout=10))["items"]
        result = []
        for item in items:
            annotations = item["metadata"].get("annotations") or {}
            default = "true" in (
                annotations.get("storageclass.kubernetes.io/is-default-class"),
                annotations.get("storageclass.beta.kubernetes.io/is-default-class"),
            )
            result.append((str(item["metadata"]["name"]), default, str(item["provisioner"])))
        return result

    def csi_drivers(self) -> set[str]:
        items = self._plain(client.StorageV1Api(self._api).list_csi_driver(_request_timeout=10))["items"]
        return {str(item["metadata"]["name"]) for item in items}

    def ingress_classes(self) -> set[str]:
        items = self._plain(client.NetworkingV1Api(self._api).list_ingress_class(_request_timeout=10))["items"]
        return {str(item["metadata"]["name"]) for item in items}

    def api_resources(self, group_version: str) -> set[str]:
        """The plural resource names a served "group/version" has (its CRDs' kinds, for a CRD group)."""
        group, version = group_version.split("/", 1)
        found = self._plain(client.CustomObjectsApi(self._api).get_api_resources(group, version, _request_timeout=10))
        return {str(item["name"]) for item in (found or {}).get("resources") or []}

    def secret_keys(self, namespace: str, name: str) -> set[str] | None:
        """The key names of a Secret (never its values), or None when it does not exist."""
        try:
            found = self._plain(
                client.CoreV1Api(self._api).read_namespaced_secret(name, namespace, _request_timeout=10)
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return set((found.get("data") or {}).keys())

    def namespace(self, name: str) -> tuple[dict[str, str], dict[str, str]] | None:
        """(labels, annotations) of a namespace, or None when it does not exist."""
        try:
            found = self._plain(client.CoreV1Api(self._api).read_namespace(name, _request_timeout=10))
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        metadata = found["metadata"]
        return dict(metadata.get("labels") or {}), dict(metadata.get("annotations") or {})


# ---------------------------------------------------------------------------------------------
# the checks


@dataclass(frozen=True, slots=True)
class _Api:
    name: str
    group_version: str
    needed: Callable[[Mapping[str, Any]], str | None]  # why these values need it, or None
    fix: str


def _pools_scale(values: Mapping[str, Any]) -> bool:
    pools = _get(values, "agentPools", default={}) or {}
    for spec in pools.values():
        scaling = (spec or {}).get("scaling") or {}
        if int(scaling.get("minReplicas", 1)) < int(scaling.get("maxReplicas", 1)):
            return True
    return False


def _metrics_needed(values: Mapping[str, Any]) -> str | None:
    reasons = []
    if _enabled(values, "manager", "hpa"):
        reasons.append("the manager's HPA (CPU, memory)")
    if _pools_scale(values):
        reasons.append("the HPAs the operator makes for agent pools (CPU)")
    return " and ".join(reasons) or None


def _when(*paths: tuple[str, ...], reason: str) -> Callable[[Mapping[str, Any]], str | None]:
    def needed(values: Mapping[str, Any]) -> str | None:
        return reason if any(_enabled(values, *path) for path in paths) else None

    return needed


def _custom_metrics_needed(values: Mapping[str, Any]) -> str | None:
    if _enabled(values, "manager", "hpa") and _enabled(values, "prometheusAdapter"):
        return "the HPA's Pods metric agent_coordination_requests_per_second"
    return None


def _backup_needed(values: Mapping[str, Any]) -> str | None:
    if _enabled(values, "database", "arangodb") and _enabled(values, "database", "backup"):
        return "database.backup (ArangoBackupPolicy)"
    return None


def _mode(values: Mapping[str, Any]) -> str:
    return str(_get(values, "database", "mode", default="sqlite"))


def _cnpg_needed(values: Mapping[str, Any]) -> str | None:
    return "database.mode=cloudnativepg (Cluster)" if _mode(values) == "cloudnativepg" else None


def _cert_manager_needed(values: Mapping[str, Any]) -> str | None:
    if _enabled(values, "tls") and _enabled(values, "tls", "certManager"):
        return "tls.certManager (Certificate)"
    webhook = _enabled(values, "operator") and _enabled(values, "admissionWebhook")
    if webhook and _enabled(values, "admissionWebhook", "certManager"):
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


def _database_storage_class(values: Mapping[str, Any], own: str) -> str:
    """The class a database volume asks for: its own value, else the chart's class when it
    creates one, else "" (the cluster's default) -- as the chart's databaseStorageClass helper."""
    if own:
        return own
    if _get(values, "database", "storageClass", "create"):
        return str(_get(values, "database", "storageClass", "name", default=""))
    return ""


def _database_volume(values: Mapping[str, Any]) -> tuple[str, str] | None:
    """(what, class) of the PostgreSQL volumes the chart renders in this mode, if any."""
    mode = _mode(values)
    if mode == "bundled":
        own = str(_get(values, "database", "bundled", "storageClassName", default="") or "")
        return "the bundled PostgreSQL's volume", _database_storage_class(values, own)
    if mode == "cloudnativepg":
        own = str(_get(values, "database", "cloudnativepg", "storage", "storageClass", default="") or "")
        return "the CloudNativePG volumes", _database_storage_class(values, own)
    return None


def check_storage(values: Mapping[str, Any], cluster: Cluster) -> list[Check]:
    classes = cluster.storage_classes()
    defaults = [name for name, default, _ in classes if default]
    persistence = (
        _mode(values) == "sqlite"
        and _enabled(values, "manager", "persistence")
        and not _get(values, "manager", "persistence", "storageClass")
    )
    own_class = _enabled(values, "database", "arangodb") and not _get(values, "database", "storageClass", "create")
    volume = _database_volume(values)
    database_volume = volume[0] if volume is not None and not volume[1] else ""
    needed = [
        reason
        for reason, wanted in (
            ("the manager's volume", persistence),
            ("the ArangoDB volumes", own_class),
            (database_volume, bool(database_volume)),
        )
        if wanted
    ]
    checks = []
    if defaults:
        checks.append(Check("default StorageClass", Status.OK, ", ".join(defaults)))
    else:
        names = ", ".join(name for name, _, _ in classes) or "none"
        why = f"; needed by {' and '.join(needed)}" if needed else "; PVCs without a class would stay Pending"
        checks.append(
            Check(
                "default StorageClass",
                Status.FAIL if needed else Status.WARN,
                f"none (classes: {names}){why}",
                "install a CSI driver and mark its class default: kubectl annotate storageclass NAME "
                "storageclass.kubernetes.io/is-default-class=true (or set manager.persistence.storageClass)",
            )
        )
    if volume and volume[1]:
        what, wanted = volume
        created = bool(_get(values, "database", "storageClass", "create")) and wanted == _get(
            values, "database", "storageClass", "name"
        )
        present = wanted in {name for name, _, _ in classes}
        name = f"StorageClass {wanted}"
        if created:
            checks.append(Check(name, Status.OK, f"the chart creates it (database.storageClass); for {what}"))
        elif present:
            checks.append(Check(name, Status.OK, f"present; for {what}"))
        else:
            checks.append(
                Check(
                    name,
                    Status.FAIL,
                    f"missing; {what} asks for it",
                    f"create StorageClass {wanted}, set database.storageClass.create=true, or name an existing "
                    "class (database.bundled.storageClassName / database.cloudnativepg.storage.storageClass)",
                )
            )
    if bool(_get(values, "database", "storageClass", "create")):
        provisioner = str(_get(values, "database", "storageClass", "provisioner", default=""))
        present = provisioner in cluster.csi_drivers()
        checks.append(
            Check(
                f"CSI driver {provisioner}",
                Status.OK if present else Status.FAIL,
                "registered" if present else "not registered; the chart's StorageClass uses it",
                ""
                if present
                else "install the AWS EBS CSI driver (EKS add-on aws-ebs-csi-driver), or set "
                "database.storageClass.provisioner / database.storageClass.create=false",
            )
        )
    return checks


_CNPG: Final = "postgresql.cnpg.io/v1"


def check_database(values: Mapping[str, Any], cluster: Cluster, served: set[str]) -> list[Check]:
    """What database.mode needs beyond the storage (check_storage) and the API (check_apis)."""
    checks: list[Check] = []
    mode = _mode(values)
    if _enabled(values, "database", "arangodb"):
        checks.append(
            Check(
                "ArangoDB (database.arangodb)",
                Status.WARN,
                "enabled, but the manager does not use ArangoDB yet: it would run a database nothing reads or writes",
                "set database.arangodb.enabled=false",
            )
        )
    if mode == "cloudnativepg" and _CNPG in served:
        wanted = {"clusters": "Cluster"}
        if _enabled(values, "database", "cloudnativepg", "backup"):
            wanted["scheduledbackups"] = "ScheduledBackup"
            wanted["backups"] = "Backup (made by the ScheduledBackup)"
        if _enabled(values, "database", "cloudnativepg", "pooler"):
            wanted["poolers"] = "Pooler"
        have = cluster.api_resources(_CNPG)
        missing = [kind for plural, kind in wanted.items() if plural not in have]
        checks.append(
            Check(
                "CloudNativePG CRDs",
                Status.FAIL if missing else Status.OK,
                f"missing: {', '.join(missing)}" if missing else ", ".join(sorted(wanted)),
                "install the CloudNativePG operator's CRDs (its Helm chart or release manifest)" if missing else "",
            )
        )
    elif mode == "external":
        secret = str(_get(values, "database", "existingSecret", default="") or "")
        key = str(_get(values, "database", "secretKey", default="database-url"))
        if not secret:
            checks.append(Check("database Secret", Status.OK, "the chart writes database.url to its own Secret"))
        else:
            namespace = str(_get(values, "namespace", "system", default="pweza-core-system"))
            keys = cluster.secret_keys(namespace, secret)
            name = f"database Secret {namespace}/{secret}"
            create = f"kubectl -n {namespace} create secret generic {secret} --from-literal={key}=postgresql://..."
            if keys is None:
                checks.append(Check(name, Status.FAIL, "absent: the manager cannot start without it", create))
            elif key not in keys:
                listed = ", ".join(sorted(keys)) or "none"
                checks.append(
                    Check(
                        name, Status.FAIL, f"has no key {key} (keys: {listed})", f"{create} (or set database.secretKey)"
                    )
                )
            else:
                checks.append(Check(name, Status.OK, f"has key {key}"))
    return checks


def check_ingress(values: Mapping[str, Any], cluster: Cluster) -> list[Check]:
    if not _enabled(values, "ingress"):
        return [Check("ingress class", Status.SKIP, "not needed by these values")]
    wanted = str(_get(values, "ingress", "className", default="nginx"))
    classes = cluster.ingress_classes()
    if wanted in classes:
        return [Check(f"ingress class {wanted}", Status.OK, "present")]
    return [
        Check(
            f"ingress class {wanted}",
            Status.FAIL,
            f"missing (classes: {', '.join(sorted(classes)) or 'none'})",
            "helm install ingress-nginx ingress-nginx/ingress-nginx -n ingress-nginx --create-namespace, "
            "or set ingress.className / ingress.enabled=false",
        )
    ]


def expected_namespace_labels(values: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """The labels the chart gives each of its namespaces (the seed's, plus Pod Security Admission)."""
    system = str(_get(values, "namespace", "system", default="pweza-core-system"))
    injected = _enabled(values, "istio") and bool(_get(values, "istio", "injection", default=True))
    istio = "enabled" if injected else "disabled"
    result: dict[str, dict[str, str]] = {}
    for key in ("system", "agents", "data", "monitoring"):
        name = str(_get(values, "namespace", key, default="") or system)
        enforce = str(_get(values, "namespace", "podSecurity", key, "enforce", default="restricted"))
        result.setdefault(name, {"name": name, "istio-injection": istio, "pod-security.kubernetes.io/enforce": enforce})
    return result


def check_namespaces(values: Mapping[str, Any], cluster: Cluster, release_namespace: str | None = None) -> list[Check]:
    """The chart renders (so labels) its namespaces, except the release's own (Helm's, or yours)
    unless namespace.adoptReleaseNamespace; those it does not render need the labels set by hand."""
    create = bool(_get(values, "namespace", "create", default=True))
    adopt = bool(_get(values, "namespace", "adoptReleaseNamespace", default=False))
    release = release_namespace or str(_get(values, "namespace", "system", default="pweza-core-system"))
    checks = []
    for name, labels in expected_namespace_labels(values).items():
        rendered = create and (name != release or adopt)
        found = cluster.namespace(name)
        wanted = " ".join(f"{k}={v}" for k, v in labels.items())
        label = f"kubectl label namespace {name} --overwrite {wanted}"
        check = f"namespace {name}"
        if found is None:
            if rendered:
                checks.append(Check(check, Status.OK, "absent; the chart creates it with its labels"))
            elif create:
                checks.append(
                    Check(
                        check,
                        Status.WARN,
                        "absent; `helm install --create-namespace` makes it without the chart's labels",
                        f"kubectl create namespace {name} && {label}",
                    )
                )
            else:
                checks.append(
                    Check(
                        check,
                        Status.FAIL,
                        "absent, and namespace.create=false",
                        f"kubectl create namespace {name} && {label}",
                    )
                )
            continue
        have, annotations = found
        wrong = {k: v for k, v in labels.items() if have.get(k) != v}
        owned = "meta.helm.sh/release-name" in annotations
        detail = (
            "labels differ: " + ", ".join(f"{k}={have.get(k, '<unset>')} (want {v})" for k, v in wrong.items())
            if wrong
            else "labels as the chart sets them"
        )
        if rendered and not owned:
            checks.append(
                Check(
                    check,
                    Status.WARN,
                    f"{detail}; exists without Helm's ownership, which the chart needs",
                    "install with --take-ownership",
                )
            )
        elif not wrong:
            checks.append(Check(check, Status.OK, detail))
        elif rendered:
            checks.append(Check(check, Status.WARN, f"{detail}; `helm upgrade` with these values sets them"))
        else:
            fix = f"kubectl label namespace {name} --overwrite " + " ".join(f"{k}={v}" for k, v in wrong.items())
            checks.append(Check(check, Status.FAIL, detail, fix))
    return checks


def run_checks(values: Mapping[str, Any], cluster: Cluster, release_namespace: str | None = None) -> list[Check]:
    """Every check, in the order the table shows them; no exception escapes for an API failure."""
    checks: list[Check] = []
    try:
        checks.append(check_version(cluster))
    except Exception as error:  # noqa: BLE001 - any failure here means the cluster is unreachable
        return [
            Check(
                "cluster reachable",
                Status.FAIL,
                f"{type(error).__name__}: {error}".splitlines()[0][:200],
                "check the kubeconfig and its current context (kubectl cluster-info), or pass --kubeconfig/--context",
            )
        ]
    steps: Iterable[tuple[str, Callable[[], list[Check]]]] = (
        ("APIs", lambda: check_apis(values, cluster.group_versions())),
        ("storage", lambda: check_storage(values, cluster)),
        ("database", lambda: check_database(values, cluster, cluster.group_versions())),
        ("ingress", lambda: check_ingress(values, cluster)),
        ("namespaces", lambda: check_namespaces(values, cluster, release_namespace)),
    )
    for what, step in steps:
        try:
            checks.extend(step())
        except ApiException as error:
            checks.append(
                Check(
                    what,
                    Status.FAIL,
                    f"the API refused: HTTP {error.status} {error.reason}",
                    "run doctor with a kubeconfig that may read cluster-wide objects (e.g. the view ClusterRole)",
                )
            )
    return checks


_STYLE: Final = {Status.OK: "green", Status.WARN: "yellow", Status.FAIL: "bold red", Status.SKIP: "dim"}


def print_report(checks: Sequence[Check], output: str = "table") -> int:
    """Print the checks (a table, or JSON) and return the exit code: 1 when any check failed."""
    if output == "json":
        emit([check.as_dict() for check in checks], "json")
    else:
        grid = Table(header_style="bold", show_lines=False)
        for column in ("CHECK", "STATUS", "DETAIL", "FIX"):
            grid.add_column(column, overflow="fold")
        for check in checks:
            style = _STYLE[check.status]
            grid.add_row(check.name, f"[{style}]{check.status.value}[/{style}]", check.detail, check.fix)
        console.print(grid)
        failed = sum(1 for check in checks if check.status is Status.FAIL)
        console.print(f"{failed} check(s) failed" if failed else "[green]ready for the chart[/green]")
    return 1 if any(check.status is Status.FAIL for check in checks) else 0
