"""Storage: a default StorageClass for the volumes that ask for none, the class the database
volumes name, and the CSI driver of the class the chart creates."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pweza.cli.doctor.cluster import Cluster
from pweza.cli.doctor.results import Check, Status
from pweza.cli.doctor.values import database_mode, enabled, lookup

__all__ = ["check_storage"]


def _database_storage_class(values: Mapping[str, Any], own: str) -> str:
    """The class a database volume asks for: its own value, else the chart's class when it
    creates one, else "" (the cluster's default) -- as the chart's databaseStorageClass helper."""
    if own:
        return own
    if lookup(values, "database", "storageClass", "create"):
        return str(lookup(values, "database", "storageClass", "name", default=""))
    return ""


def _database_volume(values: Mapping[str, Any]) -> tuple[str, str] | None:
    """(what, class) of the PostgreSQL volumes the chart renders in this mode, if any."""
    mode = database_mode(values)
    if mode == "bundled":
        own = str(lookup(values, "database", "bundled", "storageClassName", default="") or "")
        return "the bundled PostgreSQL's volume", _database_storage_class(values, own)
    if mode == "cloudnativepg":
        own = str(lookup(values, "database", "cloudnativepg", "storage", "storageClass", default="") or "")
        return "the CloudNativePG volumes", _database_storage_class(values, own)
    return None


def check_storage(values: Mapping[str, Any], cluster: Cluster) -> list[Check]:
    classes = cluster.storage_classes()
    defaults = [name for name, default, _ in classes if default]
    persistence = (
        database_mode(values) == "sqlite"
        and enabled(values, "manager", "persistence")
        and not lookup(values, "manager", "persistence", "storageClass")
    )
    own_class = enabled(values, "database", "arangodb") and not lookup(values, "database", "storageClass", "create")
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
        created = bool(lookup(values, "database", "storageClass", "create")) and wanted == lookup(
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
    if bool(lookup(values, "database", "storageClass", "create")):
        provisioner = str(lookup(values, "database", "storageClass", "provisioner", default=""))
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
