"""database.mode=bundled on a real control plane (kwok nodes: pods are marked Running without
running): the password Helm's `lookup` finds is kept across `helm upgrade`, and across an
uninstall and a new install (the volume, initialised with it, outlives the release)."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest

from tests.chart.conftest import CHART, RELEASE, SYSTEM_NAMESPACE, Cluster, start_control_plane

pytestmark = [pytest.mark.chart, pytest.mark.timeout(600)]
DATA_NAMESPACE = "pweza-core-data"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with start_control_plane() as cp:
        yield Cluster(cp)


def install(cluster: Cluster, command: str, *sets: str) -> None:
    # No --wait: the test cluster has no volume provisioner, so the PostgreSQL pod stays Pending.
    # The admission webhook off, as in test_install.py: nothing serves it on kwok, and the API
    # server would refuse the upgrade's AgentPool patch.
    args = [command, RELEASE, str(CHART), "--namespace", SYSTEM_NAMESPACE]
    args += (
        ["--create-namespace", "--set", "admissionWebhook.enabled=false"]
        if command == "install"
        else ["--reuse-values"]
    )
    for assignment in sets:
        args += ["--set", assignment]
    result = cluster.helm(*args)
    assert result.returncode == 0, result.stderr


def secret_value(cluster: Cluster, namespace: str, name: str, key: str) -> str:
    secret = cluster.get("secret", name, "-n", namespace)
    assert secret is not None, f"{namespace}/{name} is missing"
    return base64.b64decode(secret["data"][key]).decode()


def manager_checksum(cluster: Cluster) -> str:
    deployment = cluster.get("deployment", "pweza-core-manager", "-n", SYSTEM_NAMESPACE)
    return str(deployment["spec"]["template"]["metadata"]["annotations"]["checksum/secret"])


def test_the_bundled_password_is_kept_across_upgrade_and_reinstall(cluster: Cluster) -> None:
    install(cluster, "install", "database.mode=bundled", "manager.replicas=2")
    password = secret_value(cluster, DATA_NAMESPACE, "pweza-core-postgres", "password")
    url = secret_value(cluster, SYSTEM_NAMESPACE, "pweza-core-secrets", "database-url")
    assert url == f"postgresql://pweza:{password}@pweza-core-postgres.pweza-core-data.svc.cluster.local:5432/pweza"
    checksum = manager_checksum(cluster)
    statefulset = cluster.get("statefulset", "pweza-core-postgres", "-n", DATA_NAMESPACE)
    assert statefulset["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "10Gi"

    install(cluster, "upgrade", "manager.logLevel=DEBUG")
    assert secret_value(cluster, DATA_NAMESPACE, "pweza-core-postgres", "password") == password
    assert secret_value(cluster, SYSTEM_NAMESPACE, "pweza-core-secrets", "database-url") == url
    assert manager_checksum(cluster) == checksum, "an unchanged Secret must not roll the managers"

    uninstalled = cluster.helm("uninstall", RELEASE, "--namespace", SYSTEM_NAMESPACE, "--wait")
    assert uninstalled.returncode == 0, uninstalled.stderr
    assert secret_value(cluster, DATA_NAMESPACE, "pweza-core-postgres", "password") == password, "kept"
    install(cluster, "install", "database.mode=bundled")
    assert secret_value(cluster, SYSTEM_NAMESPACE, "pweza-core-secrets", "database-url") == url
