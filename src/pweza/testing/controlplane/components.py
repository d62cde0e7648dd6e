"""How each component is run: the apiserver's certificates, and the command lines of etcd,
kube-apiserver, kube-controller-manager and kube-scheduler (kwok's are in ``kwok``)."""

from __future__ import annotations

import pathlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from pweza.testing.controlplane.pki import Pki

__all__ = [
    "SERVICE_CLUSTER_IP_RANGE",
    "ApiserverCertificates",
    "apiserver_args",
    "controller_manager_args",
    "etcd_args",
    "etcd_url",
    "issue_apiserver_certificates",
    "scheduler_args",
]

SERVICE_CLUSTER_IP_RANGE: Final = "10.96.0.0/16"
_SERVICE_IP: Final = "10.96.0.1"
_LOOPBACK: Final = "127.0.0.1"

Pair = tuple[pathlib.Path, pathlib.Path]  # (certificate, key)


@dataclass(frozen=True)
class ApiserverCertificates:
    serving: Pair
    # The apiserver's identity towards kubelets (logs, exec) and, through the aggregation
    # layer, towards extension apiservers such as metrics-server.
    kubelet_client: Pair
    front_proxy: Pair


def issue_apiserver_certificates(pki: Pki, address: str) -> ApiserverCertificates:
    serving = pki.issue(
        "apiserver",
        "kube-apiserver",
        server_names=(
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ),
        server_ips=tuple(dict.fromkeys((_LOOPBACK, address, _SERVICE_IP))),
    )
    kubelet_client = pki.issue(
        "apiserver-kubelet-client", "kube-apiserver-kubelet-client", organization="system:masters"
    )
    front_proxy = pki.issue("front-proxy-client", "front-proxy-client")
    return ApiserverCertificates(serving, kubelet_client, front_proxy)


def etcd_url(client_port: int) -> str:
    return f"http://{_LOOPBACK}:{client_port}"


def etcd_args(data_dir: pathlib.Path, client_port: int, peer_port: int) -> list[str]:
    client_url = etcd_url(client_port)
    peer_url = f"http://{_LOOPBACK}:{peer_port}"
    return [
        "--name=pweza",
        f"--data-dir={data_dir}",
        f"--listen-client-urls={client_url}",
        f"--advertise-client-urls={client_url}",
        f"--listen-peer-urls={peer_url}",
        f"--initial-advertise-peer-urls={peer_url}",
        f"--initial-cluster=pweza={peer_url}",
        "--initial-cluster-state=new",
        # The data is deleted on exit; fsync only slows tests down.
        "--unsafe-no-fsync=true",
        "--log-level=warn",
    ]


def apiserver_args(
    *,
    etcd: str,
    address: str,
    port: int,
    cert_dir: pathlib.Path,
    pki: Pki,
    certificates: ApiserverCertificates,
    extra: Sequence[str],
) -> list[str]:
    serving_cert, serving_key = certificates.serving
    kubelet_client_cert, kubelet_client_key = certificates.kubelet_client
    front_proxy_cert, front_proxy_key = certificates.front_proxy
    return [
        f"--etcd-servers={etcd}",
        f"--advertise-address={address}",
        f"--bind-address={address}",
        f"--secure-port={port}",
        f"--cert-dir={cert_dir}",
        f"--tls-cert-file={serving_cert}",
        f"--tls-private-key-file={serving_key}",
        f"--client-ca-file={pki.ca_cert}",
        "--authorization-mode=Node,RBAC",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={pki.sa_pub}",
        f"--service-account-signing-key-file={pki.sa_key}",
        f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
        "--allow-privileged=true",
        # Endpoints may not hold loopback IPs, so on loopback the default reconciler would
        # fail forever and only pods need the `kubernetes` Service: a real node's pods reach
        # the apiserver through it at the bridge address.
        f"--endpoint-reconciler-type={'none' if address == _LOOPBACK else 'lease'}",
        # Kubelets are reached at their InternalIP, never by a hostname looked up through
        # the machine's resolver, and must prove a serving certificate from the test CA.
        "--kubelet-preferred-address-types=InternalIP",
        f"--kubelet-client-certificate={kubelet_client_cert}",
        f"--kubelet-client-key={kubelet_client_key}",
        *([] if address == _LOOPBACK else [f"--kubelet-certificate-authority={pki.ca_cert}"]),
        # The aggregation layer, for extension apiservers (metrics-server on a real node).
        f"--requestheader-client-ca-file={pki.ca_cert}",
        "--requestheader-allowed-names=front-proxy-client",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={front_proxy_cert}",
        f"--proxy-client-key-file={front_proxy_key}",
        "--enable-aggregator-routing=true",
        "--profiling=false",
        *extra,
    ]


def controller_manager_args(kubeconfig: pathlib.Path, port: int, pki: Pki) -> list[str]:
    return [
        f"--kubeconfig={kubeconfig}",
        f"--bind-address={_LOOPBACK}",
        f"--secure-port={port}",
        "--leader-elect=false",
        "--use-service-account-credentials=true",
        f"--service-account-private-key-file={pki.sa_key}",
        f"--root-ca-file={pki.ca_cert}",
        f"--cluster-signing-cert-file={pki.ca_cert}",
        f"--cluster-signing-key-file={pki.ca_key}",
        # Since the in-tree cloud providers were removed, none of the on-by-default
        # controllers needs a cloud; node-ipam stays off without --allocate-node-cidrs.
        "--controllers=*",
        # A test cannot wait the default five minutes to see an HPA scale back in.
        "--horizontal-pod-autoscaler-downscale-stabilization=20s",
        "--horizontal-pod-autoscaler-sync-period=5s",
        "--profiling=false",
    ]


def scheduler_args(kubeconfig: pathlib.Path, port: int) -> list[str]:
    return [
        f"--kubeconfig={kubeconfig}",
        f"--bind-address={_LOOPBACK}",
        f"--secure-port={port}",
        "--leader-elect=false",
    ]
