"""Every object each values file renders is accepted by a real kube-apiserver (server-side dry-run
apply, strict field validation) with the third-party CRDs of shared/crds/ and the chart's CRDs
installed; and `pweza doctor` sees those APIs there."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.chart.conftest import CHART, VALUES_FILES, Cluster, Rendered, checks_by_name, doctor, render

pytestmark = [pytest.mark.chart, pytest.mark.timeout(600)]


def _server_dry_run(cluster: Cluster, rendered: Rendered, tmp_path: Path) -> None:
    # A dry run creates nothing, so the namespaces the objects live in must exist (helm creates
    # them first). Nothing else of the chart is on this cluster: a dry-run apply over objects of
    # other values would merge with them instead of standing alone.
    for namespace in {doc["metadata"]["name"] for doc in rendered.of("Namespace")}:
        cluster.cp.kubectl("create", "namespace", namespace, check=False)
    manifest = tmp_path / "rendered.yaml"
    manifest.write_text(rendered.text)
    result = cluster.cp.kubectl(
        "apply", "--server-side", "--dry-run=server", "--force-conflicts", "--field-manager=chart-test",
        "--validate=strict", "-f", str(manifest), check=False, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    accepted = [line for line in result.stdout.splitlines() if line.endswith("(server dry run)")]
    assert len(accepted) == len(rendered.documents), result.stdout
    # Pod Security Admission and deprecated APIs would speak up here.
    assert "Warning" not in result.stderr, result.stderr


@pytest.mark.parametrize("values", VALUES_FILES)
def test_every_rendered_object_is_accepted_by_a_server_side_dry_run(
    cluster: Cluster, values: str, tmp_path: Path
) -> None:
    _server_dry_run(cluster, render(values), tmp_path)


@pytest.mark.parametrize(
    "sets",
    [
        # The data namespace warns on `restricted`: the bundled PostgreSQL must meet it.
        ("database.mode=bundled", "database.storageClass.create=true", "manager.replicas=2"),
        (
            "database.mode=cloudnativepg",
            "database.cloudnativepg.pooler.enabled=true",
            "database.cloudnativepg.backup.enabled=true",
            "database.cloudnativepg.backup.destinationPath=s3://b/pg",
            "database.cloudnativepg.backup.s3.secretName=pg-backup",
        ),
        ("database.mode=external", "database.existingSecret=rds", "database.external.cidrs={10.20.0.0/16}"),
        ("database.arangodb.enabled=true", "database.backup.enabled=true"),
    ],
    ids=["bundled", "cloudnativepg-pooler-backup", "external", "arangodb"],
)
def test_each_database_mode_is_accepted_by_a_server_side_dry_run(
    cluster: Cluster, sets: tuple[str, ...], tmp_path: Path
) -> None:
    _server_dry_run(cluster, render(sets=sets), tmp_path)


def test_doctor_after_the_crds_are_installed(cluster: Cluster) -> None:
    code, report = doctor(cluster.cp, "values-production.yaml")
    checks = checks_by_name(report)
    assert code == 1
    for name in ("prometheus-operator (monitoring.coreos.com/v1)", "Istio (networking.istio.io/v1)",
                 "CloudNativePG (postgresql.cnpg.io/v1)", "CloudNativePG CRDs",
                 "Vertical Pod Autoscaler (autoscaling.k8s.io/v1)"):  # fmt: skip
        assert checks[name]["status"] == "ok", checks[name]
    assert checks["kube-arangodb (database.arangodb.com/v1)"]["status"] == "skip", "ArangoDB is off"
    assert checks["metrics-server (metrics.k8s.io/v1beta1)"]["status"] == "fail"
    assert checks["pweza.ai CRDs (pweza.ai/v1)"]["detail"] == "installed"
    assert checks["namespace pweza-core-agents"]["status"] in ("ok", "warn")


def test_doctor_prints_a_table_with_a_fix_for_each_failure(cluster: Cluster) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pweza", "doctor", "--chart", str(CHART), "--kubeconfig", str(cluster.cp.kubeconfig)],
        capture_output=True, text=True, timeout=60, env={**cluster.cp.env, "COLUMNS": "250"}, check=False,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    for heading in ("CHECK", "STATUS", "DETAIL", "FIX"):
        assert heading in result.stdout
    assert "metrics-server" in result.stdout and "helm install metrics-server" in result.stdout
    assert "check(s) failed" in result.stdout
