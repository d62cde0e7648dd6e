"""The chart on a real node: containerd runs its pods, kube-proxy routes its Services, CoreDNS
answers its names (pweza.testing.node). One node and one `helm install` for the node tests,
since a release takes minutes to become Ready on two cores; tests that change the release
(upgrade, rollback) put it back as they found it.

Without the node's parts (root, Debian's containerd/runc/CNI plugins, the kit from
hack/build-k8s.sh, the images from hack/build-image.sh) the tests skip and say what is missing;
in CI (env CI set) they fail instead.
"""

from __future__ import annotations

import base64
import functools
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from pweza.testing.images import CORE_IMAGE
from pweza.testing.node import STORAGE_CLASS, NodeCluster, node_unavailable
from pweza.testing.waiting import eventually as testing_eventually
from tests.conftest import missing

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "pweza-core"
RELEASE = "pweza-core"
SYSTEM = "pweza-core-system"
AGENTS = "pweza-core-agents"
DATA = "pweza-core-data"
MANAGER = "pweza-core-manager"
OPERATOR = "pweza-core-operator"
# The values a small cluster would use: the chart's defaults plus its bundled PostgreSQL on the
# node's local volumes.
NODE_VALUES = (
    "--set", "database.mode=bundled",
    "--set", f"database.bundled.storageClassName={STORAGE_CLASS}",
    "--set", "database.bundled.size=1Gi",
    "--set", "manager.persistence.enabled=false",
)  # fmt: skip


def restricted_pod(
    name: str, namespace: str, command: list[str], labels: dict[str, str] | None = None
) -> dict[str, Any]:
    """A pod of the pweza-core image that Pod Security `restricted` admits, run once."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {"app": "probe"}},
        "spec": {
            "restartPolicy": "Never",
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [
                {
                    "name": "main",
                    "image": CORE_IMAGE,
                    "imagePullPolicy": "IfNotPresent",
                    "command": command,
                    "workingDir": "/tmp",
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }


# The waits here ask kubectl or the API: more slowly than the harness's default.
eventually = functools.partial(testing_eventually, interval=0.5)


@dataclass
class Node:
    """The node cluster plus what tests do to it as a user would: helm, kubectl, the REST API."""

    cluster: NodeCluster

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return self.cluster.kubectl(*args, stdin=stdin, check=check, timeout=timeout)

    def helm(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.cluster.bin_dir / "helm"), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.cluster.env,
            check=False,
        )

    def get(self, *args: str) -> Any:
        result = self.kubectl("get", *args, "-o", "json", check=False)
        return json.loads(result.stdout) if result.returncode == 0 else None

    def service_url(self, name: str, namespace: str, port: int) -> str:
        """The Service's ClusterIP as a user inside the cluster would reach it (kube-proxy routes
        it to a pod on the node's bridge)."""
        service = self.get("service", name, "-n", namespace)
        assert service is not None, f"no Service {namespace}/{name}"
        return f"http://{service['spec']['clusterIP']}:{port}"

    def pods(self, namespace: str, selector: str | None = None) -> list[dict[str, Any]]:
        args = ["pods", "-n", namespace] + (["-l", selector] if selector else [])
        found = self.get(*args)
        return list(found["items"]) if found else []

    def describe_failures(self, *namespaces: str) -> str:
        """What a user looks at when a pod is not Ready: pods, events, the last log lines."""
        parts = []
        for namespace in namespaces:
            parts.append(self.kubectl("get", "pods", "-n", namespace, "-o", "wide", check=False).stdout)
            events = self.kubectl("get", "events", "-n", namespace, "--sort-by=.lastTimestamp", check=False)
            parts.append("\n".join(events.stdout.splitlines()[-15:]))
            for pod in self.pods(namespace):
                if not _ready(pod):
                    name = pod["metadata"]["name"]
                    logs = self.kubectl("logs", "-n", namespace, name, "--all-containers", "--tail=20", check=False)
                    parts.append(f"--- {namespace}/{name} ---\n{logs.stdout}{logs.stderr}")
        return "\n".join(parts)


def _ready(pod: dict[str, Any]) -> bool:
    if pod.get("status", {}).get("phase") == "Succeeded":
        return True
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def all_ready(node: Node, namespace: str) -> bool:
    pods = node.pods(namespace)
    return bool(pods) and all(_ready(p) for p in pods if not p["metadata"].get("deletionTimestamp"))


@pytest.fixture(scope="package")
def node() -> Iterator[Node]:
    reason = node_unavailable()
    if reason is not None:
        missing(reason)
    with NodeCluster() as cluster:
        yield Node(cluster)


@dataclass
class Release:
    node: Node
    install: subprocess.CompletedProcess[str]
    admin_token: str
    url: str  # the manager's REST API through its Service

    def client(self, token: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {token or self.admin_token}"}, timeout=30
        )


def _notes_commands(notes: str, prefix: str) -> list[str]:
    return [line.strip() for line in notes.splitlines() if line.strip().startswith(prefix)]


def _bootstrap_tokens(node: Node, install_notes: str) -> str:
    """The first-start steps NOTES.txt prints: an admin token made inside the manager's pod, then
    the operator's and the agents' tokens as Secrets, then the operator restarted to read its own."""
    # The Secret and key the manager's Deployment reads DATABASE_URL from, whatever the mode.
    manager = node.get("deployment", MANAGER, "-n", SYSTEM)["spec"]["template"]["spec"]["containers"][0]
    ref = next(e for e in manager["env"] if e["name"] == "DATABASE_URL")["valueFrom"]["secretKeyRef"]
    database_url = base64.b64decode(node.get("secret", ref["name"], "-n", SYSTEM)["data"][ref["key"]]).decode()
    admin = node.kubectl(
        "exec", "-n", SYSTEM, f"deploy/{MANAGER}", "--", "pweza", "token", "create",
        "--role", "admin", "--name", "bootstrap", "--database-url", database_url,
    ).stdout.strip()  # fmt: skip
    assert admin and " " not in admin, admin
    admin = str(admin)
    url = node.service_url(MANAGER, SYSTEM, 8080)
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin}"}, timeout=30) as client:

        def token(role: str, name: str, *extra: tuple[str, Any]) -> str:
            response = client.post("/api/v1/tokens", json={"name": name, "role": role, "ttl": "365d", **dict(extra)})
            assert response.status_code == 201, response.text
            return str(response.json()["token"])

        operator = token("operator", "operator")
        agents = token("agent", "agents", ("anyPool", True))
    node.kubectl("create", "secret", "generic", "pweza-core-operator-token", "-n", SYSTEM,
                 f"--from-literal=token={operator}")  # fmt: skip
    node.kubectl("create", "secret", "generic", "pweza-agent-token", "-n", AGENTS, f"--from-literal=token={agents}")
    node.kubectl("rollout", "restart", f"deployment/{OPERATOR}", "-n", SYSTEM)
    node.kubectl("rollout", "status", f"deployment/{OPERATOR}", "-n", SYSTEM, "--timeout=300s", timeout=320)
    return admin


@pytest.fixture(scope="package")
def release(node: Node) -> Iterator[Release]:
    """`helm install --wait` as NOTES.txt and docs/chart.md say, into a system namespace labelled
    for Pod Security Admission `restricted` before any pod is made."""
    node.kubectl("create", "namespace", SYSTEM)
    node.kubectl("label", "namespace", SYSTEM, "pod-security.kubernetes.io/enforce=restricted", f"name={SYSTEM}")
    install = node.helm(
        "install", RELEASE, str(CHART), "--namespace", SYSTEM, *NODE_VALUES, "--wait", "--timeout", "12m",
    )  # fmt: skip
    assert install.returncode == 0, install.stderr + node.describe_failures(SYSTEM, DATA, AGENTS)
    admin = _bootstrap_tokens(node, install.stdout)
    yield Release(node, install, admin, node.service_url(MANAGER, SYSTEM, 8080))


TRIAGE = ROOT / "examples" / "support-triage"
TRIAGE_POOLS = ("classifiers", "routers", "pagers", "coordinators", "writers", "reporters")


def pool_ready(node: Node, pool: str) -> bool:
    found = node.get("agentpool", pool, "-n", AGENTS) or {}
    conditions = (found.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


@pytest.fixture(scope="package")
def triage(release: Release) -> Release:
    """`kubectl apply -f examples/support-triage/` (the files `pweza apply` takes): the operator
    makes each pool's Deployment and its agent pods connect to the manager through its Service."""
    node = release.node
    node.kubectl("apply", "-n", AGENTS, "-f", str(TRIAGE))
    for pool in TRIAGE_POOLS:
        eventually(functools.partial(pool_ready, node, pool), 300, f"AgentPool {pool} Ready", interval=2)

    def connected() -> bool:
        with release.client() as client:
            agents = client.get("/api/v1/agents").json()["items"]
        return {a["pool"] for a in agents} >= set(TRIAGE_POOLS)

    eventually(connected, 300, "an agent of every triage pool connected to the manager", interval=2)
    return release


__all__ = [
    "AGENTS",
    "CHART",
    "DATA",
    "MANAGER",
    "OPERATOR",
    "RELEASE",
    "SYSTEM",
    "Node",
    "Release",
    "all_ready",
    "eventually",
    "pool_ready",
    "restricted_pod",
    "triage",
]  # fmt: skip
