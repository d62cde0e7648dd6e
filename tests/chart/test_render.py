"""`helm lint --strict` and `helm template --kube-version 1.28.0` of each values file: every object
the seed shows is rendered, built-in kinds validate strictly against the Kubernetes 1.28 schemas,
and the chart's own objects are valid pweza objects and manager settings."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from pweza.domain.manifests import AgentPool, AgentTemplate
from pweza.manager.config import Settings, load_settings
from tests.chart.conftest import CHART, KUBE_VERSION, VALUES_FILES, helm, render, render_error

pytestmark = [pytest.mark.chart, pytest.mark.timeout(600)]

# The API groups Kubernetes itself serves; everything else is a CRD (pweza.ai or third-party).
BUILT_IN_GROUPS = {
    "",
    "apps",
    "batch",
    "policy",
    "autoscaling",
    "networking.k8s.io",
    "rbac.authorization.k8s.io",
    "storage.k8s.io",
    "apiextensions.k8s.io",
    "admissionregistration.k8s.io",
}
PWEZA_KINDS = {"AgentTemplate", "AgentPool"}
# Every object of the seed document, and what the issue adds around it (operator, prometheus-adapter rule, ...).
PRODUCTION_KINDS = {
    "Namespace",
    "Deployment",
    "Service",
    "ConfigMap",
    "HorizontalPodAutoscaler",
    "VerticalPodAutoscaler",
    "PodDisruptionBudget",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "NetworkPolicy",
    "StorageClass",
    # The seed's database was ArangoDB, which the manager does not use: PostgreSQL through
    # CloudNativePG instead (database.mode=cloudnativepg); ArangoDB renders when enabled.
    "Cluster",
    "ScheduledBackup",
    "ServiceMonitor",
    "PrometheusRule",
    "AlertmanagerConfig",
    "Ingress",
    "VirtualService",
    "DestinationRule",
    "AgentTemplate",
    "AgentPool",
    "Job",
    # The operator's admission webhook and its Helm-made serving certificate.
    "ValidatingWebhookConfiguration",
    "Secret",
}


def group_of(document: dict[str, Any]) -> str:
    api_version = document["apiVersion"]
    return api_version.split("/", 1)[0] if "/" in api_version else ""


@pytest.mark.parametrize("values", VALUES_FILES)
def test_helm_lint_strict_passes(values: str) -> None:
    result = helm("lint", "--strict", str(CHART), "--values", str(CHART / values), "--kube-version", KUBE_VERSION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout, result.stdout


def test_production_renders_every_object_of_the_seed() -> None:
    rendered = render("values-production.yaml")
    assert rendered.kinds() == PRODUCTION_KINDS
    names = {(doc["kind"], doc["metadata"]["name"]) for doc in rendered.documents}
    assert {
        ("Deployment", "pweza-core-manager"),
        ("Deployment", "pweza-core-operator"),
        ("Service", "pweza-core-manager"),
        ("ConfigMap", "pweza-core-config"),
        ("HorizontalPodAutoscaler", "pweza-core-manager-hpa"),
        ("VerticalPodAutoscaler", "pweza-core-manager-vpa"),
        ("NetworkPolicy", "pweza-core-system-policy"),
        ("ServiceMonitor", "pweza-core-manager"),
        ("ConfigMap", "pweza-core-dashboard"),
        ("ConfigMap", "pweza-core-prometheus-adapter"),
        ("Ingress", "pweza-core-manager-http"),
        ("Ingress", "pweza-core-manager-grpc"),
        ("Job", "pweza-core-agent-test"),
        ("Job", "pweza-core-workflow-test"),
        ("Job", "pweza-core-integration-test"),
        ("StorageClass", "pweza-core-gp3"),
    } <= names
    assert {doc["metadata"]["name"] for doc in rendered.of("Namespace")} == {
        "pweza-core-system",
        "pweza-core-agents",
        "pweza-core-data",
        "pweza-core-monitoring",
    }


def test_the_release_namespace_is_helms_unless_adopted() -> None:
    """`helm install -n pweza-core-system --create-namespace` makes that namespace before the chart's
    objects: rendering it too would make the install fail, so the chart leaves it out."""
    installed = render("values-production.yaml", namespace="pweza-core-system")
    assert {doc["metadata"]["name"] for doc in installed.of("Namespace")} == {
        "pweza-core-agents",
        "pweza-core-data",
        "pweza-core-monitoring",
    }
    adopted = render(
        "values-production.yaml", namespace="pweza-core-system", sets=("namespace.adoptReleaseNamespace=true",)
    )
    assert len(adopted.of("Namespace")) == 4
    assert not render(sets=("namespace.create=false",)).of("Namespace")


def test_staging_renders_the_production_shape_without_the_hpa() -> None:
    assert render("values-staging.yaml").kinds() == PRODUCTION_KINDS - {"HorizontalPodAutoscaler"}


def test_default_values_install_on_a_bare_cluster() -> None:
    """values.yaml: only built-in kinds and the chart's own pweza.ai objects, nothing from an add-on."""
    rendered = render("values.yaml")
    third_party = {
        doc["kind"]
        for doc in rendered.documents
        if group_of(doc) not in BUILT_IN_GROUPS and doc["kind"] not in PWEZA_KINDS
    }
    assert third_party == set()
    assert "HorizontalPodAutoscaler" not in rendered.kinds(), "the small-cluster default runs one manager"


@pytest.mark.parametrize("values", VALUES_FILES)
def test_built_in_kinds_validate_strictly_against_kubernetes_1_28(values: str) -> None:
    rendered = render(values, include_crds=True)
    validated = set()
    for document in rendered.documents:
        if group_of(document) not in BUILT_IN_GROUPS:
            continue
        where = f"{document['kind']}/{document['metadata']['name']}"
        try:
            kubernetes_validate.validate(document, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(part) for part in error.path)
            raise AssertionError(
                f"{values}: {where} is invalid for Kubernetes 1.28 at {path}: {error.message}"
            ) from None
        validated.add(document["kind"])
    assert {"Deployment", "Service", "NetworkPolicy", "CustomResourceDefinition", "Job"} <= validated


@pytest.mark.parametrize("values", VALUES_FILES)
def test_the_chart_agent_objects_are_valid_pweza_objects(values: str) -> None:
    rendered = render(values)
    for document in rendered.of("AgentTemplate"):
        AgentTemplate.model_validate(document)
    pools = [AgentPool.model_validate(document) for document in rendered.of("AgentPool")]
    assert pools and all(pool.metadata.namespace == "pweza-core-agents" for pool in pools)
    templates = {doc["metadata"]["name"] for doc in rendered.of("AgentTemplate")}
    assert {pool.spec.template_ref for pool in pools} <= templates
    assert all(pool.spec.replicas is None for pool in pools), "replicas are the HPA's, not the chart's"


@pytest.mark.parametrize("values", VALUES_FILES)
def test_the_config_map_is_a_valid_manager_config(values: str, tmp_path: Path) -> None:
    config = render(values).one("ConfigMap", "pweza-core-config")["data"]["config.yaml"]
    path = tmp_path / "config.yaml"
    path.write_text(config)
    settings = load_settings(path, environ={"PWEZA_HOST": "0.0.0.0"})
    assert (settings.http_port, settings.grpc_port, settings.metrics_port) == (8080, 9090, 2112)


def test_values_schema_admits_exactly_the_settings_the_config_map_may_carry() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    config = schema["properties"]["manager"]["properties"]["config"]
    assert config["additionalProperties"] is False
    # Set from other values or the environment, never from manager.config:
    from_elsewhere = {
        "database_url",
        "host",
        "http_port",
        "grpc_port",
        "metrics_port",
        "log_level",
        "metrics_enabled",
        "tls_cert_file",
        "tls_key_file",
        "replica_id",
        "agent_log_dir",  # set by `pweza up` for its local agents; pods' logs are `kubectl logs`
    }
    assert set(config["properties"]) | from_elsewhere == set(Settings.model_fields), (
        "a manager setting is neither in values.schema.json's manager.config nor set by the chart"
    )


def test_namespace_budgets_reach_the_manager_config(tmp_path: Path) -> None:
    sets = (
        "manager.config.budgets.namespaces.team-a.tokens=100000",
        "manager.config.budgets.namespaces.team-a.cost=5",  # --set makes 5.5 a string
        "manager.config.budgets.namespaces.team-a.period=12h",
        "manager.config.budgets.namespaces.*.tokens=1000",
    )
    config = render(sets=sets).one("ConfigMap", "pweza-core-config")["data"]["config.yaml"]
    path = tmp_path / "config.yaml"
    path.write_text(config)
    budgets = load_settings(path, environ={}).budgets.namespaces
    assert (budgets["team-a"].tokens, budgets["team-a"].cost, budgets["team-a"].period) == (100000, 5, "12h")
    assert budgets["*"].tokens == 1000 and budgets["*"].cost is None


def test_a_namespace_budget_without_a_limit_or_with_a_bad_currency_is_refused() -> None:
    assert "budgets" in render_error("manager.config.budgets.namespaces.team-a.period=1h")
    assert "currency" in render_error("manager.config.budgets.namespaces.team-a.tokens=5,"
                                      "manager.config.budgets.namespaces.team-a.currency=usd")  # fmt: skip


def test_unknown_config_keys_are_refused() -> None:
    assert "additional properties 'lease_secs' not allowed" in render_error("manager.config.lease_secs=3")


def test_sqlite_with_several_manager_replicas_is_refused() -> None:
    assert "SQLite serves one manager replica" in render_error("manager.replicas=3")


def test_an_external_database_must_say_so() -> None:
    assert "set database.mode=external" in render_error("database.existingSecret=my-db")
    assert "set database.existingSecret" in render_error("database.mode=external")
    assert "backup.destinationPath" in render_error(
        "database.mode=cloudnativepg", "database.cloudnativepg.backup.enabled=true"
    )


def test_an_existing_secret_supplies_database_url_and_the_chart_writes_none() -> None:
    rendered = render(sets=("database.mode=external", "database.existingSecret=my-db"))
    assert [secret["metadata"]["name"] for secret in rendered.of("Secret")] == ["pweza-core-operator-webhook-tls"]
    env = {e["name"]: e for e in manager_container(rendered)["env"]}
    assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "my-db", "key": "database-url"}
    default = render("values.yaml")
    secret = default.one("Secret", "pweza-core-secrets")
    assert secret["stringData"]["database-url"] == "sqlite:////var/lib/pweza-core/pweza.db"


def test_every_pod_meets_the_restricted_pod_security_standard() -> None:
    rendered = render("values-production.yaml")
    pods = [doc["spec"]["template"]["spec"] for doc in rendered.of("Deployment") + rendered.of("Job")]
    assert len(pods) == 5
    for pod in pods:
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 1000
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in pod["containers"] + pod.get("initContainers", []):
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"] == {"drop": ["ALL"]}
            assert context["readOnlyRootFilesystem"] is True


def test_rbac_is_least_privilege() -> None:
    rendered = render("values-production.yaml")
    rules = [rule for role in rendered.of("ClusterRole") + rendered.of("Role") for rule in role["rules"]]
    for rule in rules:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"] and "*" not in rule["apiGroups"]
        assert not {"secrets", "pods", "configmaps", "services"} & set(rule["resources"]), rule
    operator = rendered.one("ClusterRole", "pweza-core-operator")
    resources = {resource for rule in operator["rules"] for resource in rule["resources"]}
    assert resources == {
        "agenttemplates",
        "agentpools",
        "workflows",
        "toolservers",
        "modelconfigs",
        "agenttemplates/status",
        "agentpools/status",
        "workflows/status",
        "toolservers/status",
        "modelconfigs/status",
        "deployments",
        "serviceaccounts",
        "horizontalpodautoscalers",
        "events",
    }
    lease = rendered.one("Role", "pweza-core-operator-leader-election")
    assert lease["metadata"]["namespace"] == "pweza-core-system"
    assert lease["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]}
    ]
    manager_sa = rendered.one("ServiceAccount", "pweza-core-manager")
    assert manager_sa["automountServiceAccountToken"] is False
    bound = {subject["name"] for binding in rendered.of("ClusterRoleBinding") for subject in binding["subjects"]}
    assert bound == {"pweza-core-operator"}, "the manager calls no Kubernetes API and gets no role"


def test_watch_namespaces_bind_the_operator_role_only_there() -> None:
    rendered = render(sets=("operator.watchNamespaces={team-a,team-b}",))
    bindings = rendered.of("RoleBinding")
    assert {(b["metadata"]["namespace"], b["roleRef"]["name"]) for b in bindings} == {
        ("team-a", "pweza-core-operator"),
        ("team-b", "pweza-core-operator"),
        ("pweza-core-system", "pweza-core-operator-leader-election"),
    }
    assert {b["metadata"]["name"] for b in rendered.of("ClusterRoleBinding")} == {"pweza-core-operator-discovery"}
    args = operator_container(rendered)["args"]
    assert args[args.index("--namespace") :] == ["--namespace", "team-a", "--namespace", "team-b"]


def test_the_seeds_vpa_auto_mode_still_renders() -> None:
    rendered = render("values-production.yaml", sets=("manager.vpa.updateMode=Auto",))
    vpa = rendered.one("VerticalPodAutoscaler", "pweza-core-manager-vpa")
    assert vpa["spec"]["updatePolicy"] == {"updateMode": "Auto"}


def test_cert_manager_can_issue_the_tls_secret() -> None:
    rendered = render("values-production.yaml", sets=("tls.certManager.enabled=true",))
    certificate = rendered.one("Certificate", "pweza-core-tls")
    assert certificate["spec"]["secretName"] == "pweza-core-tls"
    assert "pweza-core-manager.pweza-core-system.svc" in certificate["spec"]["dnsNames"]


def test_the_prometheus_adapter_rule_names_the_hpa_metric() -> None:
    rendered = render("values-production.yaml")
    config = yaml.safe_load(rendered.one("ConfigMap", "pweza-core-prometheus-adapter")["data"]["config.yaml"])
    (rule,) = config["rules"]
    assert rule["seriesQuery"].startswith("agent_coordination_requests_total{")
    # prometheus-adapter applies `matches` and expands `as` like Go's regexp.Expand.
    name = re.sub(
        rule["name"]["matches"], rule["name"]["as"].replace("${1}", r"\1"), "agent_coordination_requests_total"
    )
    hpa = rendered.one("HorizontalPodAutoscaler", "pweza-core-manager-hpa")
    pods_metric = next(m for m in hpa["spec"]["metrics"] if m["type"] == "Pods")
    assert name == pods_metric["pods"]["metric"]["name"] == "agent_coordination_requests_per_second"
    assert "rate(<<.Series>>{<<.LabelMatchers>>}[2m])" in rule["metricsQuery"]


def test_the_pods_metric_needs_prometheus_adapter() -> None:
    rendered = render("values-production.yaml", sets=("prometheusAdapter.enabled=false",))
    hpa = rendered.one("HorizontalPodAutoscaler", "pweza-core-manager-hpa")
    assert [m["type"] for m in hpa["spec"]["metrics"]] == ["Resource", "Resource"]


def test_prometheus_rule_alerts_cover_what_operators_need() -> None:
    rendered = render("values-production.yaml")
    rule = rendered.one("PrometheusRule", "pweza-core-alerts")
    alerts = {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}
    assert {
        "PwezaCoreManagerDown",
        "PwezaCoreAPIErrorRateHigh",
        "PwezaCoreAPILatencyHigh",
        "PwezaCoreDatabaseErrors",
        "PwezaCoreTaskFailureRateHigh",
        "PwezaCorePoolBacklog",
        "PwezaCorePoolWithoutAgents",
        "PwezaCoreOperatorNoLeader",
        "PwezaCoreManagerAtMaxReplicas",
    } <= set(alerts)
    for alert in alerts.values():
        assert alert["labels"]["severity"] in ("warning", "critical")
        assert alert["labels"]["service"] == "pweza-core", "the AlertmanagerConfig routes on this label"
        assert alert["expr"].count("(") == alert["expr"].count(")"), alert["alert"]
        assert "{{ $labels" not in alert["annotations"]["summary"]
    assert 'up{namespace="pweza-core-system", job="pweza-core-manager"}' in alerts["PwezaCoreManagerDown"]["expr"]
    route = rendered.one("AlertmanagerConfig", "pweza-core")["spec"]["route"]
    assert route["matchers"] == [{"name": "service", "value": "pweza-core", "matchType": "="}]


def test_grafana_dashboard_is_valid_json_for_the_sidecar() -> None:
    dashboard = render("values-production.yaml").one("ConfigMap", "pweza-core-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["metadata"]["namespace"] == "pweza-core-monitoring"
    content = json.loads(dashboard["data"]["pweza-core.json"])
    expressions = " ".join(t["expr"] for panel in content["panels"] for t in panel["targets"])
    assert "agent_coordination_requests_total" in expressions and "pweza_pool_pending_tasks" in expressions


def test_ingress_serves_http_and_grpc_through_nginx() -> None:
    rendered = render("values-production.yaml")
    http = rendered.one("Ingress", "pweza-core-manager-http")
    grpc = rendered.one("Ingress", "pweza-core-manager-grpc")
    assert http["spec"]["ingressClassName"] == grpc["spec"]["ingressClassName"] == "nginx"
    assert grpc["metadata"]["annotations"]["nginx.ingress.kubernetes.io/backend-protocol"] == "GRPC"
    assert grpc["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"] == {
        "name": "pweza-core-manager",
        "port": {"name": "grpc"},
    }
    assert http["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"] == {"name": "http"}


def test_istio_routes_and_destination_rule() -> None:
    rendered = render("values-production.yaml")
    fqdn = "pweza-core-manager.pweza-core-system.svc.cluster.local"
    service = rendered.one("VirtualService", "pweza-core-manager")
    routes = {route["name"]: route for route in service["spec"]["http"]}
    assert routes["grpc"]["match"] == [{"port": 9090}] and "timeout" not in routes["grpc"]
    assert routes["rest"]["route"][0]["destination"] == {"host": fqdn, "port": {"number": 8080}}
    rule = rendered.one("DestinationRule", "pweza-core-manager")
    assert rule["spec"]["host"] == fqdn
    assert rule["spec"]["trafficPolicy"]["tls"] == {"mode": "ISTIO_MUTUAL"}


def test_database_objects() -> None:
    rendered = render("values-production.yaml")
    storage = rendered.one("StorageClass", "pweza-core-gp3")
    assert storage["provisioner"] == "ebs.csi.aws.com"
    assert storage["parameters"]["type"] == "gp3" and storage["parameters"]["iops"] == "3000"
    assert not rendered.of("ArangoDeployment"), "the manager does not use ArangoDB: off in production"


def test_arangodb_still_renders_when_enabled() -> None:
    rendered = render("values-production.yaml", sets=("database.arangodb.enabled=true",))
    arango = rendered.one("ArangoDeployment", "pweza-core-arangodb")
    assert arango["metadata"]["namespace"] == "pweza-core-data"
    assert arango["spec"]["mode"] == "Cluster"
    assert arango["spec"]["dbservers"]["storageClassName"] == "pweza-core-gp3"
    assert arango["spec"]["dbservers"]["resources"]["requests"]["storage"] == "100Gi"
    policy = rendered.one("ArangoBackupPolicy", "pweza-core-arangodb-backup")
    selector = policy["spec"]["selector"]["matchLabels"]
    assert all(arango["metadata"]["labels"][key] == value for key, value in selector.items())
    egress = rendered.one("NetworkPolicy", "pweza-core-system-policy")["spec"]["egress"]
    assert {"protocol": "TCP", "port": 8529} in [port for rule in egress for port in rule["ports"]]


@pytest.mark.parametrize("values", VALUES_FILES)
def test_arangodb_is_off_in_every_values_file(values: str) -> None:
    assert yaml.safe_load((CHART / values).read_text()).get("database", {}).get("arangodb", {}).get("enabled") in (
        None,
        False,
    )
    rendered = render(values)
    assert not rendered.of("ArangoDeployment")
    egress = rendered.one("NetworkPolicy", "pweza-core-system-policy")["spec"]["egress"]
    assert 8529 not in [port["port"] for rule in egress for port in rule["ports"]]


def test_agent_pools_get_a_headless_service_and_a_disruption_budget() -> None:
    rendered = render("values-production.yaml")
    service = rendered.one("Service", "smoke-agents")
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"] == {"app.kubernetes.io/name": "pweza-agent", "pweza.ai/pool": "smoke"}
    budget = rendered.one("PodDisruptionBudget", "smoke-agents")
    assert budget["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]


def test_helpers_label_every_object_with_app_kubernetes_io_labels() -> None:
    for document in render("values-production.yaml").documents:
        labels = document["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "pweza-core", document["metadata"]["name"]
        assert labels["app.kubernetes.io/instance"] == "pweza-core"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["helm.sh/chart"] == "pweza-core-0.1.0"


def test_the_chart_crds_are_the_generated_ones_with_the_seeds_short_name_and_bounds() -> None:
    crds = {doc["metadata"]["name"]: doc for doc in render(include_crds=True).of("CustomResourceDefinition")}
    assert set(crds) == {
        "agentpools.pweza.ai",
        "agenttemplates.pweza.ai",
        "workflows.pweza.ai",
        "modelconfigs.pweza.ai",
        "toolservers.pweza.ai",
    }
    pools = crds["agentpools.pweza.ai"]["spec"]
    assert pools["names"]["shortNames"] == ["ap"]
    spec = pools["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    scaling = spec["scaling"]["properties"]
    assert scaling["minReplicas"]["minimum"] == 1
    assert scaling["maxReplicas"]["maximum"] == 100
    assert (scaling["targetUtilization"]["minimum"], scaling["targetUtilization"]["maximum"]) == (1, 100)
    assert set(spec["template"]["properties"]) >= {"image", "resources", "environment"}


def manager_container(rendered: Any) -> dict[str, Any]:
    container: dict[str, Any] = rendered.one("Deployment", "pweza-core-manager")["spec"]["template"]["spec"][
        "containers"
    ][0]
    return container


def operator_container(rendered: Any) -> dict[str, Any]:
    container: dict[str, Any] = rendered.one("Deployment", "pweza-core-operator")["spec"]["template"]["spec"][
        "containers"
    ][0]
    return container


@pytest.mark.parametrize("values", VALUES_FILES)
def test_every_container_requests_and_limits_ephemeral_storage(values: str) -> None:
    rendered = render(values, sets=("database.mode=bundled",) if values == "values.yaml" else ())
    for document in rendered.of("Deployment") + rendered.of("Job") + rendered.of("StatefulSet"):
        pod = document["spec"]["template"]["spec"]
        for container in pod["containers"] + pod.get("initContainers", []):
            where = f"{document['metadata']['name']}/{container['name']}"
            assert container["resources"]["requests"]["ephemeral-storage"], where
            assert container["resources"]["limits"]["ephemeral-storage"], where


def test_production_keeps_an_operator_standby_through_drains_and_node_loss() -> None:
    rendered = render("values-production.yaml")
    budget = rendered.one("PodDisruptionBudget", "pweza-core-operator")
    assert budget["spec"] == {"minAvailable": 1, "selector": {"matchLabels": {"app": "pweza-core-operator"}}}
    pod = rendered.one("Deployment", "pweza-core-operator")["spec"]["template"]
    (term,) = pod["spec"]["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert term["podAffinityTerm"]["labelSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert "pweza-core-operator" not in {doc["metadata"]["name"] for doc in render().of("PodDisruptionBudget")}


def test_the_manager_down_alert_keeps_namespace_and_job() -> None:
    rule = render("values-production.yaml").one("PrometheusRule", "pweza-core-alerts")
    alerts = {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}
    selector = 'up{namespace="pweza-core-system", job="pweza-core-manager"}'
    # absent() takes labels from a plain selector's equality matchers only; `max by` keeps them.
    assert alerts["PwezaCoreManagerDown"]["expr"] == f"max by (namespace, job) ({selector}) < 1 or absent({selector})"
