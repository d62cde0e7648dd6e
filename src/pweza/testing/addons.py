"""Node add-ons of the real test node, run as host processes next to the control plane.

``CoreDNS`` answers ``cluster.local`` (and the reverse zones of the pod and service
CIDRs) from the apiserver and nothing else: it has no ``forward`` plugin, so no query
ever leaves the machine. ``MetricsServer`` runs metrics-server and registers it with the
aggregation layer (``v1beta1.metrics.k8s.io``). ``KubeRouterFirewall`` runs kube-router
as the NetworkPolicy enforcer only (iptables + ipset) and removes its chains and sets
again on stop.

They run on the host (as kube-proxy or kube-router DaemonSets do with hostNetwork)
rather than as pods, so they work with kwok nodes as well as with a real kubelet. The
binaries come from ``hack/build-k8s.sh``, like the control plane's::

    with ControlPlane() as cp, CoreDNS(bin_dir, cp.kubeconfig, "127.0.0.1", port, workdir) as dns:
        dns_query("127.0.0.1", port, "kubernetes.default.svc.cluster.local")

Each runner is a context manager; ``start()``/``stop()`` do the same for fixtures. Every
wait is bounded, a process that dies during startup fails fast with its log tail, and
processes get SIGKILL if the test process dies first (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import base64
import contextlib
import difflib
import http.client
import ipaddress
import json
import os
import pathlib
import re
import secrets
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, Self

from pweza.manager.children import dies_with_parent
from pweza.testing import certificates
from pweza.testing.child_processes import LOG_TAIL_LINES, log_tail
from pweza.testing.kubeconfigs import write_kubeconfig

__all__ = [
    "ADDON_BINARIES",
    "FRONT_PROXY_CLIENT_NAME",
    "METRICS_API_SERVICE",
    "RCODE_NOERROR",
    "RCODE_NXDOMAIN",
    "RCODE_REFUSED",
    "AddonError",
    "CertificateAuthority",
    "CoreDNS",
    "DnsAnswer",
    "KubeRouterFirewall",
    "MetricsServer",
    "addon_bin_dir",
    "aggregator_apiserver_flags",
    "dns_query",
    "free_dns_port",
    "ipset_names",
    "iptables_snapshot",
    "remove_kube_router_firewall_state",
    "write_kubeconfig",
]

ADDON_BINARIES: Final = ("coredns", "metrics-server", "kube-router")
# The CN of the client certificate the apiserver's aggregator presents to aggregated
# API servers; they accept identity headers only from a client of this name.
FRONT_PROXY_CLIENT_NAME: Final = "front-proxy-client"
METRICS_API_SERVICE: Final = "v1beta1.metrics.k8s.io"
_METRICS_NAMESPACE: Final = "kube-system"
_METRICS_SERVICE: Final = "metrics-server"
_POLL_INTERVAL: Final = 0.25


class AddonError(RuntimeError):
    """An add-on could not be set up, did not become ready in time, or left state behind."""


def addon_bin_dir(bin_dir: pathlib.Path | None) -> pathlib.Path | None:
    """``bin_dir`` when it holds all add-on binaries (``hack/build-k8s.sh`` builds them), else None."""
    if bin_dir is None:
        return None
    return bin_dir if all(os.access(bin_dir / name, os.X_OK) for name in ADDON_BINARIES) else None


def free_dns_port(host: str = "127.0.0.1") -> int:
    """A port free on ``host`` for both UDP and TCP, as a DNS server needs."""
    return _free_port(host, udp_too=True)


def _free_port(host: str = "127.0.0.1", *, udp_too: bool = False) -> int:
    # CoreDNS listens on UDP and TCP of the same port, so both must be free.
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((host, 0))
            port = int(tcp.getsockname()[1])
            if not udp_too:
                return port
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((host, port))
                except OSError:
                    continue
                return port


def _http_status(
    host: str, port: int, path: str, *, context: ssl.SSLContext | None = None, timeout: float = 2.0
) -> int:
    """The HTTP status of a GET, or 0 when nothing answered."""
    conn: http.client.HTTPConnection
    if context is None:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    else:
        conn = http.client.HTTPSConnection(host, port, context=context, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException):
        return 0
    finally:
        conn.close()


# --- certificates -------------------------------------------------------------------


class CertificateAuthority(certificates.CertificateAuthority):
    """The test CA (``pweza.testing.certificates``) as the add-ons use it: its failures are
    ``AddonError``s."""

    failure = AddonError


def aggregator_apiserver_flags(pki_dir: pathlib.Path, *, endpoint_routing: bool = True) -> list[str]:
    """kube-apiserver flags that turn on the aggregation layer, making the certificates they name.

    The aggregator proxies ``/apis/metrics.k8s.io`` to metrics-server with a client
    certificate of a *separate* CA (the front-proxy CA; reusing the client CA would let
    any client certificate assert any identity through the headers) and passes the
    caller's identity in ``X-Remote-*`` headers. metrics-server learns the CA, the
    allowed name and the header names from the ``extension-apiserver-authentication``
    ConfigMap the apiserver publishes from these flags.

    ``endpoint_routing`` (``--enable-aggregator-routing``) makes the apiserver dial the
    Service's endpoint (EndpointSlice) instead of its ClusterIP, which only kube-proxy
    could route from the host. Leave it off only for an ExternalName Service (what
    ``MetricsServer`` registers for a loopback listen IP), which endpoint routing rejects.
    Calling it again with the same ``pki_dir`` reuses the certificates already there.
    """
    cert = pki_dir / "front-proxy-client.crt"
    key = pki_dir / "front-proxy-client.key"
    ca_cert = pki_dir / "front-proxy-ca.crt"
    if not (cert.exists() and key.exists() and ca_cert.exists()):
        ca = CertificateAuthority.create(pki_dir, "pweza-front-proxy-ca", name="front-proxy-ca")
        cert, key = ca.issue("front-proxy-client", FRONT_PROXY_CLIENT_NAME)
    return [
        f"--requestheader-client-ca-file={ca_cert}",
        f"--requestheader-allowed-names={FRONT_PROXY_CLIENT_NAME}",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-uid-headers=X-Remote-Uid",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={cert}",
        f"--proxy-client-key-file={key}",
        f"--enable-aggregator-routing={'true' if endpoint_routing else 'false'}",
    ]


# --- host state -----------------------------------------------------------------------

_COUNTERS: Final = re.compile(r"\[\d+:\d+\]")

_UNTOUCHED_CHAIN: Final = re.compile(r":(INPUT|FORWARD|OUTPUT|PREROUTING|POSTROUTING) ACCEPT")


def iptables_snapshot(iptables_save: str = "iptables-save") -> str:
    """``iptables-save`` without counters and comment lines: equal text means equal rules."""
    result = subprocess.run([iptables_save], capture_output=True, text=True, timeout=30, check=True)
    lines = (_COUNTERS.sub("", line).rstrip() for line in result.stdout.splitlines())
    return "\n".join(_without_untouched_tables([line for line in lines if line and not line.startswith("#")]))


def _without_untouched_tables(lines: list[str]) -> list[str]:
    """Drop tables holding only their built-in chains, empty and accepting: that is what a table
    no one had used shows once anything has looked at it (a fresh host prints no table at all)."""
    kept: list[str] = []
    table: list[str] = []
    for line in lines:
        if line.startswith("*"):
            table = [line]
        elif table and line == "COMMIT":
            if not all(_UNTOUCHED_CHAIN.fullmatch(inner) for inner in table[1:]):
                kept += [*table, line]
            table = []
        elif table:
            table.append(line)
        else:
            kept.append(line)
    return kept


def ipset_names() -> list[str]:
    """The names of the host's ipsets, sorted."""
    result = subprocess.run(["ipset", "list", "-n"], capture_output=True, text=True, timeout=30, check=True)
    return sorted(name for name in result.stdout.split() if name)


# --- a tiny DNS client ------------------------------------------------------------------

_QTYPES: Final = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "TXT": 16, "AAAA": 28, "SRV": 33}
RCODE_NOERROR: Final = 0
RCODE_NXDOMAIN: Final = 3
RCODE_REFUSED: Final = 5


@dataclass(frozen=True)
class DnsAnswer:
    """The rcode of a reply and its answer records as ``(type, text)``: A/AAAA as the address, PTR/CNAME as a name."""

    rcode: int
    records: tuple[tuple[int, str], ...] = field(default=())

    @property
    def addresses(self) -> list[str]:
        return [text for rtype, text in self.records if rtype in (_QTYPES["A"], _QTYPES["AAAA"])]

    @property
    def names(self) -> list[str]:
        return [text for rtype, text in self.records if rtype in (_QTYPES["PTR"], _QTYPES["CNAME"])]


def _encode_name(name: str) -> bytes:
    out = bytearray()
    for label in name.rstrip(".").split("."):
        raw = label.encode("idna") if label else b""
        if not 0 < len(raw) < 64:
            raise ValueError(f"bad DNS name {name!r}")
        out += bytes([len(raw)]) + raw
    return bytes(out + b"\x00")


def _read_name(packet: bytes, offset: int) -> tuple[str, int]:
    """A possibly compressed name at ``offset``, and the offset just past it in the record."""
    labels: list[str] = []
    end: int | None = None
    for _ in range(128):  # bounds a malicious pointer loop
        length = packet[offset]
        if length & 0xC0 == 0xC0:
            if end is None:
                end = offset + 2
            offset = struct.unpack_from("!H", packet, offset)[0] & 0x3FFF
            continue
        if length == 0:
            return ".".join(labels) + ".", end if end is not None else offset + 1
        labels.append(packet[offset + 1 : offset + 1 + length].decode("ascii", errors="replace"))
        offset += 1 + length
    raise ValueError("DNS name compression loop")


def dns_query(
    server: str, port: int, name: str, qtype: str = "A", *, timeout: float = 3.0, attempts: int = 3
) -> DnsAnswer:
    """A UDP query, built by hand with struct so the tests need no DNS library. Sent again after
    ``timeout`` up to ``attempts`` times, as a stub resolver does (a loaded machine can be slow
    to answer the first)."""
    query_id = secrets.randbits(16)
    # Flags 0x0100: a standard query with recursion desired, as a stub resolver sends.
    packet = struct.pack("!HHHHHH", query_id, 0x0100, 1, 0, 0, 0) + _encode_name(name)
    packet += struct.pack("!HH", _QTYPES[qtype], 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        reply = b""
        for attempt in range(attempts):
            sock.sendto(packet, (server, port))
            deadline = time.monotonic() + timeout
            try:
                while True:
                    sock.settimeout(max(0.01, deadline - time.monotonic()))
                    reply, _ = sock.recvfrom(4096)
                    if len(reply) >= 12 and struct.unpack_from("!H", reply)[0] == query_id:
                        break
                break
            except TimeoutError:
                if attempt == attempts - 1:
                    raise
    _, flags, qdcount, ancount, _, _ = struct.unpack_from("!HHHHHH", reply)
    offset = 12
    for _ in range(qdcount):
        _, offset = _read_name(reply, offset)
        offset += 4
    records: list[tuple[int, str]] = []
    for _ in range(ancount):
        _, offset = _read_name(reply, offset)
        rtype, _, _, rdlength = struct.unpack_from("!HHIH", reply, offset)
        offset += 10
        rdata = reply[offset : offset + rdlength]
        if rtype == _QTYPES["A"]:
            text = str(ipaddress.IPv4Address(rdata))
        elif rtype == _QTYPES["AAAA"]:
            text = str(ipaddress.IPv6Address(rdata))
        elif rtype in (_QTYPES["PTR"], _QTYPES["CNAME"]):
            text = _read_name(reply, offset)[0]
        else:
            text = rdata.hex()
        records.append((rtype, text))
        offset += rdlength
    return DnsAnswer(flags & 0x000F, tuple(records))


# --- process runners ------------------------------------------------------------------


class _HostProcess:
    """One add-on process: spawned with its output in ``workdir/logs/<name>.log``, waited
    for with a deadline, stopped with SIGTERM then SIGKILL, as ControlPlane does."""

    name: str = ""
    binary: str = ""

    def __init__(
        self,
        bin_dir: pathlib.Path,
        workdir: pathlib.Path,
        *,
        startup_timeout: float,
        stop_timeout: float,
    ) -> None:
        self.bin_dir = bin_dir
        self.workdir = workdir
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.process: subprocess.Popen[bytes] | None = None
        # Who creates the API objects a runner registers (Services, RBAC...).
        self.admin_kubeconfig: pathlib.Path | None = None
        if not os.access(bin_dir / self.binary, os.X_OK):
            raise AddonError(f"{bin_dir / self.binary} not found: build it with hack/build-k8s.sh")

    @property
    def log(self) -> pathlib.Path:
        return self.workdir / "logs" / f"{self.name}.log"

    def log_tail(self) -> str:
        return f"--- last {LOG_TAIL_LINES} lines of {self.log} ---\n{log_tail(self.log)}"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        if self.process is not None:
            raise AddonError(f"{self.name} is already running")
        (self.workdir / "logs").mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.startup_timeout
        try:
            self._prepare()
            with self.log.open("ab") as out:
                self.process = subprocess.Popen(
                    dies_with_parent([str(self.bin_dir / self.binary), *self._args()], signal.SIGKILL),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=self.workdir,
                    env={**os.environ, "HOME": str(self.workdir)},
                )
            self._wait(f"{self.name} to be ready", deadline, self._ready)
            self._started(deadline)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL) and undo what it set up. Safe to call twice."""
        process, self.process = self.process, None
        try:
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=self.stop_timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)
        finally:
            self._cleanup()

    def _wait(self, what: str, deadline: float, ready: Callable[[], bool]) -> None:
        while True:
            if self.process is not None and (code := self.process.poll()) is not None:
                raise AddonError(f"{self.name} exited with code {code} during startup\n{self.log_tail()}")
            if ready():
                return
            if time.monotonic() >= deadline:
                raise AddonError(f"timed out after {self.startup_timeout:.0f}s waiting for {what}\n{self.log_tail()}")
            time.sleep(_POLL_INTERVAL)

    def _apply(self, objects: list[dict[str, Any]]) -> None:
        body = json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})
        self._kubectl("apply", "-f", "-", stdin=body)

    def _kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        if self.admin_kubeconfig is None:
            raise AddonError(f"{self.name} needs an admin kubeconfig to create objects")
        cmd = [str(self.bin_dir / "kubectl"), f"--kubeconfig={self.admin_kubeconfig}", "--request-timeout=20s", *args]
        result = subprocess.run(
            cmd,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "KUBECACHEDIR": str(self.workdir / "kube-cache")},
            check=False,
        )
        if check and result.returncode != 0:
            raise AddonError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr.strip()}")
        return result

    def _prepare(self) -> None:
        """Write config files before the process starts."""

    def _args(self) -> list[str]:
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError

    def _started(self, deadline: float) -> None:
        """Steps after the process is ready (registering it with the apiserver)."""

    def _cleanup(self) -> None:
        """Undo what the process or ``_started`` left behind; runs on every stop."""


def _reverse_zones(cidrs: Sequence[str]) -> list[str]:
    # in-addr.arpa zones are cut on octets; a /12 becomes the sixteen /16 zones in it.
    zones: list[str] = []
    for cidr in cidrs:
        network = ipaddress.ip_network(cidr)
        if network.version != 4:
            raise ValueError(f"only IPv4 reverse zones are supported, not {cidr}")
        prefix = -(-network.prefixlen // 8) * 8
        for subnet in network.subnets(new_prefix=prefix) if prefix != network.prefixlen else [network]:
            octets = str(subnet.network_address).split(".")[: prefix // 8]
            zones.append(".".join([*reversed(octets), "in-addr.arpa"]))
    return zones


class CoreDNS(_HostProcess):
    """CoreDNS serving the cluster domain from the apiserver, answering NXDOMAIN for anything else.

    It listens on UDP and TCP ``listen_ip:port``; health (``/health``) and readiness
    (``/ready``, true once the kubernetes plugin has synced with the apiserver) on
    free 127.0.0.1 ports. There is no ``forward`` plugin in the Corefile, nor compiled
    into the binary: names outside the cluster never leave the machine.

    With ``service_ip`` (the kubelet's ``clusterDNS``, say 10.96.0.10) it also
    registers the ``kube-system/kube-dns`` Service with an EndpointSlice to
    ``listen_ip:port`` (``service_objects()``), using ``admin_kubeconfig``, and deletes
    them on stop; ``listen_ip`` must then be an address pods reach (not loopback).
    """

    name = "coredns"
    binary = "coredns"

    def __init__(
        self,
        bin_dir: pathlib.Path,
        kubeconfig: pathlib.Path,
        listen_ip: str,
        port: int = 53,
        workdir: pathlib.Path | None = None,
        *,
        cluster_domain: str = "cluster.local",
        reverse_cidrs: Sequence[str] = ("10.96.0.0/16", "10.244.0.0/16"),
        ttl: int = 5,
        service_ip: str | None = None,
        admin_kubeconfig: pathlib.Path | None = None,
        startup_timeout: float = 60.0,
        stop_timeout: float = 10.0,
    ) -> None:
        if workdir is None:
            raise ValueError("CoreDNS needs a workdir for its Corefile and log")
        super().__init__(bin_dir, workdir, startup_timeout=startup_timeout, stop_timeout=stop_timeout)
        self.kubeconfig = kubeconfig
        self.listen_ip = listen_ip
        self.port = port
        self.cluster_domain = cluster_domain.rstrip(".")
        self.reverse_zones = _reverse_zones(reverse_cidrs)
        self.ttl = ttl
        self.service_ip = service_ip
        self.admin_kubeconfig = admin_kubeconfig or kubeconfig
        if service_ip is not None and ipaddress.ip_address(listen_ip).is_loopback:
            raise ValueError("an EndpointSlice cannot hold a loopback address: the kube-dns Service needs a node IP")
        self._registered = False
        self.health_port = _free_port()
        self.ready_port = _free_port()

    @property
    def corefile(self) -> pathlib.Path:
        return self.workdir / "Corefile"

    def corefile_text(self) -> str:
        zones = " ".join([self.cluster_domain, *self.reverse_zones])
        keys = " ".join(f"{zone}:{self.port}" for zone in zones.split())
        # health and ready are process-wide; naming them in one server block is enough.
        # `pods insecure` answers a-b-c-d.ns.pod.cluster.local as kube-dns did. No
        # `fallthrough`: a missing name in these zones is NXDOMAIN, not passed on.
        # The root block answers everything else NXDOMAIN from a template, instead of
        # the REFUSED an absent zone would give, so stub resolvers fail fast too.
        return f"""\
{keys} {{
    bind {self.listen_ip}
    errors
    log
    health 127.0.0.1:{self.health_port}
    ready 127.0.0.1:{self.ready_port}
    kubernetes {zones} {{
        kubeconfig {self.kubeconfig}
        pods insecure
        ttl {self.ttl}
    }}
    cache {self.ttl}
    loadbalance
}}
.:{self.port} {{
    bind {self.listen_ip}
    errors
    log
    template ANY ANY {{
        rcode NXDOMAIN
    }}
}}
"""

    def _prepare(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.corefile.write_text(self.corefile_text())

    def _args(self) -> list[str]:
        return [f"-conf={self.corefile}"]

    def _ready(self) -> bool:
        return _http_status("127.0.0.1", self.ready_port, "/ready") == 200

    def query(self, name: str, qtype: str = "A", *, timeout: float = 3.0) -> DnsAnswer:
        return dns_query(self.listen_ip, self.port, name, qtype, timeout=timeout)

    def service_objects(self) -> list[dict[str, Any]]:
        """The ``kube-system/kube-dns`` Service at ``service_ip`` and an EndpointSlice to ``listen_ip:port``.

        Pods get ``service_ip`` as their nameserver from the kubelet (``clusterDNS``);
        kube-proxy sends it on to this host process. Port 53 of the Service maps to
        ``port`` so CoreDNS need not bind 53.
        """
        if self.service_ip is None:
            raise AddonError("CoreDNS was made without a service_ip")
        ports = [("dns", "UDP"), ("dns-tcp", "TCP")]
        return [
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}},
                "spec": {
                    "clusterIP": self.service_ip,
                    "ports": [
                        {"name": n, "port": 53, "protocol": proto, "targetPort": self.port} for n, proto in ports
                    ],
                },
            },
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": "kube-dns-host",
                    "namespace": "kube-system",
                    # See MetricsServer: the controller leaves slices of other managers alone.
                    "labels": {
                        "kubernetes.io/service-name": "kube-dns",
                        "endpointslice.kubernetes.io/managed-by": "pweza.testing.addons",
                    },
                },
                "addressType": "IPv4",
                "endpoints": [{"addresses": [self.listen_ip], "conditions": {"ready": True}}],
                "ports": [{"name": n, "port": self.port, "protocol": proto} for n, proto in ports],
            },
        ]

    def _started(self, deadline: float) -> None:
        if self.service_ip is not None:
            self._apply(self.service_objects())
            self._registered = True

    def _cleanup(self) -> None:
        if self._registered:
            self._registered = False
            self._kubectl(
                "delete", "--ignore-not-found", "--wait=false", "-n", "kube-system",
                "service/kube-dns", "endpointslice/kube-dns-host", check=False,
            )  # fmt: skip


def _metrics_server_rbac(user: str) -> list[dict[str, Any]]:
    # What metrics-server's own manifests grant, bound to a user instead of a
    # ServiceAccount because it runs on the host with a kubeconfig.
    subjects = [{"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"}]
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "system:metrics-server"},
            "rules": [
                {"apiGroups": [""], "resources": ["nodes/metrics"], "verbs": ["get"]},
                {"apiGroups": [""], "resources": ["pods", "nodes"], "verbs": ["get", "list", "watch"]},
            ],
        },
        {
            # Lets the usual roles (admin, edit, view) read metrics as they do in a cluster.
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {
                "name": "system:aggregated-metrics-reader",
                "labels": {
                    "rbac.authorization.k8s.io/aggregate-to-admin": "true",
                    "rbac.authorization.k8s.io/aggregate-to-edit": "true",
                    "rbac.authorization.k8s.io/aggregate-to-view": "true",
                },
            },
            "rules": [
                {"apiGroups": ["metrics.k8s.io"], "resources": ["pods", "nodes"], "verbs": ["get", "list", "watch"]}
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "system:metrics-server"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "system:metrics-server",
            },
            "subjects": subjects,
        },
        {
            # TokenReviews and SubjectAccessReviews: delegated authn/authz of its callers.
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "metrics-server:system:auth-delegator"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "system:auth-delegator",
            },
            "subjects": subjects,
        },
        {
            # Reads the front-proxy CA and header names from extension-apiserver-authentication.
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "metrics-server-auth-reader", "namespace": _METRICS_NAMESPACE},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "extension-apiserver-authentication-reader",
            },
            "subjects": subjects,
        },
    ]


class MetricsServer(_HostProcess):
    """metrics-server on ``listen_ip:secure_port``, registered as ``v1beta1.metrics.k8s.io``.

    Its serving certificate is signed by a CA made in ``workdir/pki``, whose certificate
    is the APIService's ``caBundle``, so the apiserver verifies it (no
    insecureSkipTLSVerify). Kubelets' serving certificates are verified against
    ``kubelet_ca`` when given, else not (``--kubelet-insecure-tls``).

    How the apiserver reaches it depends on ``endpoint_routing``, which must match the
    apiserver's ``--enable-aggregator-routing`` (see ``aggregator_apiserver_flags``):

    * True (a real node, non-loopback ``listen_ip``): a selector-less Service plus an
      EndpointSlice holding ``listen_ip``; the apiserver dials that endpoint.
    * False: an ExternalName Service naming ``listen_ip``; the apiserver dials it
      directly. This is the only way to a loopback ``listen_ip``, because endpoint
      addresses may not be loopback (API validation rejects them).

    ``kubeconfig`` is metrics-server's own identity (RBAC is granted to ``user``, the
    CN of that kubeconfig's certificate); ``admin_kubeconfig`` creates the objects.
    """

    name = "metrics-server"
    binary = "metrics-server"

    def __init__(
        self,
        bin_dir: pathlib.Path,
        kubeconfig: pathlib.Path,
        listen_ip: str,
        secure_port: int,
        workdir: pathlib.Path,
        *,
        admin_kubeconfig: pathlib.Path | None = None,
        user: str = "system:metrics-server",
        endpoint_routing: bool = True,
        kubelet_ca: pathlib.Path | None = None,
        metric_resolution: str = "15s",
        startup_timeout: float = 90.0,
        stop_timeout: float = 10.0,
    ) -> None:
        super().__init__(bin_dir, workdir, startup_timeout=startup_timeout, stop_timeout=stop_timeout)
        if endpoint_routing and ipaddress.ip_address(listen_ip).is_loopback:
            raise ValueError(
                "an EndpointSlice cannot hold a loopback address: use endpoint_routing=False "
                "(and --enable-aggregator-routing=false) for a loopback listen_ip"
            )
        self.kubeconfig = kubeconfig
        self.admin_kubeconfig = admin_kubeconfig or kubeconfig
        self.listen_ip = listen_ip
        self.secure_port = secure_port
        self.user = user
        self.endpoint_routing = endpoint_routing
        self.kubelet_ca = kubelet_ca
        self.metric_resolution = metric_resolution
        self.ca: CertificateAuthority | None = None
        self._serving: tuple[pathlib.Path, pathlib.Path] | None = None
        self._registered = False

    def _prepare(self) -> None:
        pki = self.workdir / "metrics-server-pki"
        self.ca = CertificateAuthority.create(pki, "pweza-metrics-server-ca")
        service = f"{_METRICS_SERVICE}.{_METRICS_NAMESPACE}.svc"
        # The aggregator checks the certificate against <service>.<namespace>.svc.
        self._serving = self.ca.issue(
            "serving",
            service,
            server_names=(service, f"{service}.cluster.local", "localhost"),
            server_ips=(self.listen_ip,),
        )
        self._apply(_metrics_server_rbac(self.user))

    def _args(self) -> list[str]:
        assert self._serving is not None
        cert, key = self._serving
        kubelet_tls = (
            [f"--kubelet-certificate-authority={self.kubelet_ca}"] if self.kubelet_ca else ["--kubelet-insecure-tls"]
        )
        return [
            f"--bind-address={self.listen_ip}",
            f"--secure-port={self.secure_port}",
            f"--tls-cert-file={cert}",
            f"--tls-private-key-file={key}",
            f"--kubeconfig={self.kubeconfig}",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            "--kubelet-preferred-address-types=InternalIP",
            "--kubelet-use-node-status-port",
            *kubelet_tls,
            f"--metric-resolution={self.metric_resolution}",
        ]

    def _ssl(self) -> ssl.SSLContext:
        assert self.ca is not None
        return ssl.create_default_context(cafile=str(self.ca.cert))

    def probe(self, path: str) -> int:
        """The HTTP status metrics-server answers on ``path`` (``/livez``, ``/readyz``...), 0 if none."""
        return _http_status(self.listen_ip, self.secure_port, path, context=self._ssl())

    def _ready(self) -> bool:
        # /livez, not /readyz: readiness needs a first successful kubelet scrape, which
        # never comes on kwok nodes. Live means serving, authenticated and informed.
        return self.probe("/livez") == 200

    def _started(self, deadline: float) -> None:
        self._apply(self.registration_objects())
        self._registered = True

    def registration_objects(self) -> list[dict[str, Any]]:
        """The Service, EndpointSlice (with endpoint routing) and APIService that publish metrics-server."""
        assert self.ca is not None
        meta = {"name": _METRICS_SERVICE, "namespace": _METRICS_NAMESPACE}
        objects: list[dict[str, Any]] = []
        if self.endpoint_routing:
            objects.append(
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": meta,
                    "spec": {
                        "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": self.secure_port}]
                    },
                }
            )
            objects.append(
                {
                    "apiVersion": "discovery.k8s.io/v1",
                    "kind": "EndpointSlice",
                    "metadata": {
                        "name": f"{_METRICS_SERVICE}-host",
                        "namespace": _METRICS_NAMESPACE,
                        # Ties the slice to the Service; the managed-by value keeps the
                        # EndpointSlice controller's hands off a slice it did not make.
                        "labels": {
                            "kubernetes.io/service-name": _METRICS_SERVICE,
                            "endpointslice.kubernetes.io/managed-by": "pweza.testing.addons",
                        },
                    },
                    "addressType": "IPv4",
                    "endpoints": [{"addresses": [self.listen_ip], "conditions": {"ready": True}}],
                    "ports": [{"name": "https", "port": self.secure_port, "protocol": "TCP"}],
                }
            )
            service_port = 443
        else:
            objects.append(
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": meta,
                    "spec": {"type": "ExternalName", "externalName": self.listen_ip},
                }
            )
            # For ExternalName the aggregator dials this port on externalName as is.
            service_port = self.secure_port
        objects.append(
            {
                "apiVersion": "apiregistration.k8s.io/v1",
                "kind": "APIService",
                "metadata": {"name": METRICS_API_SERVICE},
                "spec": {
                    "group": "metrics.k8s.io",
                    "version": "v1beta1",
                    "service": {"name": _METRICS_SERVICE, "namespace": _METRICS_NAMESPACE, "port": service_port},
                    "caBundle": _b64(self.ca.cert.read_bytes()),
                    "groupPriorityMinimum": 100,
                    "versionPriority": 100,
                },
            }
        )
        return objects

    def _cleanup(self) -> None:
        # An APIService left pointing at a dead server makes discovery fail for every
        # client, and blocks namespace deletion, so it goes first and always.
        if self._registered:
            self._registered = False
            self._kubectl(
                "delete", "--ignore-not-found", "--wait=false", f"apiservice/{METRICS_API_SERVICE}",
                "-n", _METRICS_NAMESPACE, f"service/{_METRICS_SERVICE}",
                f"endpointslice/{_METRICS_SERVICE}-host", check=False,
            )  # fmt: skip

    def apiservice_available(self) -> bool:
        result = self._kubectl("get", "apiservice", METRICS_API_SERVICE, "-o", "json", check=False)
        if result.returncode != 0:
            return False
        conditions = json.loads(result.stdout).get("status", {}).get("conditions", [])
        return any(c.get("type") == "Available" and c.get("status") == "True" for c in conditions)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class KubeRouterFirewall(_HostProcess):
    """kube-router as the NetworkPolicy enforcer of one node, and nothing else.

    Firewall only (``--run-router=false --run-service-proxy=false``): routing is the
    CNI bridge's and services are kube-proxy's. It enforces policies with iptables
    chains (``KUBE-ROUTER-*``, ``KUBE-NWPLCY-*``, ``KUBE-POD-FW-*``) and ipsets, which
    this kernel has, where nftables-queue based enforcers need nft queue support.

    Killing it leaves every chain and ipset in place, so ``stop()`` kills it and then
    removes them (``remove_kube_router_firewall_state``; kube-router's own
    ``--cleanup-config`` removes nothing in this version). ``removed`` lists what went.
    ``cleanup_check`` makes stop raise if the host's iptables rules or ipsets differ
    from what they were before start. One instance per host: the chains are global.
    """

    name = "kube-router"
    binary = "kube-router"

    def __init__(
        self,
        bin_dir: pathlib.Path,
        kubeconfig: pathlib.Path,
        node_name: str,
        workdir: pathlib.Path,
        *,
        service_cidr: str = "10.96.0.0/16",
        sync_period: str = "5s",
        cleanup_check: bool = False,
        startup_timeout: float = 60.0,
        stop_timeout: float = 10.0,
    ) -> None:
        super().__init__(bin_dir, workdir, startup_timeout=startup_timeout, stop_timeout=stop_timeout)
        for tool in ("iptables-save", "iptables-restore", "ipset"):
            if shutil.which(tool) is None:
                raise AddonError(f"kube-router needs {tool} on PATH")
        self.kubeconfig = kubeconfig
        self.node_name = node_name
        self.service_cidr = service_cidr
        self.sync_period = sync_period
        self.cleanup_check = cleanup_check
        # kube-router's health server listens on every address (":port"); it is only
        # probed here on 127.0.0.1.
        self.health_port = _free_port()
        self._before: tuple[str, list[str]] | None = None
        self.removed: list[str] = []

    def _prepare(self) -> None:
        self._before = (iptables_snapshot(), ipset_names()) if self.cleanup_check else None

    def _args(self) -> list[str]:
        return [
            "--run-firewall=true",
            "--run-router=false",
            "--run-service-proxy=false",
            f"--kubeconfig={self.kubeconfig}",
            f"--hostname-override={self.node_name}",
            f"--service-cluster-ip-range={self.service_cidr}",
            f"--iptables-sync-period={self.sync_period}",
            f"--health-port={self.health_port}",
            "--metrics-port=0",
            "--v=2",
        ]

    def _ready(self) -> bool:
        return _http_status("127.0.0.1", self.health_port, "/healthz") == 200

    def _cleanup(self) -> None:
        self.removed = remove_kube_router_firewall_state()
        if self.removed:
            with (self.workdir / "logs" / "kube-router-cleanup.log").open("a") as out:
                out.write("\n".join(self.removed) + "\n")
        if self._before is not None:
            before, self._before = self._before, None
            after = (iptables_snapshot(), ipset_names())
            if after != before:
                raise AddonError(
                    "the host's iptables rules or ipsets differ from before kube-router started\n"
                    + _diff(before[0], after[0])
                    + f"\nipsets before: {before[1]}\nipsets after: {after[1]}"
                )


# What kube-router's network-policy controller creates (pkg/controllers/netpol): its
# top-level chains, one chain per policy and per local pod, and ipsets per policy.
_KUBE_ROUTER_CHAIN: Final = re.compile(
    r"KUBE-ROUTER-(?:INPUT|FORWARD|OUTPUT)|KUBE-NWPLCY-[A-Z0-9]+|KUBE-POD-FW-[A-Z0-9]+"
)
_KUBE_ROUTER_IPSET: Final = re.compile(r"KUBE-(?:SRC|DST)-[A-Z0-9]+")


def running_kube_routers() -> list[int]:
    """The pids of the kube-router processes alive on this host (their chains are not stale)."""
    pids: list[int] = []
    for comm in pathlib.Path("/proc").glob("[0-9]*/comm"):
        with contextlib.suppress(OSError):
            if comm.read_text().strip() == "kube-router":
                pids.append(int(comm.parent.name))
    return pids


def remove_kube_router_firewall_state() -> list[str]:
    """Delete kube-router's network-policy chains, the rules jumping to them, and its ipsets.

    ``kube-router --cleanup-config`` would be the tool, but in v2.1.0 it runs the
    cleanups on zero-value controllers: the network-policy one has no iptables
    handlers and removes nothing (while logging success), then the service-proxy one
    panics on a nil pointer. So this does what that cleanup means to, in one
    ``iptables-restore --noflush`` per table (atomic: no moment with a jump to a
    missing chain), then ``ipset destroy``. Returns what it removed. Other chains
    and sets on the host are left alone. IPv4 only, like the firewall it cleans.
    """
    removed: list[str] = []
    dump = subprocess.run(["iptables-save"], capture_output=True, text=True, timeout=30, check=True).stdout
    tables: dict[str, list[str]] = {}
    table = ""
    for line in dump.splitlines():
        if line.startswith("*"):
            table = line[1:]
            tables[table] = []
        elif table:
            tables[table].append(line)
    for table, lines in tables.items():
        chains = [line[1:].split()[0] for line in lines if line.startswith(":")]
        owned = [c for c in chains if _KUBE_ROUTER_CHAIN.fullmatch(c)]
        if not owned:
            continue
        jumps = [
            line
            for line in lines
            if line.startswith("-A ")
            and not _KUBE_ROUTER_CHAIN.fullmatch(line.split()[1])
            and re.search(r" -[jg] (\S+)", line)
            and _KUBE_ROUTER_CHAIN.fullmatch(re.findall(r" -[jg] (\S+)", line)[-1])
        ]
        script = [f"*{table}"]
        script += ["-D " + line[3:] for line in jumps]
        script += [f"-F {c}" for c in owned] + [f"-X {c}" for c in owned] + ["COMMIT", ""]
        result = subprocess.run(
            ["iptables-restore", "--noflush"],
            input="\n".join(script),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if result.returncode != 0:
            raise AddonError(f"removing kube-router's {table} chains failed:\n{result.stderr.strip()}")
        removed += [f"{table}: rule {line}" for line in jumps] + [f"{table}: chain {c}" for c in owned]
    for name in ipset_names():
        if _KUBE_ROUTER_IPSET.fullmatch(name):
            result = subprocess.run(["ipset", "destroy", name], capture_output=True, text=True, timeout=30, check=False)
            if result.returncode != 0:
                raise AddonError(f"ipset destroy {name} failed: {result.stderr.strip()}")
            removed.append(f"ipset {name}")
    return removed


def _diff(before: str, after: str) -> str:
    return "\n".join(difflib.unified_diff(before.splitlines(), after.splitlines(), "before", "after", lineterm=""))
