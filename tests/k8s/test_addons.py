"""The node add-ons (CoreDNS, metrics-server, kube-router firewall) as host processes."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pweza.testing.addons import (
    METRICS_API_SERVICE,
    RCODE_NOERROR,
    RCODE_NXDOMAIN,
    AddonError,
    CertificateAuthority,
    CoreDNS,
    KubeRouterFirewall,
    MetricsServer,
    addon_bin_dir,
    aggregator_apiserver_flags,
    free_dns_port,
    ipset_names,
    iptables_snapshot,
    remove_kube_router_firewall_state,
    running_kube_routers,
    write_kubeconfig,
)
from pweza.testing.controlplane import BUILD_COMMAND, ControlPlane, k8s_bin_dir
from pweza.testing.platform import free_port
from tests.conftest import missing
from tests.k8s.conftest import apply_yaml, eventually, get_json

pytestmark = [pytest.mark.k8s, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def bin_dir() -> Path:
    found = addon_bin_dir(k8s_bin_dir())
    if found is None:
        missing(f"node add-on binaries (coredns, metrics-server, kube-router) not built: run {BUILD_COMMAND}")
    return found


def test_coredns_resolves_services_and_nothing_else(
    bin_dir: Path, control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    # Not the usual 127.0.0.1: any loopback address can be bound, as a node-local DNS is.
    listen_ip = "127.0.0.53"
    control_plane.kubectl("create", "service", "clusterip", "web", "--tcp=80:8080", "-n", namespace)
    cluster_ip = control_plane.kubectl(
        "get", "service", "web", "-n", namespace, "-o", "jsonpath={.spec.clusterIP}"
    ).stdout.strip()

    with CoreDNS(bin_dir, control_plane.kubeconfig, listen_ip, free_dns_port(listen_ip), tmp_path) as dns:
        assert "forward" not in dns.corefile.read_text()
        answer = dns.query(f"web.{namespace}.svc.cluster.local")
        assert (answer.rcode, answer.addresses) == (RCODE_NOERROR, [cluster_ip])
        assert dns.query("kubernetes.default.svc.cluster.local").addresses == ["10.96.0.1"]
        # The reverse zone of the service CIDR is served too.
        reverse = ".".join(reversed(cluster_ip.split("."))) + ".in-addr.arpa"
        assert dns.query(reverse, "PTR").names == [f"web.{namespace}.svc.cluster.local."]

        # A Service made after startup is picked up from the watch.
        control_plane.kubectl("create", "service", "clusterip", "late", "--tcp=80:80", "-n", namespace)
        eventually(lambda: dns.query(f"late.{namespace}.svc.cluster.local").addresses, 15, "the late Service")

        assert dns.query(f"missing.{namespace}.svc.cluster.local").rcode == RCODE_NXDOMAIN
        outside = dns.query("example.com")
        assert (outside.rcode, outside.records) == (RCODE_NXDOMAIN, ())
        assert dns.query("10.1.168.192.in-addr.arpa", "PTR").rcode == RCODE_NXDOMAIN

        # Nothing could have gone upstream: no forwarding plugin is even compiled in.
        plugins = subprocess.run(
            [str(bin_dir / "coredns"), "-plugins"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
        assert "kubernetes" in plugins.split()
        assert not {"forward", "grpc", "etcd", "file", "secondary"} & set(plugins.split())
    assert dns.process is None


def test_coredns_that_never_gets_ready_is_stopped_with_its_log(bin_dir: Path, tmp_path: Path) -> None:
    # An apiserver nobody listens on: the kubernetes plugin never syncs, /ready stays 503.
    kubeconfig = tmp_path / "nowhere.kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": f"https://127.0.0.1:{free_port()}"}}],
                "users": [{"name": "u", "user": {}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    port = free_dns_port()
    dns = CoreDNS(bin_dir, kubeconfig, "127.0.0.1", port, tmp_path, startup_timeout=3)
    with pytest.raises(AddonError, match="timed out") as failure:
        dns.start()
    assert "coredns.log" in str(failure.value)
    assert dns.process is None
    # Nothing is left bound to the port.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", port))


@pytest.fixture
def host_firewall_tools() -> None:
    if os.geteuid() != 0:
        pytest.skip("kube-router changes iptables rules and ipsets: needs root")
    for tool in ("iptables-save", "iptables-restore", "ipset"):
        if shutil.which(tool) is None:
            pytest.skip(f"kube-router needs {tool}")


@pytest.mark.usefixtures("host_firewall_tools")
def test_kube_router_firewall_enforces_policies_and_cleans_up(
    bin_dir: Path, control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    rules_before = iptables_snapshot()
    if ":KUBE-ROUTER-INPUT" in rules_before:
        live = running_kube_routers()
        if live:
            # The chains are host-global: stopping ours would remove another kube-router's
            # (say a node test running on the same machine) and the before/after check fails.
            missing(f"another kube-router (pid {', '.join(map(str, live))}) is running on this host")
        # No kube-router is alive, so these were left by a killed run (SIGKILL leaves every
        # chain): remove them as the node's own start-up sweep does, and start from clean.
        remove_kube_router_firewall_state()
        rules_before = iptables_snapshot()
    sets_before = ipset_names()
    node = control_plane.node_names[0]
    firewall = KubeRouterFirewall(bin_dir, control_plane.kubeconfig, node, tmp_path)
    try:
        firewall.start()
        eventually(lambda: ":KUBE-ROUTER-FORWARD" in iptables_snapshot(), 30, "kube-router's chains")
        rules = iptables_snapshot()
        assert ":KUBE-ROUTER-INPUT" in rules
        assert "-A FORWARD" in rules and "-j KUBE-ROUTER-FORWARD" in rules

        manifest = f"""
apiVersion: v1
kind: Pod
metadata: {{name: guarded, labels: {{app: guarded}}}}
spec:
  nodeName: {node}
  containers: [{{name: c, image: example.invalid/none}}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: deny-in}}
spec:
  podSelector: {{matchLabels: {{app: guarded}}}}
  policyTypes: [Ingress]
"""
        result = apply_yaml(control_plane, namespace, manifest, tmp_path)
        assert result.returncode == 0, result.stderr
        eventually(lambda: ":KUBE-NWPLCY-" in iptables_snapshot(), 30, "a KUBE-NWPLCY chain for the policy")
        assert firewall.process is not None and firewall.process.poll() is None, firewall.log_tail()
    finally:
        firewall.stop()

    # What stop() removed: the jumps from the built-in chains, kube-router's chains, its ipsets.
    assert "filter: chain KUBE-ROUTER-INPUT" in firewall.removed
    assert any(item.startswith("filter: chain KUBE-NWPLCY-") for item in firewall.removed)
    rules_after, sets_after = iptables_snapshot(), ipset_names()
    assert "KUBE-ROUTER" not in rules_after
    assert "KUBE-NWPLCY" not in rules_after
    assert rules_after == rules_before
    assert sets_after == sets_before


@pytest.fixture(scope="module")
def aggregating_control_plane(tmp_path_factory: pytest.TempPathFactory, bin_dir: Path) -> Iterator[ControlPlane]:
    # Loopback only here, so the apiserver reaches metrics-server through an
    # ExternalName Service, which endpoint routing does not support.
    flags = aggregator_apiserver_flags(tmp_path_factory.mktemp("front-proxy"), endpoint_routing=False)
    with ControlPlane(nodes=1, bin_dir=bin_dir, extra_apiserver_args=flags) as cp:
        yield cp


def _metrics_server_kubeconfig(cp: ControlPlane, directory: Path) -> Path:
    # metrics-server gets its own identity, so the RBAC the runner grants is what it runs with.
    pki = cp.workdir / "pki"
    ca = CertificateAuthority(directory, pki / "ca.crt", pki / "ca.key")
    cert, key = ca.issue("metrics-server-client", "system:metrics-server")
    return write_kubeconfig(directory / "metrics-server.kubeconfig", cp.server, ca.cert, cert, key)


def test_metrics_server_registers_with_the_aggregator(aggregating_control_plane: ControlPlane, tmp_path: Path) -> None:
    cp = aggregating_control_plane
    kubeconfig = _metrics_server_kubeconfig(cp, tmp_path)
    server = MetricsServer(
        cp.bin_dir,
        kubeconfig,
        "127.0.0.1",
        free_port(),
        tmp_path,
        admin_kubeconfig=cp.kubeconfig,
        endpoint_routing=False,
    )
    with server:
        assert server.probe("/livez") == 200
        api_service = get_json(cp, "apiservice", METRICS_API_SERVICE)
        assert api_service["spec"]["service"]["name"] == "metrics-server"
        assert api_service["spec"]["caBundle"]
        assert "insecureSkipTLSVerify" not in api_service["spec"]
        assert get_json(cp, "clusterrolebinding", "metrics-server:system:auth-delegator") is not None
        assert get_json(cp, "rolebinding", "metrics-server-auth-reader", "-n", "kube-system") is not None

        # The aggregator verified the serving cert against the caBundle and metrics-server
        # accepted the front-proxy identity: the API is discovered and answers. Without a
        # kubelet there is nothing scraped yet, so the list may be empty.
        eventually(server.apiservice_available, 60, "the APIService to be Available")
        raw = cp.kubectl("get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes").stdout
        assert json.loads(raw)["kind"] == "NodeMetricsList"
    assert get_json(cp, "apiservice", METRICS_API_SERVICE) is None


def test_node_registration_objects_validate(bin_dir: Path, control_plane: ControlPlane, tmp_path: Path) -> None:
    # The real node's shape (a node IP in EndpointSlices, endpoint routing) cannot run
    # on loopback, but its objects must still be what the apiserver accepts.
    server = MetricsServer(bin_dir, control_plane.kubeconfig, "10.244.0.1", 4443, tmp_path)
    server.ca = CertificateAuthority.create(tmp_path / "pki", "test-ca")
    objects = server.registration_objects()
    assert [o["kind"] for o in objects] == ["Service", "EndpointSlice", "APIService"]
    dns = CoreDNS(bin_dir, control_plane.kubeconfig, "10.244.0.1", 1053, tmp_path, service_ip="10.96.0.10")
    objects += dns.service_objects()
    with pytest.raises(ValueError, match="loopback"):
        CoreDNS(bin_dir, control_plane.kubeconfig, "127.0.0.1", 1053, tmp_path, service_ip="10.96.0.10")
    path = tmp_path / "objects.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))
    control_plane.kubectl("apply", "--dry-run=server", "-f", str(path))
