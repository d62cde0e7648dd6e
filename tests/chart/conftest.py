"""The Helm chart: rendering with the real `helm`, and one real control plane for the session.

`helm` and the control plane binaries come from hack/build-k8s.sh (k8s_bin_dir()); without them
the tests that need them skip, naming the build command, and in CI (env CI set) they fail.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from pweza.testing.controlplane import BUILD_COMMAND, ControlPlane, k8s_bin_dir
from pweza.testing.waiting import eventually as testing_eventually
from tests.conftest import missing

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "pweza-core"
VALUES_FILES = ("values.yaml", "values-production.yaml", "values-staging.yaml")
# Third-party CRDs (prometheus-operator, Istio, VPA, kube-arangodb, KEDA, cert-manager): the
# `shared` folder beside the repository.
SHARED_CRDS = ROOT.parent / "shared" / "crds"
KUBE_VERSION = "1.28.0"
RELEASE = "pweza-core"
SYSTEM_NAMESPACE = "pweza-core-system"


def helm_path() -> Path:
    bin_dir = k8s_bin_dir()
    if bin_dir is None or not os.access(bin_dir / "helm", os.X_OK):
        missing(f"helm and the Kubernetes binaries are not built: run {BUILD_COMMAND} (make test does)")
    assert bin_dir is not None
    return bin_dir / "helm"


@cache
def _helm_env() -> dict[str, str]:
    # helm only renders here, but keeps its cache and config out of $HOME all the same.
    base = Path(os.environ.get("TMPDIR", "/tmp")) / f"pweza-chart-tests-{os.getpid()}"
    return {
        **os.environ,
        "HELM_CACHE_HOME": str(base / "cache"),
        "HELM_CONFIG_HOME": str(base / "config"),
        "HELM_DATA_HOME": str(base / "data"),
    }


def helm(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run helm; returns the completed process whatever its exit code."""
    return subprocess.run(
        [str(helm_path()), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or _helm_env(),
        check=False,
    )


@dataclass(frozen=True)
class Rendered:
    """What `helm template` printed for one set of values, parsed."""

    text: str
    documents: tuple[dict[str, Any], ...]

    def kinds(self) -> set[str]:
        return {doc["kind"] for doc in self.documents}

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [doc for doc in self.documents if doc["kind"] == kind]

    def one(self, kind: str, name: str) -> dict[str, Any]:
        found = [doc for doc in self.of(kind) if doc["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name}, found {[d['metadata']['name'] for d in self.of(kind)]}"
        return found[0]


def _documents(text: str) -> tuple[dict[str, Any], ...]:
    return tuple(doc for doc in yaml.safe_load_all(text) if doc)


@cache
def _render(values: tuple[str, ...], sets: tuple[str, ...], include_crds: bool, namespace: str | None) -> Rendered:
    # As the issue's `helm template --kube-version 1.28.0`: without --namespace the release is in
    # "default", so all four of the chart's namespaces render.
    args = ["template", RELEASE, str(CHART), "--kube-version", KUBE_VERSION]
    if namespace:
        args += ["--namespace", namespace]
    for name in values:
        args += ["--values", str(CHART / name)]
    for assignment in sets:
        args += ["--set", assignment]
    if include_crds:
        args.append("--include-crds")
    result = helm(*args)
    if result.returncode != 0:
        raise AssertionError(f"helm template {' '.join(args[1:])} failed:\n{result.stderr}")
    return Rendered(result.stdout, _documents(result.stdout))


def render(
    *values: str, sets: tuple[str, ...] = (), include_crds: bool = False, namespace: str | None = None
) -> Rendered:
    """`helm template` of the chart with these values files (in charts/pweza-core/) and --set's."""
    files = tuple(name for name in values if name != "values.yaml")  # the chart's own is always first
    return _render(files, sets, include_crds, namespace)


def render_error(*sets: str) -> str:
    args = ["template", RELEASE, str(CHART), "--kube-version", KUBE_VERSION]
    for assignment in sets:
        args += ["--set", assignment]
    result = helm(*args)
    assert result.returncode != 0, "helm template should have refused these values"
    return result.stderr


@dataclass
class Cluster:
    cp: ControlPlane

    def helm(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return helm(*args, env=self.cp.env, timeout=timeout)

    def get(self, *args: str) -> Any:
        result = self.cp.kubectl("get", *args, "-o", "json", check=False)
        return json.loads(result.stdout) if result.returncode == 0 else None


def doctor(cp: ControlPlane, *values: str) -> tuple[int, list[dict[str, str]]]:
    """Run `pweza doctor -o json` as a user would, against the control plane."""
    args = [sys.executable, "-m", "pweza", "doctor"]
    for name in values:
        args += ["--values", str(CHART / name)]
    result = subprocess.run(
        [*args, "--chart", str(CHART), "--kubeconfig", str(cp.kubeconfig), "--output", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=cp.env,
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(result.stdout)


def start_control_plane() -> ControlPlane:
    helm_path()
    return ControlPlane(nodes=3)


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """A control plane with the third-party CRDs and the chart's CRDs installed."""
    if not SHARED_CRDS.is_dir():
        missing(f"the third-party CRDs are not at {SHARED_CRDS}")
    with start_control_plane() as cp:
        # Server-side: several of these CRDs are far larger than client-side apply's annotation limit.
        cp.kubectl("apply", "--server-side", "-f", str(SHARED_CRDS), "-f", str(CHART / "crds"), timeout=120)
        # `kubectl wait` errors out on a CRD the apiserver has not given a status yet: ask again.
        eventually(
            lambda: (
                cp.kubectl(
                    "wait", "--for=condition=Established", "crd", "--all", "--timeout=30s", check=False
                ).returncode
                == 0
            ),
            90,
            "the CRDs to be established",
        )
        yield Cluster(cp)


def checks_by_name(report: list[dict[str, str]]) -> dict[str, dict[str, str]]:
    return {check["check"]: check for check in report}


# The waits here ask kubectl or the API: more slowly than the harness's default.
eventually = functools.partial(testing_eventually, interval=0.25)
