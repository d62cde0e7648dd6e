"""What the chosen database.mode needs of the cluster: the CloudNativePG kinds, or the external
database's Secret and key; and a warning for an enabled ArangoDB, which nothing uses yet."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from pweza.cli.doctor.cluster import Cluster
from pweza.cli.doctor.results import Check, Status
from pweza.cli.doctor.values import database_mode, enabled, lookup

__all__ = ["check_database"]


_CNPG: Final = "postgresql.cnpg.io/v1"


def check_database(values: Mapping[str, Any], cluster: Cluster, served: set[str]) -> list[Check]:
    """What database.mode needs beyond the storage (check_storage) and the API (check_apis)."""
    checks: list[Check] = []
    mode = database_mode(values)
    if enabled(values, "database", "arangodb"):
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
        if enabled(values, "database", "cloudnativepg", "backup"):
            wanted["scheduledbackups"] = "ScheduledBackup"
            wanted["backups"] = "Backup (made by the ScheduledBackup)"
        if enabled(values, "database", "cloudnativepg", "pooler"):
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
        secret = str(lookup(values, "database", "existingSecret", default="") or "")
        key = str(lookup(values, "database", "secretKey", default="database-url"))
        if not secret:
            checks.append(Check("database Secret", Status.OK, "the chart writes database.url to its own Secret"))
        else:
            namespace = str(lookup(values, "namespace", "system", default="pweza-core-system"))
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
