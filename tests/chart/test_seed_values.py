"""values-production.yaml renders the seed's concrete values (shared/seed/kubernetes-infrastructure.md).

The seed's objects are quoted here as it wrote them; where the chart departs from them on
purpose (docs/chart.md, "What differs from the seed") the test says so next to the assertion.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.chart.conftest import Rendered, render

pytestmark = [pytest.mark.chart, pytest.mark.timeout(600)]

SEED_HPA_SPEC = yaml.safe_load("""
scaleTargetRef:
  apiVersion: apps/v1
  kind: Deployment
  name: pweza-core-manager
minReplicas: 3
maxReplicas: 20
metrics:
- type: Resource
  resource:
    name: cpu
    target:
      type: Utilization
      averageUtilization: 70
- type: Resource
  resource:
    name: memory
    target:
      type: Utilization
      averageUtilization: 80
- type: Pods
  pods:
    metric:
      name: agent_coordination_requests_per_second
    target:
      type: AverageValue
      averageValue: "100"
behavior:
  scaleUp:
    stabilizationWindowSeconds: 60
    policies:
    - type: Percent
      value: 100
      periodSeconds: 15
  scaleDown:
    stabilizationWindowSeconds: 300
    policies:
    - type: Percent
      value: 10
      periodSeconds: 60
""")

SEED_VPA_SPEC = yaml.safe_load("""
targetRef:
  apiVersion: apps/v1
  kind: Deployment
  name: pweza-core-manager
updatePolicy:
  updateMode: "Auto"
resourcePolicy:
  containerPolicies:
  - containerName: manager
    minAllowed:
      cpu: 100m
      memory: 256Mi
    maxAllowed:
      cpu: 2000m
      memory: 4Gi
    controlledResources: ["cpu", "memory"]
""")

SEED_NETWORK_POLICY_SPEC = yaml.safe_load("""
podSelector:
  matchLabels:
    app: pweza-core-manager
policyTypes:
- Ingress
- Egress
ingress:
- from:
  - namespaceSelector:
      matchLabels:
        name: pweza-core-agents
  - namespaceSelector:
      matchLabels:
        name: istio-system
  ports:
  - protocol: TCP
    port: 8080
  - protocol: TCP
    port: 9090
egress:
- to:
  - namespaceSelector:
      matchLabels:
        name: pweza-core-data
  ports:
  - protocol: TCP
    port: 8529
- to: []
  ports:
  - protocol: TCP
    port: 443
  - protocol: TCP
    port: 53
  - protocol: UDP
    port: 53
""")

SEED_SERVICE_MONITOR_SPEC = yaml.safe_load("""
selector:
  matchLabels:
    app: pweza-core-manager
endpoints:
- port: metrics
  interval: 30s
  path: /metrics
  honorLabels: true
""")


@pytest.fixture(scope="module")
def production() -> Rendered:
    return render("values-production.yaml")


def pod_spec(rendered: Rendered, name: str) -> dict[str, Any]:
    spec: dict[str, Any] = rendered.one("Deployment", name)["spec"]["template"]["spec"]
    return spec


def test_manager_deployment_has_the_seeds_ports_env_probes_security_and_mounts(production: Rendered) -> None:
    deployment = production.one("Deployment", "pweza-core-manager")
    assert deployment["metadata"]["namespace"] == "pweza-core-system"
    assert deployment["spec"]["selector"] == {"matchLabels": {"app": "pweza-core-manager"}}
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert labels["app"] == "pweza-core-manager" and labels["version"] == "0.1.0"
    # Departure: with the HPA on, replicas are the HPA's (an upgrade must not reset them).
    assert "replicas" not in deployment["spec"]
    pod = pod_spec(production, "pweza-core-manager")
    assert pod["serviceAccountName"] == "pweza-core-manager"
    security = pod["securityContext"]
    assert (security["runAsNonRoot"], security["runAsUser"], security["fsGroup"]) == (True, 1000, 2000)
    (container,) = pod["containers"]
    assert container["name"] == "manager"
    assert container["ports"] == [
        {"name": "http", "containerPort": 8080, "protocol": "TCP"},
        {"name": "grpc", "containerPort": 9090, "protocol": "TCP"},
        {"name": "metrics", "containerPort": 2112, "protocol": "TCP"},
    ]
    env = {e["name"]: e for e in container["env"]}
    # Departure: the seed's pweza-core-secrets is the Secret CloudNativePG writes for its Cluster.
    assert env["DATABASE_URL"]["valueFrom"] == {"secretKeyRef": {"name": "pweza-core-postgres-app", "key": "uri"}}
    assert env["LOG_LEVEL"]["value"] == "INFO"
    assert env["METRICS_ENABLED"]["value"] == "true"
    assert env["PWEZA_HOST"]["value"] == "0.0.0.0", "the manager binds 127.0.0.1 unless told otherwise"
    assert container["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "http", "scheme": "HTTP"}
    assert (container["livenessProbe"]["initialDelaySeconds"], container["livenessProbe"]["periodSeconds"]) == (30, 10)
    assert container["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http", "scheme": "HTTP"}
    assert (container["readinessProbe"]["initialDelaySeconds"], container["readinessProbe"]["periodSeconds"]) == (5, 5)
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["config"] == {"name": "config", "mountPath": "/etc/pweza-core", "readOnly": True}
    assert mounts["tls-certs"] == {"name": "tls-certs", "mountPath": "/etc/ssl/certs", "readOnly": True}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["config"]["configMap"] == {"name": "pweza-core-config"}
    assert volumes["tls-certs"]["secret"] == {"secretName": "pweza-core-tls"}
    assert container["resources"]["requests"] and container["resources"]["limits"]


def test_hpa_is_the_seeds(production: Rendered) -> None:
    hpa = production.one("HorizontalPodAutoscaler", "pweza-core-manager-hpa")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["metadata"]["namespace"] == "pweza-core-system"
    assert hpa["spec"] == SEED_HPA_SPEC


def test_vpa_has_the_seeds_bounds_and_recommends_only(production: Rendered) -> None:
    vpa = production.one("VerticalPodAutoscaler", "pweza-core-manager-vpa")
    assert vpa["apiVersion"] == "autoscaling.k8s.io/v1"
    assert vpa["metadata"]["namespace"] == "pweza-core-system"
    # Departure: "Off" (recommendations only) rather than "Auto", so the VPA does not fight the
    # HPA scaling the same Deployment on CPU and memory; the seed's Auto renders when asked.
    assert vpa["spec"]["updatePolicy"] == {"updateMode": "Off"}
    assert {**vpa["spec"], "updatePolicy": {"updateMode": "Auto"}} == SEED_VPA_SPEC


def test_network_policy_is_the_seeds_with_egress_to_the_database_it_uses(production: Rendered) -> None:
    policy = production.one("NetworkPolicy", "pweza-core-system-policy")
    assert policy["metadata"]["namespace"] == "pweza-core-system"
    assert {k: v for k, v in policy["spec"].items() if k != "egress"} == {
        k: v for k, v in SEED_NETWORK_POLICY_SPEC.items() if k != "egress"
    }
    # Departure: the seed's egress went to ArangoDB (8529), which the manager does not use, and
    # to 443 anywhere, which it does not call. It reaches its PostgreSQL (the CloudNativePG
    # instances) and DNS in kube-system, nothing else.
    assert policy["spec"]["egress"] == [
        {
            "to": [{"podSelector": {"matchLabels": {"cnpg.io/cluster": "pweza-core-postgres"}}}],
            "ports": [{"protocol": "TCP", "port": 5432}],
        },
        {
            "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}],
            "ports": [{"protocol": "TCP", "port": 53}, {"protocol": "UDP", "port": 53}],
        },
    ]


def test_service_monitor_is_the_seeds(production: Rendered) -> None:
    monitor = production.one("ServiceMonitor", "pweza-core-manager")
    assert monitor["metadata"]["namespace"] == "pweza-core-system"
    assert monitor["metadata"]["labels"]["app"] == "pweza-core-manager"
    assert monitor["spec"] == SEED_SERVICE_MONITOR_SPEC
    service = production.one("Service", "pweza-core-manager")
    assert service["metadata"]["labels"]["app"] == "pweza-core-manager", "the ServiceMonitor selects the Service"
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == {"http": 8080, "grpc": 9090, "metrics": 2112}


def test_namespaces_carry_the_seeds_labels_and_pod_security_admission(production: Rendered) -> None:
    namespaces = {doc["metadata"]["name"]: doc["metadata"]["labels"] for doc in production.of("Namespace")}
    for name, labels in namespaces.items():
        assert labels["name"] == name
        assert labels["istio-injection"] == "enabled"
        # Departure: PodSecurityPolicy is gone since 1.25; Pod Security Admission replaces it.
        assert labels["pod-security.kubernetes.io/enforce"] in ("restricted", "baseline", "privileged")
    assert namespaces["pweza-core-system"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert namespaces["pweza-core-agents"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_operator_deployment_talks_to_the_manager_service(production: Rendered) -> None:
    (container,) = pod_spec(production, "pweza-core-operator")["containers"]
    args = container["args"]
    assert args[0] == "operator"
    assert args[args.index("--manager-url") + 1] == "http://pweza-core-manager.pweza-core-system.svc:8080"
    assert args[args.index("--agent-manager-address") + 1] == "pweza-core-manager.pweza-core-system.svc:9090"
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["PWEZA_MANAGER_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "pweza-core-operator-token"
    assert pod_spec(production, "pweza-core-operator")["serviceAccountName"] == "pweza-core-operator"
    assert production.one("Deployment", "pweza-core-operator")["spec"]["replicas"] == 2
