"""Helpers to run a real pweza platform in tests: processes on loopback, fake kubelets.

`Platform` starts a manager and agents as subprocesses; `Cluster` several manager replicas on
one PostgreSQL database (`PostgresServer` runs a throwaway one); `ControlPlane` a Kubernetes
control plane and `NodeCluster` a real kubelet joined to it; `MockLLM` an OpenAI-style endpoint.
Each is imported on first use, so `import pweza.testing` stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pweza.testing.cluster import Cluster, running_cluster
    from pweza.testing.controlplane import ControlPlane
    from pweza.testing.mock_llm import MockLLM
    from pweza.testing.node import NodeCluster
    from pweza.testing.platform import Platform, running_platform
    from pweza.testing.postgres import PostgresServer

__all__ = [
    "Cluster",
    "ControlPlane",
    "MockLLM",
    "NodeCluster",
    "Platform",
    "PostgresServer",
    "running_cluster",
    "running_platform",
]

_HOMES = {
    "Cluster": "cluster",
    "ControlPlane": "controlplane",
    "MockLLM": "mock_llm",
    "NodeCluster": "node",
    "Platform": "platform",
    "PostgresServer": "postgres",
    "running_cluster": "cluster",
    "running_platform": "platform",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'pweza.testing' has no attribute {name!r}")
    return getattr(import_module(f"pweza.testing.{home}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
