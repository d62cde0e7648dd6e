"""database.mode: what each mode renders (helm template), and that the manager's NetworkPolicy
egress names exactly the database of that mode."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.chart.conftest import VALUES_FILES, Rendered, render

pytestmark = [pytest.mark.chart, pytest.mark.timeout(600)]

BUNDLED = ("database.mode=bundled",)
CNPG = ("database.mode=cloudnativepg", "manager.replicas=3")
POOLER = (*CNPG, "database.cloudnativepg.pooler.enabled=true")
EXTERNAL = ("database.mode=external", "database.existingSecret=rds", "database.external.cidrs={10.20.0.0/16}")
DNS = {
    "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}],
    "ports": [{"protocol": "TCP", "port": 53}, {"protocol": "UDP", "port": 53}],
}
MANAGER = {"app": "pweza-core-manager"}


def manager_egress(rendered: Rendered) -> list[dict[str, Any]]:
    egress: list[dict[str, Any]] = rendered.one("NetworkPolicy", "pweza-core-system-policy")["spec"]["egress"]
    return egress


def manager_env(rendered: Rendered) -> dict[str, dict[str, Any]]:
    pod = rendered.one("Deployment", "pweza-core-manager")["spec"]["template"]["spec"]
    return {e["name"]: e for e in pod["containers"][0]["env"]}


def ports(rules: list[dict[str, Any]]) -> set[int]:
    return {port["port"] for rule in rules for port in rule["ports"]}


@pytest.mark.parametrize(
    ("sets", "database_rule"),
    [
        (("database.mode=sqlite",), None),
        (
            BUNDLED,
            {
                "to": [
                    {
                        "namespaceSelector": {"matchLabels": {"name": "pweza-core-data"}},
                        "podSelector": {"matchLabels": {"app": "pweza-core-postgres"}},
                    }
                ],
                "ports": [{"protocol": "TCP", "port": 5432}],
            },
        ),
        (
            CNPG,
            {
                "to": [{"podSelector": {"matchLabels": {"cnpg.io/cluster": "pweza-core-postgres"}}}],
                "ports": [{"protocol": "TCP", "port": 5432}],
            },
        ),
        (
            POOLER,
            {
                "to": [{"podSelector": {"matchLabels": {"cnpg.io/poolerName": "pweza-core-postgres-pooler"}}}],
                "ports": [{"protocol": "TCP", "port": 5432}],
            },
        ),
        (
            (*EXTERNAL, "database.external.port=6432"),
            {"to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}], "ports": [{"protocol": "TCP", "port": 6432}]},
        ),
        (
            ("database.mode=external", "database.url=postgresql://u:p@db.example.com/pweza"),
            {"to": [], "ports": [{"protocol": "TCP", "port": 5432}]},
        ),
    ],
    ids=["sqlite", "bundled", "cloudnativepg", "cloudnativepg-pooler", "external-cidr", "external-any-address"],
)
def test_the_manager_egress_admits_exactly_its_database_and_dns(
    sets: tuple[str, ...], database_rule: dict[str, Any] | None
) -> None:
    egress = manager_egress(render(sets=sets))
    assert egress == ([database_rule] if database_rule else []) + [DNS]
    assert 8529 not in ports(egress) and 443 not in ports(egress)


@pytest.mark.parametrize("values", VALUES_FILES)
def test_every_values_file_gives_the_manager_a_postgresql_it_can_reach_or_sqlite(values: str) -> None:
    rendered = render(values)
    egress = manager_egress(rendered)
    if values == "values.yaml":
        assert egress == [DNS]  # SQLite: a file on the manager's volume
        return
    assert egress[0]["ports"] == [{"protocol": "TCP", "port": 5432}]
    assert egress[0]["to"] == [{"podSelector": {"matchLabels": {"cnpg.io/cluster": "pweza-core-postgres"}}}]
    assert manager_env(rendered)["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "pweza-core-postgres-app",
        "key": "uri",
    }
    assert rendered.one("Cluster", "pweza-core-postgres")["metadata"]["namespace"] == "pweza-core-system"


# -- bundled ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bundled() -> Rendered:
    return render(sets=BUNDLED)


def test_bundled_writes_the_url_with_the_password_of_the_postgres_secret(bundled: Rendered) -> None:
    password = base64.b64decode(bundled.one("Secret", "pweza-core-postgres")["data"]["password"]).decode()
    assert len(password) == 32 and password.isalnum()
    url = bundled.one("Secret", "pweza-core-secrets")
    assert url["metadata"]["namespace"] == "pweza-core-system"
    assert url["stringData"]["database-url"] == (
        f"postgresql://pweza:{password}@pweza-core-postgres.pweza-core-data.svc.cluster.local:5432/pweza"
    )
    secret = bundled.one("Secret", "pweza-core-postgres")
    assert secret["metadata"]["namespace"] == "pweza-core-data"
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert manager_env(bundled)["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "pweza-core-secrets",
        "key": "database-url",
    }
    assert not bundled.of("PersistentVolumeClaim"), "the manager keeps nothing on its disk"


def test_bundled_statefulset_follows_the_image_contract(bundled: Rendered) -> None:
    statefulset = bundled.one("StatefulSet", "pweza-core-postgres")
    assert statefulset["metadata"]["namespace"] == "pweza-core-data"
    assert statefulset["spec"]["replicas"] == 1
    assert statefulset["spec"]["serviceName"] == "pweza-core-postgres-headless"
    pod = statefulset["spec"]["template"]["spec"]
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 999,
        "runAsGroup": 999,
        "fsGroup": 999,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    assert container["image"] == "ghcr.io/pweza/postgres:15"
    assert container["command"] == ["/usr/local/bin/pweza-postgres-entrypoint"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env == {
        "PGDATA": "/var/lib/postgresql/data/pgdata",
        "POSTGRES_USER": "pweza",
        "POSTGRES_DB": "pweza",
        "POSTGRES_PASSWORD_FILE": "/etc/pweza-postgres/password",
    }
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    ready = ["pg_isready", "-h", "127.0.0.1", "-p", "5432", "-U", "pweza"]
    for probe in ("startupProbe", "readinessProbe"):
        assert container[probe]["exec"]["command"] == ready, probe
    # Alive while it listens: a server in crash recovery refuses connections and must not be restarted.
    assert container["livenessProbe"]["tcpSocket"] == {"port": "postgresql"}
    assert container["resources"]["requests"]["memory"] and container["resources"]["limits"]["memory"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts == {
        "/var/lib/postgresql/data": "data",
        "/etc/pweza-postgres": "password",
        "/tmp": "tmp",
        "/dev/shm": "shm",
    }
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["password"]["secret"]["secretName"] == "pweza-core-postgres"
    assert "emptyDir" in volumes["tmp"]
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert "storageClassName" not in claim["spec"], "empty: the cluster's default StorageClass"
    assert claim["spec"]["resources"]["requests"]["storage"] == "10Gi"
    services = {s["metadata"]["name"]: s["spec"] for s in bundled.of("Service")}
    assert services["pweza-core-postgres-headless"]["clusterIP"] == "None"
    assert services["pweza-core-postgres"]["selector"] == {"app": "pweza-core-postgres"}
    assert services["pweza-core-postgres"]["ports"][0]["port"] == 5432


@pytest.mark.parametrize(
    ("sets", "expected"),
    [
        (("database.storageClass.create=true",), "pweza-core-gp3"),
        (("database.storageClass.create=true", "database.bundled.storageClassName=local-pv"), "local-pv"),
        (("database.bundled.storageClassName=local-pv", "database.bundled.size=2Gi"), "local-pv"),
    ],
)
def test_bundled_storage_class_and_size_can_be_set(sets: tuple[str, ...], expected: str) -> None:
    statefulset = render(sets=(*BUNDLED, *sets)).one("StatefulSet", "pweza-core-postgres")
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["storageClassName"] == expected
    if "database.bundled.size=2Gi" in sets:
        assert claim["spec"]["resources"]["requests"]["storage"] == "2Gi"


def test_bundled_postgres_admits_only_the_manager(bundled: Rendered) -> None:
    policy = bundled.one("NetworkPolicy", "pweza-core-postgres")
    assert policy["metadata"]["namespace"] == "pweza-core-data"
    assert policy["spec"] == {
        "podSelector": {"matchLabels": {"app": "pweza-core-postgres"}},
        "policyTypes": ["Ingress", "Egress"],
        "egress": [],
        "ingress": [
            {
                "from": [
                    {
                        "namespaceSelector": {"matchLabels": {"name": "pweza-core-system"}},
                        "podSelector": {"matchLabels": MANAGER},
                    }
                ],
                "ports": [{"protocol": "TCP", "port": 5432}],
            }
        ],
    }


def test_bundled_serves_several_manager_replicas() -> None:
    rendered = render(sets=(*BUNDLED, "manager.replicas=3"))
    assert rendered.one("Deployment", "pweza-core-manager")["spec"]["replicas"] == 3


# -- cloudnativepg --------------------------------------------------------------------------


def test_production_cluster_has_the_seeds_storage_and_the_backup_policy() -> None:
    rendered = render("values-production.yaml")
    cluster = rendered.one("Cluster", "pweza-core-postgres")["spec"]
    assert cluster["instances"] == 3
    assert cluster["storage"] == {"size": "100Gi", "storageClass": "pweza-core-gp3"}
    assert cluster["bootstrap"]["initdb"] == {"database": "pweza", "owner": "pweza"}
    # 20 replicas x (pool_size 10 + max_overflow 5 + 1 LISTEN connection) = 320 < max_connections.
    assert int(cluster["postgresql"]["parameters"]["max_connections"]) >= 20 * 16 + 10
    assert cluster["backup"]["retentionPolicy"] == "7d"
    assert cluster["backup"]["barmanObjectStore"]["destinationPath"].startswith("s3://")
    backup = rendered.one("ScheduledBackup", "pweza-core-postgres")["spec"]
    assert backup["cluster"] == {"name": "pweza-core-postgres"}
    assert backup["schedule"] == "0 0 */6 * * *"  # CNPG's cron has seconds: every 6 hours
    assert backup["method"] == "barmanObjectStore"
    assert not rendered.of("Pooler")
    assert not rendered.of("PersistentVolumeClaim")


def test_the_cluster_admits_the_manager_itself_and_the_operator() -> None:
    rendered = render("values-production.yaml")
    policy = rendered.one("NetworkPolicy", "pweza-core-postgres")
    assert policy["metadata"]["namespace"] == "pweza-core-system"
    assert policy["spec"]["podSelector"] == {"matchLabels": {"cnpg.io/cluster": "pweza-core-postgres"}}
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    clients, peers = policy["spec"]["ingress"]
    assert clients == {
        "from": [{"podSelector": {"matchLabels": MANAGER}}],
        "ports": [{"protocol": "TCP", "port": 5432}],
    }
    assert peers["from"] == [
        {"podSelector": {"matchLabels": {"cnpg.io/cluster": "pweza-core-postgres"}}},
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "cnpg-system"}}},
    ]
    assert ports([peers]) == {5432, 8000}


def test_the_pooler_is_session_mode_and_the_manager_connects_through_it() -> None:
    rendered = render(sets=POOLER)
    pooler = rendered.one("Pooler", "pweza-core-postgres-pooler")["spec"]
    assert pooler["cluster"] == {"name": "pweza-core-postgres"}
    assert pooler["pgbouncer"]["poolMode"] == "session", "the manager LISTENs: transaction mode would break it"
    instances = pooler["instances"]
    per_pod = int(pooler["pgbouncer"]["parameters"]["default_pool_size"])
    max_connections = int(
        rendered.one("Cluster", "pweza-core-postgres")["spec"]["postgresql"]["parameters"]["max_connections"]
    )
    assert instances * per_pod < max_connections
    env = manager_env(rendered)
    assert env["DATABASE_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "pweza-core-postgres-app",
        "key": "password",
    }
    url = urlsplit(env["DATABASE_URL"]["value"])
    assert (url.username, url.password) == ("pweza", "$(DATABASE_PASSWORD)")
    assert (url.hostname, url.port, url.path) == (
        "pweza-core-postgres-pooler.pweza-core-system.svc.cluster.local",
        5432,
        "/pweza",
    )
    names = [
        e["name"]
        for e in rendered.one("Deployment", "pweza-core-manager")["spec"]["template"]["spec"]["containers"][0]["env"]
    ]
    assert names.index("DATABASE_PASSWORD") < names.index("DATABASE_URL"), "$(VAR) expands earlier variables only"
    cluster_policy = rendered.one("NetworkPolicy", "pweza-core-postgres")["spec"]["ingress"][0]
    assert cluster_policy["from"] == [
        {"podSelector": {"matchLabels": {"cnpg.io/poolerName": "pweza-core-postgres-pooler"}}}
    ]
    pooler_policy = rendered.one("NetworkPolicy", "pweza-core-postgres-pooler")["spec"]
    assert pooler_policy["ingress"] == [
        {"from": [{"podSelector": {"matchLabels": MANAGER}}], "ports": [{"protocol": "TCP", "port": 5432}]}
    ]


def test_backups_with_a_secret_instead_of_an_iam_role() -> None:
    rendered = render(
        sets=(
            *CNPG,
            "database.cloudnativepg.backup.enabled=true",
            "database.cloudnativepg.backup.destinationPath=s3://bucket/pg",
            "database.cloudnativepg.backup.s3.secretName=pg-backup",
        )
    )
    credentials = rendered.one("Cluster", "pweza-core-postgres")["spec"]["backup"]["barmanObjectStore"]["s3Credentials"]
    assert credentials == {
        "accessKeyId": {"name": "pg-backup", "key": "ACCESS_KEY_ID"},
        "secretAccessKey": {"name": "pg-backup", "key": "ACCESS_SECRET_KEY"},
    }


# -- external -------------------------------------------------------------------------------


def test_external_reads_your_secret_or_writes_your_url() -> None:
    yours = render(sets=EXTERNAL)
    # The only Secret the chart writes then is the admission webhook's certificate.
    assert [secret["metadata"]["name"] for secret in yours.of("Secret")] == ["pweza-core-operator-webhook-tls"]
    assert manager_env(yours)["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "rds", "key": "database-url"}
    written = render(sets=("database.mode=external", "database.url=postgresql://u:p@db/pweza"))
    assert written.one("Secret", "pweza-core-secrets")["stringData"]["database-url"] == "postgresql://u:p@db/pweza"
    for rendered in (yours, written):
        assert not rendered.of("StatefulSet") and not rendered.of("Cluster")


# -- the helm test pods ---------------------------------------------------------------------


def test_the_helm_test_pods_have_a_network_policy_and_resources() -> None:
    rendered = render("values-production.yaml")
    policy = rendered.one("NetworkPolicy", "pweza-core-tests")["spec"]
    selector = policy["podSelector"]["matchLabels"]
    for job in rendered.of("Job"):
        pod = job["spec"]["template"]
        labels = pod["metadata"]["labels"]
        assert all(labels.get(key) == value for key, value in selector.items()), job["metadata"]["name"]
        for container in pod["spec"]["containers"] + pod["spec"].get("initContainers", []):
            assert container["resources"]["requests"] and container["resources"]["limits"], container["name"]
    assert policy["ingress"] == []
    assert policy["egress"][0] == {
        "to": [{"podSelector": {"matchLabels": MANAGER}}],
        "ports": [{"protocol": "TCP", "port": 8080}],
    }
    assert ports(policy["egress"]) == {8080, 53, 15012}  # istiod: production has the mesh
