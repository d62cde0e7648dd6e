"""The chart's values as the checks read them: values.yaml (or the built-in copy of what the
checks need from it), then each ``--values`` file, merged as Helm merges them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from pweza.domain.errors import InvalidInput
from pweza.domain.safe_yaml import load_one

__all__ = ["BUILT_IN_DEFAULTS", "DEFAULT_CHART", "database_mode", "enabled", "load_values", "lookup", "merge_values"]

DEFAULT_CHART: Final = Path("charts/pweza-core")

# What the checks read from the chart's values.yaml, for when the chart is not at hand
# (tests/chart/test_doctor.py keeps this in step with charts/pweza-core/values.yaml).
BUILT_IN_DEFAULTS: Final[Mapping[str, Any]] = {
    "namespace": {
        "create": True,
        "adoptReleaseNamespace": False,
        "system": "pweza-core-system",
        "agents": "pweza-core-agents",
        "data": "pweza-core-data",
        "monitoring": "pweza-core-monitoring",
        "podSecurity": {
            "system": {"enforce": "restricted"},
            "agents": {"enforce": "restricted"},
            "data": {"enforce": "baseline", "warn": "restricted"},
            "monitoring": {"enforce": "privileged", "warn": "baseline"},
        },
    },
    "manager": {
        "hpa": {"enabled": False},
        "vpa": {"enabled": False},
        "persistence": {"enabled": True, "storageClass": ""},
    },
    "database": {
        "mode": "sqlite",
        "existingSecret": "",
        "secretKey": "database-url",
        "bundled": {"storageClassName": ""},
        "cloudnativepg": {
            "storage": {"storageClass": ""},
            "backup": {"enabled": False},
            "pooler": {"enabled": False},
        },
        "arangodb": {"enabled": False},
        "storageClass": {"create": False, "name": "pweza-core-gp3", "provisioner": "ebs.csi.aws.com"},
        "backup": {"enabled": False},
    },
    "tls": {"enabled": False, "certManager": {"enabled": False}},
    "operator": {"enabled": True},
    # certManager.enabled None: as tls.certManager, which the cert-manager check reads first.
    "admissionWebhook": {"enabled": True, "certManager": {"enabled": None}},
    "agentPools": {"smoke": {"scaling": {"minReplicas": 1, "maxReplicas": 3}}},
    "monitoring": {
        "serviceMonitor": {"enabled": False},
        "prometheusRule": {"enabled": False},
        "alertmanagerConfig": {"enabled": False},
    },
    "prometheusAdapter": {"enabled": False},
    "ingress": {"enabled": False, "className": "nginx"},
    "istio": {"enabled": False, "injection": True},
}


def merge_values(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Helm's merge: maps merge key by key, anything else replaces, and null deletes the key."""
    merged: dict[str, Any] = dict(base)
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_values(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_values(files: Sequence[Path], chart: Path | None = None) -> dict[str, Any]:
    """The chart's values.yaml (or the built-in defaults), then each file in order."""
    chart_dir = chart if chart is not None else (DEFAULT_CHART if (DEFAULT_CHART / "values.yaml").exists() else None)
    values = _read_mapping(chart_dir / "values.yaml") if chart_dir else merge_values({}, BUILT_IN_DEFAULTS)
    for path in files:
        values = merge_values(values, _read_mapping(path))
    return values


def _read_mapping(path: Path) -> dict[str, Any]:
    try:
        loaded = load_one(path.read_bytes(), str(path))
    except OSError as error:
        raise ValueError(f"{path}: {error}") from None
    except InvalidInput as error:
        raise ValueError(error.detail) from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: expected a mapping of values")
    return loaded


def lookup(values: Mapping[str, Any], *path: str, default: Any = None) -> Any:
    """The value at a dotted path (given as keys), or ``default`` where the path stops."""
    node: Any = values
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return default
        node = node[key]
    return node


def enabled(values: Mapping[str, Any], *path: str) -> bool:
    """``<path>.enabled``, false when unset."""
    return bool(lookup(values, *path, "enabled", default=False))


def database_mode(values: Mapping[str, Any]) -> str:
    return str(lookup(values, "database", "mode", default="sqlite"))
