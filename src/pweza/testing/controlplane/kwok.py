"""kwok, the fake kubelets: its Stage objects, the Node objects it manages, its flags, and when
its nodes count as ready."""

from __future__ import annotations

import importlib.resources
import pathlib
from typing import Any, Final

__all__ = ["KWOK_NODE_ANNOTATION", "NODE_SELECTOR", "kwok_args", "node_object", "ready_node_names", "stages_yaml"]

KWOK_NODE_ANNOTATION: Final = "kwok.x-k8s.io/node"
NODE_SELECTOR: Final = "type=kwok"  # the label every node made here carries
_POD_CIDR: Final = "10.244.0.0/16"
_NODE_LEASE_SECONDS: Final = 40

# kwok only simulates what its Stage objects describe, and the bare `kwok` binary ships
# none (kwokctl injects these same defaults). manifests/kwok-stages.yaml is copied from kwok
# v0.8.0 kustomize/stage/{node/fast,node/heartbeat-with-lease,pod/fast}.
_STAGES_FILE: Final = "manifests/kwok-stages.yaml"  # package data of pweza.testing


def stages_yaml() -> str:
    return importlib.resources.files("pweza.testing").joinpath(_STAGES_FILE).read_text()


def kwok_args(kubeconfig: pathlib.Path, stages: pathlib.Path, server_port: int) -> list[str]:
    """kwok's flags: it manages only the nodes annotated here, never a real node."""
    return [
        f"--kubeconfig={kubeconfig}",
        f"--config={stages}",
        "--manage-all-nodes=false",
        f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
        "--node-ip=127.0.0.1",
        f"--cidr={_POD_CIDR}",
        f"--node-lease-duration-seconds={_NODE_LEASE_SECONDS}",
        f"--server-address=127.0.0.1:{server_port}",
    ]


def node_object(name: str) -> dict[str, Any]:
    """A Node for kwok to run pods on."""
    # As a kubelet reports them; without ephemeral-storage a pod that requests it never schedules.
    resources = {"cpu": "32", "memory": "256Gi", "ephemeral-storage": "500Gi", "pods": "110"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {
                KWOK_NODE_ANNOTATION: "fake",
                "node.alpha.kubernetes.io/ttl": "0",
            },
            "labels": {
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/role": "agent",
                "node-role.kubernetes.io/agent": "",
                "type": "kwok",
            },
        },
        # Node status is accepted on create; kwok keeps capacity it finds set.
        "status": {"allocatable": resources, "capacity": resources},
    }


def ready_node_names(node_list: dict[str, Any]) -> set[str]:
    """The names of the nodes in a NodeList that are Ready and take pods."""
    ready = set()
    for node in node_list.get("items", []):
        conditions = node.get("status", {}).get("conditions", [])
        is_ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
        # The node lifecycle controller lifts this taint a moment after Ready; until
        # then the scheduler would leave pods Pending.
        tainted = any(
            t.get("key", "").startswith("node.kubernetes.io/") for t in node.get("spec", {}).get("taints", []) or []
        )
        if is_ready and not tainted:
            ready.add(node["metadata"]["name"])
    return ready
