"""Helpers to test agents and workflows against pweza, in-process or as real processes.

In-process (no gRPC, no ports): `WorkflowEnvironment` runs an embedded manager on a temporary
SQLite store, with `ScriptedAgent`s doing what their scripts say (`Reply`, `Fail`, `Hang`,
`Vanish`) and a `FakeClock` the test moves on by hand; `eventually` and `eventually_async`
wait on a condition with a bound.

As processes: `Platform` starts a manager and agents as subprocesses; `Cluster` several manager replicas on
one PostgreSQL database (`PostgresServer` runs a throwaway one); `ControlPlane` a Kubernetes
control plane and `NodeCluster` a real kubelet joined to it; `MockLLM` an OpenAI-style endpoint;
`LocalModel` a real small language model (llama.cpp's server).
Each is imported on first use, so `import pweza.testing` stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pweza.testing.cluster import Cluster, running_cluster
    from pweza.testing.controlplane import ControlPlane
    from pweza.testing.environment import WorkflowEnvironment
    from pweza.testing.fake_clock import FakeClock
    from pweza.testing.local_model import LocalModel
    from pweza.testing.mock_llm import MockLLM
    from pweza.testing.node import NodeCluster
    from pweza.testing.platform import Platform, running_platform
    from pweza.testing.postgres import PostgresServer
    from pweza.testing.scripted_agent import Fail, Hang, Reply, ScriptedAgent, ScriptedTask, Vanish
    from pweza.testing.waiting import eventually, eventually_async

_HOMES = {
    "Cluster": "cluster",
    "ControlPlane": "controlplane",
    "Fail": "scripted_agent",
    "FakeClock": "fake_clock",
    "Hang": "scripted_agent",
    "LocalModel": "local_model",
    "MockLLM": "mock_llm",
    "NodeCluster": "node",
    "Platform": "platform",
    "PostgresServer": "postgres",
    "Reply": "scripted_agent",
    "ScriptedAgent": "scripted_agent",
    "ScriptedTask": "scripted_agent",
    "Vanish": "scripted_agent",
    "WorkflowEnvironment": "environment",
    "eventually": "waiting",
    "eventually_async": "waiting",
    "running_cluster": "cluster",
    "running_platform": "platform",
}
__all__ = [
    "Cluster",
    "ControlPlane",
    "Fail",
    "FakeClock",
    "Hang",
    "LocalModel",
    "MockLLM",
    "NodeCluster",
    "Platform",
    "PostgresServer",
    "Reply",
    "ScriptedAgent",
    "ScriptedTask",
    "Vanish",
    "WorkflowEnvironment",
    "eventually",
    "eventually_async",
    "running_cluster",
    "running_platform",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'pweza.testing' has no attribute {name!r}")
    return getattr(import_module(f"pweza.testing.{home}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
