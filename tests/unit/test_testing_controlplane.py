"""pweza.testing.controlplane's pieces without a cluster: the Stage objects it hands kwok, the
Node objects it creates and when it counts them ready, and how the apiserver's flags follow the
address it serves on."""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Any

import yaml

from pweza.testing.controlplane import kwok
from pweza.testing.controlplane.components import ApiserverCertificates, apiserver_args
from pweza.testing.controlplane.pki import Pki


def test_the_packaged_stages_parse_into_the_five_kwok_stages_nodes_and_pods_need() -> None:
    documents = [document for document in yaml.safe_load_all(kwok.stages_yaml()) if document]

    assert {document["kind"] for document in documents} == {"Stage"}
    assert {document["apiVersion"] for document in documents} == {"kwok.x-k8s.io/v1alpha1"}
    assert [document["metadata"]["name"] for document in documents] == [
        "node-initialize",
        "node-heartbeat-with-lease",
        "pod-ready",
        "pod-complete",
        "pod-delete",
    ]
    assert {document["spec"]["resourceRef"]["kind"] for document in documents} == {"Node", "Pod"}


def test_kwok_manages_the_nodes_made_here_and_the_ready_check_finds_them_by_their_label() -> None:
    node = kwok.node_object("kwok-node-0")
    args = kwok.kwok_args(Path("/w/kwok.kubeconfig"), Path("/w/stages.yaml"), 10250)

    annotation, value = next(
        arg.split("=", 1)[1].split("=") for arg in args if arg.startswith("--manage-nodes-with-annotation-selector=")
    )
    assert node["metadata"]["annotations"][annotation] == value
    key, wanted = kwok.NODE_SELECTOR.split("=")
    assert node["metadata"]["labels"][key] == wanted
    assert urllib.parse.quote(kwok.NODE_SELECTOR) == "type%3Dkwok"
    assert "--manage-all-nodes=false" in args and "--server-address=127.0.0.1:10250" in args
    assert node["status"]["allocatable"]["ephemeral-storage"], "pods asking for ephemeral storage must schedule"


def _node(name: str, ready: str, taints: list[str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "status": {"conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": ready}]},
        "spec": {"taints": [{"key": key, "effect": "NoSchedule"} for key in taints or []]},
    }


def test_a_node_is_ready_once_ready_and_rid_of_the_lifecycle_taints() -> None:
    nodes = {
        "items": [
            _node("up", "True"),
            _node("booting", "False"),
            _node("just-ready", "True", ["node.kubernetes.io/not-ready"]),
            _node("user-tainted", "True", ["dedicated"]),
            {"metadata": {"name": "no-status"}},
        ]
    }

    assert kwok.ready_node_names(nodes) == {"up", "user-tainted"}
    assert kwok.ready_node_names({"items": []}) == set()


def _apiserver_flags(address: str, tmp_path: Path) -> dict[str, str]:
    pair = (tmp_path / "x.crt", tmp_path / "x.key")
    args = apiserver_args(
        etcd="http://127.0.0.1:2379",
        address=address,
        port=6443,
        cert_dir=tmp_path / "certs",
        pki=Pki(tmp_path / "pki", tmp_path / "pki" / "ca.crt", tmp_path / "pki" / "ca.key"),
        certificates=ApiserverCertificates(pair, pair, pair),
        extra=["--v=4"],
    )
    return dict(arg.removeprefix("--").split("=", 1) for arg in args)


def test_on_loopback_the_apiserver_keeps_no_endpoints_and_on_a_bridge_it_checks_kubelets(tmp_path: Path) -> None:
    loopback = _apiserver_flags("127.0.0.1", tmp_path)
    bridge = _apiserver_flags("10.88.0.1", tmp_path)

    # Endpoints may not hold loopback IPs: the reconciler would fail forever.
    assert loopback["endpoint-reconciler-type"] == "none"
    assert "kubelet-certificate-authority" not in loopback
    # A real node's pods reach the apiserver through the `kubernetes` Service, and its kubelet
    # must prove a certificate of the test CA.
    assert bridge["endpoint-reconciler-type"] == "lease"
    assert bridge["kubelet-certificate-authority"] == str(tmp_path / "pki" / "ca.crt")
    assert bridge["bind-address"] == bridge["advertise-address"] == "10.88.0.1"
    assert bridge["v"] == "4", "extra flags are passed on"
