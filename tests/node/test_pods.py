"""The node itself, as a pod sees it: our image runs under the `restricted` Pod Security profile,
cluster names resolve through CoreDNS, Services route through kube-proxy, nothing leaves the
machine."""

from __future__ import annotations

import json
import subprocess
import textwrap
from collections.abc import Iterator

import pytest

from pweza.testing.node import BRIDGE
from tests.node.conftest import Node, eventually, restricted_pod

# A release takes minutes to become Ready on two cores; its setup counts in the first test.
pytestmark = [pytest.mark.node, pytest.mark.timeout(1800)]
NAMESPACE = "node-checks"


@pytest.fixture(scope="module")
def namespace(node: Node) -> Iterator[str]:
    node.kubectl("create", "namespace", NAMESPACE)
    node.kubectl("label", "namespace", NAMESPACE, "pod-security.kubernetes.io/enforce=restricted")
    yield NAMESPACE
    node.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)


def run_pod(node: Node, name: str, command: list[str], timeout: float = 120) -> tuple[str, str]:
    """Run one pod of the pweza-core image to completion; its phase and its log."""
    pod = restricted_pod(name, NAMESPACE, command)
    node.kubectl("apply", "-f", "-", stdin=json.dumps(pod))

    def finished() -> str | None:
        found = node.get("pod", name, "-n", NAMESPACE) or {}
        phase = (found.get("status") or {}).get("phase")
        return phase if phase in ("Succeeded", "Failed") else None

    phase = eventually(finished, timeout, f"pod {name} to finish", interval=1)
    log = node.kubectl("logs", name, "-n", NAMESPACE, check=False)
    return str(phase), log.stdout + log.stderr


def python(code: str) -> list[str]:
    return ["/venv/bin/python", "-c", textwrap.dedent(code)]


def test_the_image_runs_pweza_as_uid_1000_under_restricted(node: Node, namespace: str) -> None:
    phase, log = run_pod(node, "version", ["/venv/bin/pweza", "version"])
    assert phase == "Succeeded", log
    assert "0.1.0" in log
    # The image's USER alone (runAsNonRoot checks it is not root). Its group is not applied by
    # containerd 1.6 unless the pod names one, which is why the chart and the operator set
    # runAsGroup (tests/node/test_chart.py checks the chart's processes).
    phase, log = run_pod(node, "whoami", python("import os; print(os.getuid())"))
    assert (phase, log.split()) == ("Succeeded", ["1000"]), log


def test_cluster_names_resolve_and_the_apiserver_answers_through_its_service(node: Node, namespace: str) -> None:
    service_ip = node.get("service", "kubernetes", "-n", "default")["spec"]["clusterIP"]
    phase, log = run_pod(
        node,
        "dns",
        python(
            """
            import socket, ssl, urllib.request, urllib.error
            print(socket.gethostbyname("kubernetes.default.svc.cluster.local"))
            context = ssl.create_default_context(cafile="/var/run/secrets/kubernetes.io/serviceaccount/ca.crt")
            token = open("/var/run/secrets/kubernetes.io/serviceaccount/token").read()
            request = urllib.request.Request("https://kubernetes.default.svc/version",
                                             headers={"Authorization": "Bearer " + token})
            print(urllib.request.urlopen(request, context=context, timeout=10).status)
            try:
                socket.gethostbyname("example.com")
                print("resolved")
            except OSError:
                print("unresolved")
            """
        ),
    )
    assert phase == "Succeeded", log
    assert log.split() == [service_ip, "200", "unresolved"], log


def test_nothing_a_pod_sends_is_routed_off_the_machine(node: Node) -> None:
    # Asks the kernel how it would route a pod's packet to an address beyond the machine
    # (documentation range, no packet is sent): the node's routing table knows none.
    result = subprocess.run(
        ["ip", "route", "get", "203.0.113.7", "from", "10.244.0.200", "iif", BRIDGE],
        capture_output=True, text=True, timeout=10, check=False,
    )  # fmt: skip
    assert result.returncode != 0 and "no route to host" in result.stderr.lower(), result.stdout + result.stderr
    # To another pod on the bridge it routes, so Services work.
    inside = subprocess.run(
        ["ip", "route", "get", "10.244.0.9", "from", "10.244.0.200", "iif", BRIDGE],
        capture_output=True, text=True, timeout=10, check=False,
    )  # fmt: skip
    assert inside.returncode == 0 and f"dev {BRIDGE}" in inside.stdout, inside.stdout + inside.stderr
