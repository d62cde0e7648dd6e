"""A real control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok) for the session."""

from __future__ import annotations

import functools
import itertools
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pweza.testing.controlplane import BUILD_COMMAND, ControlPlane, k8s_bin_dir
from pweza.testing.platform import Platform, free_port
from pweza.testing.waiting import eventually as testing_eventually
from tests.conftest import missing

ROOT = Path(__file__).resolve().parents[2]
_names = itertools.count(1)


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    if k8s_bin_dir() is None:
        missing(f"Kubernetes binaries not built: run {BUILD_COMMAND} (make test does)")
    with ControlPlane(nodes=3) as cp:
        cp.kubectl("apply", "--server-side", "-f", str(ROOT / "deploy" / "crds"))
        cp.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        yield cp


@pytest.fixture
def namespace(control_plane: ControlPlane) -> Iterator[str]:
    name = f"t{next(_names)}-{int(time.time()) % 100000}"
    control_plane.kubectl("create", "namespace", name)
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


class Operator:
    def __init__(self, process: subprocess.Popen[bytes], log: Path, metrics_port: int, identity: str) -> None:
        self.process = process
        self.log = log
        self.metrics_port = metrics_port
        self.identity = identity

    def text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def start_operator(control_plane: ControlPlane, namespace: str, tmp_path: Path) -> Iterator[Callable[..., Operator]]:
    started: list[Operator] = []

    def start(identity: str = "op-a", *extra: str, lease_seconds: int = 6) -> Operator:
        log = tmp_path / f"operator-{identity}.log"
        metrics_port = free_port()
        args = [
            sys.executable, "-m", "pweza", "operator",
            "--kubeconfig", str(control_plane.kubeconfig), "--namespace", namespace,
            "--lease-namespace", namespace, "--identity", identity, "--lease-seconds", str(lease_seconds),
            "--metrics-port", str(metrics_port), "--health-port", str(free_port()), "--host", "127.0.0.1",
            "--resync-seconds", "3", *extra,
        ]  # fmt: skip
        with log.open("ab") as handle:
            process = subprocess.Popen(args, stdout=handle, stderr=handle)
        operator = Operator(process, log, metrics_port, identity)
        started.append(operator)
        return operator

    yield start
    for operator in started:
        if operator.process.poll() is None:
            operator.process.terminate()
    for operator in started:
        try:
            operator.process.wait(30)
        except subprocess.TimeoutExpired:
            operator.process.kill()


def get_json(cp: ControlPlane, *args: str) -> Any:
    result = cp.kubectl("get", *args, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


# The waits here ask kubectl or the API: more slowly than the harness's default.
eventually = functools.partial(testing_eventually, interval=0.25)


def apply_yaml(cp: ControlPlane, namespace: str, text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / f"manifest-{next(_names)}.yaml"
    path.write_text(text)
    return cp.kubectl("apply", "-n", namespace, "-f", str(path), check=False)


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[Platform]:
    """A manager process (embedded SQLite) for the operator to register resources with."""
    platform = Platform(tmp_path / "manager")
    (tmp_path / "manager").mkdir(exist_ok=True)
    try:
        platform.start_manager()
        yield platform
    finally:
        platform.stop()
