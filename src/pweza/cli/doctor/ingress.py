"""The ingress class the chart's Ingress names, when it renders one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pweza.cli.doctor.cluster import Cluster
from pweza.cli.doctor.results import Check, Status
from pweza.cli.doctor.values import enabled, lookup

__all__ = ["check_ingress"]


def check_ingress(values: Mapping[str, Any], cluster: Cluster) -> list[Check]:
    if not enabled(values, "ingress"):
        return [Check("ingress class", Status.SKIP, "not needed by these values")]
    wanted = str(lookup(values, "ingress", "className", default="nginx"))
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
