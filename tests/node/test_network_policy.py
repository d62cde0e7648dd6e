"""The chart's NetworkPolicies, enforced on the node (kube-router's firewall): who may open which
port, tried with real TCP connections from pods in and out of the admitted namespaces."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator

import pytest

from tests.node.conftest import AGENTS, DATA, MANAGER, SYSTEM, Node, Release, eventually, restricted_pod

# A release takes minutes to become Ready on two cores; its setup counts in the first test.
pytestmark = [pytest.mark.node, pytest.mark.timeout(1800)]
OUTSIDER = "outsiders"  # a namespace no policy of the chart admits
_PROBE = """
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
try:
    socket.create_connection((host, port), timeout=4).close()
    print("open")
except OSError as error:
    print("closed", type(error).__name__)
"""
_SERVER = "import http.server\nhttp.server.HTTPServer(('', 8080), http.server.SimpleHTTPRequestHandler).serve_forever()"
_counter = iter(range(1000))


def probe(node: Node, namespace: str, host: str, port: int) -> str:
    """Open a TCP connection from a fresh pod in ``namespace``: "open" or "closed <error>"."""
    name = f"probe-{next(_counter)}"
    command = ["/venv/bin/python", "-c", textwrap.dedent(_PROBE), host, str(port)]
    node.kubectl("apply", "-f", "-", stdin=json.dumps(restricted_pod(name, namespace, command)))

    def finished() -> bool:
        phase = ((node.get("pod", name, "-n", namespace) or {}).get("status") or {}).get("phase")
        return phase in ("Succeeded", "Failed")

    eventually(finished, 120, f"probe pod {name}", interval=1)
    result = node.kubectl("logs", name, "-n", namespace).stdout.strip()
    node.kubectl("delete", "pod", name, "-n", namespace, "--wait=false", check=False)
    return result


def from_manager(node: Node, host: str, port: int) -> str:
    """The same probe from inside the manager's own container (the image has Python, no shell)."""
    result = node.kubectl(
        "exec", "-n", SYSTEM, f"deploy/{MANAGER}", "--", "/venv/bin/python", "-c", textwrap.dedent(_PROBE),
        host, str(port),
    )  # fmt: skip
    return result.stdout.strip()


def cluster_ip(node: Node, namespace: str, name: str) -> str:
    return str(node.get("service", name, "-n", namespace)["spec"]["clusterIP"])


def serving_manager(node: Node) -> str:
    """The manager Service's ClusterIP, once its Deployment has rolled out and the Service has a
    ready endpoint: an earlier test's upgrade or rollback may still be replacing the pod, and a
    Service with no endpoint refuses connections whatever the policies say."""
    node.kubectl("rollout", "status", f"deployment/{MANAGER}", "-n", SYSTEM, "--timeout=300s", timeout=320)

    def ready_endpoint() -> bool:
        slices = node.get("endpointslices", "-n", SYSTEM, "-l", f"kubernetes.io/service-name={MANAGER}")
        return any(
            (e.get("conditions") or {}).get("ready")
            for s in (slices or {}).get("items", [])
            for e in s.get("endpoints") or []
        )

    eventually(ready_endpoint, 120, "a ready endpoint of the manager Service", interval=1)
    return cluster_ip(node, SYSTEM, MANAGER)


@pytest.fixture(scope="module")
def outsiders(release: Release) -> Iterator[str]:
    node = release.node
    node.kubectl("create", "namespace", OUTSIDER)
    node.kubectl("label", "namespace", OUTSIDER, "pod-security.kubernetes.io/enforce=restricted")
    yield OUTSIDER
    node.kubectl("delete", "namespace", OUTSIDER, "--wait=false", check=False)


@pytest.fixture(scope="module")
def web_server(release: Release, outsiders: str) -> str:
    """A plain HTTP server pod in the outsiders' namespace: a destination the manager must not reach."""
    node = release.node
    node.kubectl(
        "apply", "-f", "-", stdin=json.dumps(restricted_pod("web", outsiders, ["/venv/bin/python", "-c", _SERVER]))
    )
    eventually(
        lambda: (node.get("pod", "web", "-n", outsiders) or {}).get("status", {}).get("podIP"), 120, "the web pod"
    )
    node.kubectl("wait", "--for=condition=Ready", "pod/web", "-n", outsiders, "--timeout=120s", timeout=130)
    return str(node.get("pod", "web", "-n", outsiders)["status"]["podIP"])


def test_agents_reach_the_manager_grpc_port_and_an_unadmitted_namespace_does_not(
    release: Release, outsiders: str
) -> None:
    node = release.node
    manager = serving_manager(node)

    # kube-proxy programs a new endpoint within its sync period: the admitted path is tried
    # until it opens (bounded), the refused ones below once each, after it has.
    def agents_reach_grpc() -> str | None:
        said = probe(node, AGENTS, manager, 9090)
        return said if said == "open" else None

    eventually(agents_reach_grpc, 90, "agents reaching the manager's gRPC port")
    assert probe(node, outsiders, manager, 9090).startswith("closed")
    assert probe(node, outsiders, manager, 8080).startswith("closed")


def test_the_database_admits_the_manager_only(release: Release, outsiders: str) -> None:
    node = release.node
    services = node.get("services", "-n", DATA)["items"]
    (database,) = [
        s["metadata"]["name"]
        for s in services
        if "postgres" in s["metadata"]["name"] and s["spec"].get("clusterIP") not in (None, "None")
    ]
    address = cluster_ip(node, DATA, database)
    assert from_manager(node, address, 5432) == "open"
    # Not from a pod of the manager's own namespace without its labels, nor from elsewhere.
    assert probe(node, SYSTEM, address, 5432).startswith("closed")
    assert probe(node, outsiders, address, 5432).startswith("closed")
    assert probe(node, AGENTS, address, 5432).startswith("closed")


def test_the_manager_reaches_its_database_and_dns_but_nothing_else(release: Release, web_server: str) -> None:
    node = release.node
    # The web server is up: a pod of its own namespace (no policy there) reaches it.
    assert probe(node, OUTSIDER, web_server, 8080) == "open"
    assert from_manager(node, web_server, 8080).startswith("closed")
    # The apiserver is not something the manager needs either (it calls no Kubernetes API).
    assert from_manager(node, cluster_ip(node, "default", "kubernetes"), 443).startswith("closed")
    # DNS still answers it: the names it needs resolve.
    resolved = node.kubectl(
        "exec", "-n", SYSTEM, f"deploy/{MANAGER}", "--", "/venv/bin/python", "-c",
        f"import socket; print(socket.gethostbyname('{MANAGER}.{SYSTEM}.svc.cluster.local'))",
    )  # fmt: skip
    assert resolved.stdout.strip() == cluster_ip(node, SYSTEM, MANAGER)
