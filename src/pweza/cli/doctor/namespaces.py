"""The chart's namespaces and their labels (Pod Security Admission, Istio injection), whether the
chart renders them or they must be made and labelled by hand."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pweza.cli.doctor.cluster import Cluster
from pweza.cli.doctor.results import Check, Status
from pweza.cli.doctor.values import enabled, lookup

__all__ = ["check_namespaces", "expected_namespace_labels"]


def expected_namespace_labels(values: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """The labels the chart gives each of its namespaces (the seed's, plus Pod Security Admission)."""
    system = str(lookup(values, "namespace", "system", default="pweza-core-system"))
    injected = enabled(values, "istio") and bool(lookup(values, "istio", "injection", default=True))
    istio = "enabled" if injected else "disabled"
    result: dict[str, dict[str, str]] = {}
    for key in ("system", "agents", "data", "monitoring"):
        name = str(lookup(values, "namespace", key, default="") or system)
        enforce = str(lookup(values, "namespace", "podSecurity", key, "enforce", default="restricted"))
        result.setdefault(name, {"name": name, "istio-injection": istio, "pod-security.kubernetes.io/enforce": enforce})
    return result


def check_namespaces(values: Mapping[str, Any], cluster: Cluster, release_namespace: str | None = None) -> list[Check]:
    """The chart renders (so labels) its namespaces, except the release's own (Helm's, or yours)
    unless namespace.adoptReleaseNamespace; those it does not render need the labels set by hand."""
    create = bool(lookup(values, "namespace", "create", default=True))
    adopt = bool(lookup(values, "namespace", "adoptReleaseNamespace", default=False))
    release = release_namespace or str(lookup(values, "namespace", "system", default="pweza-core-system"))
    checks = []
    for name, labels in expected_namespace_labels(values).items():
        rendered = create and (name != release or adopt)
        found = cluster.namespace(name)
        wanted = " ".join(f"{k}={v}" for k, v in labels.items())
        label = f"kubectl label namespace {name} --overwrite {wanted}"
        check = f"namespace {name}"
        if found is None:
            if rendered:
                checks.append(Check(check, Status.OK, "absent; the chart creates it with its labels"))
            elif create:
                checks.append(
                    Check(
                        check,
                        Status.WARN,
                        "absent; `helm install --create-namespace` makes it without the chart's labels",
                        f"kubectl create namespace {name} && {label}",
                    )
                )
            else:
                checks.append(
                    Check(
                        check,
                        Status.FAIL,
                        "absent, and namespace.create=false",
                        f"kubectl create namespace {name} && {label}",
                    )
                )
            continue
        have, annotations = found
        wrong = {k: v for k, v in labels.items() if have.get(k) != v}
        owned = "meta.helm.sh/release-name" in annotations
        detail = (
            "labels differ: " + ", ".join(f"{k}={have.get(k, '<unset>')} (want {v})" for k, v in wrong.items())
            if wrong
            else "labels as the chart sets them"
        )
        if rendered and not owned:
            checks.append(
                Check(
                    check,
                    Status.WARN,
                    f"{detail}; exists without Helm's ownership, which the chart needs",
                    "install with --take-ownership",
                )
            )
        elif not wrong:
            checks.append(Check(check, Status.OK, detail))
        elif rendered:
            checks.append(Check(check, Status.WARN, f"{detail}; `helm upgrade` with these values sets them"))
        else:
            fix = f"kubectl label namespace {name} --overwrite " + " ".join(f"{k}={v}" for k, v in wrong.items())
            checks.append(Check(check, Status.FAIL, detail, fix))
    return checks
