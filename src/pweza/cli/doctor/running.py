"""Every check in the order the report shows them, an API refusal turned into a failed check."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from kubernetes.client.exceptions import ApiException

from pweza.cli.doctor.apis import check_apis, check_version
from pweza.cli.doctor.cluster import Cluster
from pweza.cli.doctor.database import check_database
from pweza.cli.doctor.ingress import check_ingress
from pweza.cli.doctor.namespaces import check_namespaces
from pweza.cli.doctor.results import Check, Status
from pweza.cli.doctor.storage import check_storage

__all__ = ["run_checks"]


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
