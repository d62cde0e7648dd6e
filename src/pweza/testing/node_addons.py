"""The kube-system objects of the real test node: CoreDNS and metrics-server, run as pods.

CoreDNS serves ``cluster.local`` and the reverse zones from the apiserver and has no ``forward``
plugin: a name outside the cluster gets REFUSED at once, so no lookup ever leaves the machine.
metrics-server reads the kubelet's resource metrics at its InternalIP, verifying the kubelet's
serving certificate against the test CA, and serves ``v1beta1.metrics.k8s.io`` with a certificate
from that CA too (no ``insecureSkipTLSVerify`` anywhere).
"""

from __future__ import annotations

import base64
from typing import Any, Final

__all__ = ["CLUSTER_DNS_IP", "addon_objects"]

CLUSTER_DNS_IP: Final = "10.96.0.10"
_NAMESPACE: Final = "kube-system"
# Unprivileged ports inside the pods; the Services map the well-known ones onto them.
_DNS_PORT: Final = 1053
_METRICS_PORT: Final = 4443
_MS: Final = "metrics-server"

_COREFILE: Final = f""".:{_DNS_PORT} {{
    errors
    health :8080
    ready :8181
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }}
    cache 30
    loop
    reload
    loadbalance
}}
"""

_RESTRICTED: Final = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def _meta(name: str, **labels: str) -> dict[str, Any]:
    return {"name": name, "namespace": _NAMESPACE, "labels": {"k8s-app": name, **labels}}


def _cluster_role(name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name},
        "rules": rules,
    }


def _binding(kind: str, name: str, role_kind: str, role: str, account: str) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if kind == "RoleBinding":
        metadata["namespace"] = _NAMESPACE
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": metadata,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": _NAMESPACE}],
    }


def _deployment(
    name: str, container: dict[str, Any], volumes: list[dict[str, Any]], account: str, app: str | None = None
) -> dict[str, Any]:
    app = app or name
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(name),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"k8s-app": app}},
            "template": {
                "metadata": {"labels": {"k8s-app": app}},
                "spec": {
                    "serviceAccountName": account,
                    "priorityClassName": "system-cluster-critical",
                    # CoreDNS cannot use itself to find the apiserver; neither needs to.
                    "dnsPolicy": "Default",
                    "containers": [{"imagePullPolicy": "IfNotPresent", "securityContext": _RESTRICTED, **container}],
                    "volumes": volumes,
                },
            },
        },
    }


def _coredns(image: str) -> list[dict[str, Any]]:
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta("coredns")},
        _cluster_role(
            "system:coredns",
            [
                {
                    "apiGroups": [""],
                    "resources": ["endpoints", "services", "pods", "namespaces"],
                    "verbs": ["list", "watch"],
                },
                {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
            ],
        ),
        _binding("ClusterRoleBinding", "system:coredns", "ClusterRole", "system:coredns", "coredns"),
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta("coredns"), "data": {"Corefile": _COREFILE}},
        _deployment(
            "coredns",
            {
                "name": "coredns",
                "image": image,
                "args": ["-conf", "/etc/coredns/Corefile"],
                "ports": [
                    {"name": "dns", "containerPort": _DNS_PORT, "protocol": "UDP"},
                    {"name": "dns-tcp", "containerPort": _DNS_PORT, "protocol": "TCP"},
                ],
                "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181}, "periodSeconds": 2},
                "livenessProbe": {"httpGet": {"path": "/health", "port": 8080}, "periodSeconds": 10},
                "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
                "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns", "readOnly": True}],
            },
            [{"name": "config", "configMap": {"name": "coredns"}}],
            "coredns",
            # The label a cluster's DNS pods carry (NetworkPolicies often select them by it).
            app="kube-dns",
        ),
        {
            "apiVersion": "v1",
            "kind": "Service",
            # The name and label a cluster's DNS has (NetworkPolicies select kube-dns pods so).
            "metadata": {**_meta("kube-dns"), "labels": {"k8s-app": "kube-dns"}},
            "spec": {
                "clusterIP": CLUSTER_DNS_IP,
                "selector": {"k8s-app": "kube-dns"},
                "ports": [
                    {"name": "dns", "port": 53, "targetPort": _DNS_PORT, "protocol": "UDP"},
                    {"name": "dns-tcp", "port": 53, "targetPort": _DNS_PORT, "protocol": "TCP"},
                ],
            },
        },
    ]


def _metrics_server(image: str, cert: str, key: str, ca_bundle: str) -> list[dict[str, Any]]:
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta("metrics-server")},
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": _meta("metrics-server-tls"),
            "type": "kubernetes.io/tls",
            "stringData": {"tls.crt": cert, "tls.key": key},
        },
        _cluster_role(
            "system:metrics-server",
            [
                {"apiGroups": [""], "resources": ["nodes/metrics"], "verbs": ["get"]},
                {"apiGroups": [""], "resources": ["pods", "nodes"], "verbs": ["get", "list", "watch"]},
            ],
        ),
        _binding("ClusterRoleBinding", "system:metrics-server", "ClusterRole", "system:metrics-server", _MS),
        _binding(
            "ClusterRoleBinding", "metrics-server:system:auth-delegator", "ClusterRole", "system:auth-delegator", _MS
        ),
        _binding("RoleBinding", "metrics-server-auth-reader", "Role", "extension-apiserver-authentication-reader", _MS),
        _deployment(
            "metrics-server",
            {
                "name": "metrics-server",
                "image": image,
                "args": [
                    f"--secure-port={_METRICS_PORT}",
                    "--tls-cert-file=/etc/metrics-server/tls.crt",
                    "--tls-private-key-file=/etc/metrics-server/tls.key",
                    "--kubelet-certificate-authority=/etc/kubelet-ca/ca.crt",
                    "--kubelet-preferred-address-types=InternalIP",
                    "--kubelet-use-node-status-port",
                    "--metric-resolution=15s",
                ],
                "ports": [{"name": "https", "containerPort": _METRICS_PORT, "protocol": "TCP"}],
                "readinessProbe": {
                    "httpGet": {"path": "/readyz", "port": "https", "scheme": "HTTPS"},
                    "periodSeconds": 5,
                },
                "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
                "volumeMounts": [
                    {"name": "tls", "mountPath": "/etc/metrics-server", "readOnly": True},
                    {"name": "kubelet-ca", "mountPath": "/etc/kubelet-ca", "readOnly": True},
                    {"name": "tmp", "mountPath": "/tmp"},
                ],
            },
            [
                {"name": "tls", "secret": {"secretName": "metrics-server-tls"}},
                # The cluster CA, which signed the kubelet's serving certificate.
                {"name": "kubelet-ca", "configMap": {"name": "kube-root-ca.crt"}},
                {"name": "tmp", "emptyDir": {}},
            ],
            "metrics-server",
        ),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta("metrics-server"),
            "spec": {
                "selector": {"k8s-app": "metrics-server"},
                "ports": [{"name": "https", "port": 443, "targetPort": "https", "protocol": "TCP"}],
            },
        },
        {
            "apiVersion": "apiregistration.k8s.io/v1",
            "kind": "APIService",
            "metadata": {"name": "v1beta1.metrics.k8s.io", "labels": {"k8s-app": "metrics-server"}},
            "spec": {
                "group": "metrics.k8s.io",
                "version": "v1beta1",
                "service": {"name": "metrics-server", "namespace": _NAMESPACE, "port": 443},
                "caBundle": base64.b64encode(ca_bundle.encode()).decode(),
                "groupPriorityMinimum": 100,
                "versionPriority": 100,
            },
        },
    ]


def addon_objects(
    *, coredns_image: str, metrics_image: str, metrics_cert: str, metrics_key: str, ca_bundle: str
) -> list[dict[str, Any]]:
    """Every kube-system object of the node's add-ons, for one ``kubectl apply``."""
    return [*_coredns(coredns_image), *_metrics_server(metrics_image, metrics_cert, metrics_key, ca_bundle)]
