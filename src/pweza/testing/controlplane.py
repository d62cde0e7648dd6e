"""A real, throwaway Kubernetes control plane for tests.

``ControlPlane`` runs etcd, kube-apiserver, kube-controller-manager, kube-scheduler and
kwok (fake kubelets) as local processes on free 127.0.0.1 ports, with everything they
write kept in one temporary directory. The binaries are built from source by
``hack/build-k8s.sh`` (see docs/k8s-test-control-plane.md); tests should skip when
``k8s_bin_dir()`` is None::

    bin_dir = k8s_bin_dir()
    pytestmark = pytest.mark.skipif(bin_dir is None, reason=f"run {BUILD_COMMAND}")

    def test_deploy() -> None:
        with ControlPlane(nodes=3) as cp:
            cp.kubectl("create", "deployment", "web", "--image=nginx", "--replicas=2")

Pods scheduled to the kwok nodes go Running without any container runtime. Nothing
listens on a non-loopback address; node and pod IPs are bookkeeping only.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import dataclasses
import http.client
import importlib.resources
import json
import os
import pathlib
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Self

__all__ = [
    "BUILD_COMMAND",
    "K8S_VERSION",
    "REQUIRED_BINARIES",
    "ControlPlane",
    "ControlPlaneError",
    "KubectlError",
    "k8s_bin_dir",
]

K8S_VERSION: Final = "v1.37.2"
BUILD_COMMAND: Final = "hack/build-k8s.sh"
REQUIRED_BINARIES: Final = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kwok",
)

KWOK_NODE_ANNOTATION: Final = "kwok.x-k8s.io/node"
SERVICE_CLUSTER_IP_RANGE: Final = "10.96.0.0/16"
_SERVICE_IP: Final = "10.96.0.1"
_POD_CIDR: Final = "10.244.0.0/16"
_NODE_LEASE_SECONDS: Final = 40
_LOG_TAIL_LINES: Final = 40
_POLL_INTERVAL: Final = 0.25

# kwok only simulates what its Stage objects describe, and the bare `kwok` binary ships
# none (kwokctl injects these same defaults). manifests/kwok-stages.yaml is copied from kwok
# v0.8.0 kustomize/stage/{node/fast,node/heartbeat-with-lease,pod/fast}.
_KWOK_STAGES_FILE: Final = "manifests/kwok-stages.yaml"  # package data of pweza.testing


class ControlPlaneError(RuntimeError):
    """The control plane could not be started or did not become ready in time."""


class KubectlError(subprocess.CalledProcessError):
    """A ``kubectl`` call exited non-zero; ``str()`` includes its stderr."""

    def __str__(self) -> str:
        stderr = self.stderr if isinstance(self.stderr, str) else ""
        return f"{super().__str__()}\n{stderr.strip()}"


def _has_binaries(path: pathlib.Path) -> bool:
    return all(os.access(path / name, os.X_OK) for name in REQUIRED_BINARIES)


def k8s_bin_dir() -> pathlib.Path | None:
    """The directory holding the test-kit binaries, or None when they are not built.

    ``PWEZA_K8S_BIN`` names the directory explicitly; otherwise the cache that
    ``hack/build-k8s.sh`` fills for the pinned ``K8S_VERSION`` is used.
    """
    override = os.environ.get("PWEZA_K8S_BIN")
    if override:
        candidate = pathlib.Path(override).expanduser()
    else:
        cache = os.environ.get("PWEZA_K8S_CACHE") or str(pathlib.Path.home() / ".cache" / "pweza")
        candidate = pathlib.Path(cache).expanduser() / f"k8s-{K8S_VERSION}" / "bin"
    return candidate.resolve() if _has_binaries(candidate) else None


@dataclass(frozen=True)
class _Ports:
    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int
    kwok: int


def _free_ports() -> _Ports:
    # All sockets stay open until every port is picked so that no two components share
    # one; another process may still grab a port before its component binds it.
    with contextlib.ExitStack() as stack:
        ports: list[int] = []
        for _ in range(6):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
    return _Ports(*ports)


_PR_SET_PDEATHSIG: Final = 1


def _parent_death_signal() -> Callable[[], None] | None:
    # If the test process dies without running __exit__ (SIGKILL, a CI timeout), the
    # kernel kills the components too instead of leaving etcd and the apiserver behind.
    # Caveat: the signal fires when the *thread* that started them exits.
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    return preexec


def _tail(path: pathlib.Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    return "\n".join(text.splitlines()[-lines:])


class _Pki:
    """Certificates and keys made with the openssl CLI (the stdlib cannot issue them)."""

    def __init__(self, directory: pathlib.Path) -> None:
        self.dir = directory
        self.ca_cert = directory / "ca.crt"
        self.ca_key = directory / "ca.key"
        self.sa_key = directory / "sa.key"
        self.sa_pub = directory / "sa.pub"
        self._serial = 1

    def _openssl(self, *args: str) -> None:
        openssl = shutil.which("openssl")
        if openssl is None:
            raise ControlPlaneError("the openssl CLI is required to make test certificates")
        result = subprocess.run(
            [openssl, *args],
            cwd=self.dir,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            raise ControlPlaneError(f"openssl {' '.join(args)} failed:\n{result.stderr.strip()}")

    def _ec_key(self, path: pathlib.Path) -> None:
        self._openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path))

    def create_ca(self) -> None:
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._ec_key(self.ca_key)
        config = self.dir / "ca.cnf"
        config.write_text(
            "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = pweza-test-ca\n"
            "[ext]\nbasicConstraints = critical,CA:TRUE\n"
            "keyUsage = critical,keyCertSign,cRLSign,digitalSignature\n"
            "subjectKeyIdentifier = hash\n"
        )
        self._openssl(
            "req", "-x509", "-new", "-key", str(self.ca_key), "-config", str(config),
            "-extensions", "ext", "-days", "30", "-sha256", "-out", str(self.ca_cert),
        )  # fmt: skip
        # RSA rather than EC: some service-account token consumers only handle RS256.
        self._openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                      "-out", str(self.sa_key))  # fmt: skip
        self._openssl("pkey", "-in", str(self.sa_key), "-pubout", "-out", str(self.sa_pub))

    def issue(
        self,
        name: str,
        common_name: str,
        *,
        organization: str | None = None,
        server_names: Sequence[str] = (),
        server_ips: Sequence[str] = (),
    ) -> tuple[pathlib.Path, pathlib.Path]:
        key = self.dir / f"{name}.key"
        csr = self.dir / f"{name}.csr"
        cert = self.dir / f"{name}.crt"
        ext = self.dir / f"{name}.ext"
        self._ec_key(key)
        subject = f"/CN={common_name}" + (f"/O={organization}" if organization else "")
        self._openssl("req", "-new", "-key", str(key), "-subj", subject, "-out", str(csr))
        sans = [f"DNS:{n}" for n in server_names] + [f"IP:{ip}" for ip in server_ips]
        usage = "serverAuth" if sans else "clientAuth"
        ext.write_text(
            "[ext]\nbasicConstraints = critical,CA:FALSE\n"
            "keyUsage = critical,digitalSignature,keyEncipherment\n"
            f"extendedKeyUsage = {usage}\nauthorityKeyIdentifier = keyid\n"
            + (f"subjectAltName = {','.join(sans)}\n" if sans else "")
        )
        self._serial += 1
        self._openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(self.ca_cert), "-CAkey", str(self.ca_key),
            "-set_serial", str(self._serial), "-days", "30", "-sha256",
            "-extfile", str(ext), "-extensions", "ext", "-out", str(cert),
        )  # fmt: skip
        return cert, key


@dataclass
class _Component:
    name: str
    process: subprocess.Popen[bytes]
    log: pathlib.Path


class ControlPlane:
    """etcd + kube-apiserver + controller-manager + scheduler + ``nodes`` kwok nodes.

    Use as a context manager; ``start()``/``stop()`` are the same steps for fixtures
    that cannot use ``with``. The kubeconfig authenticates as a ``system:masters``
    client certificate. Authorization is ``Node,RBAC``, so identities other than
    the admin are subject to RBAC as on a real cluster.
    """

    def __init__(
        self,
        nodes: int = 1,
        *,
        bin_dir: pathlib.Path | None = None,
        address: str = "127.0.0.1",
        apiserver_port: int | None = None,
        startup_timeout: float = 180.0,
        stop_timeout: float = 10.0,
        extra_apiserver_args: Sequence[str] = (),
    ) -> None:
        if nodes < 0:
            raise ValueError("nodes must be >= 0")
        resolved = bin_dir if bin_dir is not None else k8s_bin_dir()
        if resolved is None or not _has_binaries(resolved):
            raise ControlPlaneError(
                f"Kubernetes test binaries not found (need {', '.join(REQUIRED_BINARIES)}); "
                f"build them with `{BUILD_COMMAND}` or point PWEZA_K8S_BIN at them"
            )
        self.bin_dir: pathlib.Path = resolved
        # 127.0.0.1 unless a real node's pods must reach the apiserver: then the address of
        # the bridge the node's fixture made (see pweza.testing.node), never an uplink's.
        self.address = address
        # A free port unless given: pods' NetworkPolicies admit the API server by its real port
        # (443 or 6443 on clusters), so a real node's control plane serves on 6443.
        self.apiserver_port = apiserver_port
        self.nodes = nodes
        self.node_names: tuple[str, ...] = tuple(f"kwok-node-{i}" for i in range(nodes))
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        # Appended to kube-apiserver's flags, e.g. addons.aggregator_apiserver_flags().
        self.extra_apiserver_args: tuple[str, ...] = tuple(extra_apiserver_args)
        self._workdir: pathlib.Path | None = None
        self._components: list[_Component] = []
        self._ports: _Ports | None = None
        self._ssl: ssl.SSLContext | None = None
        self._pki: _Pki | None = None

    @property
    def workdir(self) -> pathlib.Path:
        """The temp dir holding certificates, kubeconfigs, etcd data and ``logs/``."""
        if self._workdir is None:
            raise ControlPlaneError("the control plane is not running")
        return self._workdir

    @property
    def kubeconfig(self) -> pathlib.Path:
        return self.workdir / "admin.kubeconfig"

    @property
    def server(self) -> str:
        if self._ports is None:
            raise ControlPlaneError("the control plane is not running")
        return f"https://{self.address}:{self._ports.apiserver}"

    @property
    def pki(self) -> _Pki:
        """The test CA, to issue certificates for more components (a real node's kubelet)."""
        if self._pki is None:
            raise ControlPlaneError("the control plane is not running")
        return self._pki

    @property
    def env(self) -> dict[str, str]:
        """Environment for running kubectl, helm or other clients against this cluster."""
        workdir = self.workdir
        return {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "PATH": f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "KUBECACHEDIR": str(workdir / "client" / "kube-cache"),
            "HELM_CACHE_HOME": str(workdir / "client" / "helm-cache"),
            "HELM_CONFIG_HOME": str(workdir / "client" / "helm-config"),
            "HELM_DATA_HOME": str(workdir / "client" / "helm-data"),
        }

    def kubectl(
        self,
        *args: str,
        stdin: str | None = None,
        check: bool = True,
        timeout: float = 60.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``kubectl`` as cluster admin; raises ``KubectlError`` on failure if ``check``."""
        cmd = [str(self.bin_dir / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args]
        result = subprocess.run(
            cmd,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env,
            check=False,
        )
        if check and result.returncode != 0:
            raise KubectlError(result.returncode, cmd, result.stdout, result.stderr)
        return result

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
        if self._workdir is not None:
            raise ControlPlaneError("the control plane is already running")
        self._workdir = pathlib.Path(tempfile.mkdtemp(prefix="pweza-k8s-"))
        try:
            self._start(time.monotonic() + self.startup_timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every component (SIGTERM, then SIGKILL) and delete the temp dir."""
        # Clients first so they do not spam errors while the apiserver goes away, and
        # etcd last so the apiserver can shut down cleanly.
        by_name = {c.name: c for c in self._components}
        try:
            for group in (("kwok", "kube-scheduler", "kube-controller-manager"), ("kube-apiserver",)):
                self._terminate([by_name.pop(n) for n in group if n in by_name])
            self._terminate(list(by_name.values()))
        finally:
            self._components.clear()
            if self._workdir is not None:
                shutil.rmtree(self._workdir, ignore_errors=True)
        self._workdir = None
        self._ports = None
        self._ssl = None
        self._pki = None

    def _terminate(self, components: Sequence[_Component]) -> None:
        for c in components:
            if c.process.poll() is None:
                c.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        for c in components:
            try:
                c.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                c.process.kill()
                c.process.wait(timeout=10)

    def _start(self, deadline: float) -> None:
        workdir = self.workdir
        (workdir / "logs").mkdir()
        ports = self._ports = _free_ports()
        if self.apiserver_port is not None:
            ports = self._ports = dataclasses.replace(ports, apiserver=self.apiserver_port)
        pki = self._pki = _Pki(workdir / "pki")
        pki.create_ca()
        serving_cert, serving_key = pki.issue(
            "apiserver",
            "kube-apiserver",
            server_names=(
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
            server_ips=tuple(dict.fromkeys(("127.0.0.1", self.address, _SERVICE_IP))),
        )
        # The apiserver's identity towards kubelets (logs, exec) and, through the aggregation
        # layer, towards extension apiservers such as metrics-server.
        kubelet_client_cert, kubelet_client_key = pki.issue(
            "apiserver-kubelet-client", "kube-apiserver-kubelet-client", organization="system:masters"
        )
        front_proxy_cert, front_proxy_key = pki.issue("front-proxy-client", "front-proxy-client")
        clients = {
            "admin": ("pweza-admin", "system:masters"),
            "kube-controller-manager": ("system:kube-controller-manager", None),
            "kube-scheduler": ("system:kube-scheduler", None),
            # kwok writes node and pod status, leases and deletions across namespaces.
            "kwok": ("kwok-controller", "system:masters"),
        }
        kubeconfigs: dict[str, pathlib.Path] = {}
        for name, (user, group) in clients.items():
            cert, key = pki.issue(f"{name}-client", user, organization=group)
            kubeconfigs[name] = self._write_kubeconfig(name, pki.ca_cert, cert, key)
            if name == "admin":
                self._ssl = ssl.create_default_context(cafile=str(pki.ca_cert))
                self._ssl.load_cert_chain(str(cert), str(key))

        etcd_url = f"http://127.0.0.1:{ports.etcd_client}"
        peer_url = f"http://127.0.0.1:{ports.etcd_peer}"
        self._spawn(
            "etcd",
            "--name=pweza",
            f"--data-dir={workdir / 'etcd'}",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=pweza={peer_url}",
            "--initial-cluster-state=new",
            # The data is deleted on exit; fsync only slows tests down.
            "--unsafe-no-fsync=true",
            "--log-level=warn",
        )
        self._wait("etcd to be healthy", deadline, self._etcd_healthy, ("etcd",))

        self._spawn(
            "kube-apiserver",
            f"--etcd-servers={etcd_url}",
            f"--advertise-address={self.address}",
            f"--bind-address={self.address}",
            f"--secure-port={ports.apiserver}",
            f"--cert-dir={workdir / 'apiserver-certs'}",
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
            f"--endpoint-reconciler-type={'none' if self.address == '127.0.0.1' else 'lease'}",
            # Kubelets are reached at their InternalIP, never by a hostname looked up through
            # the machine's resolver, and must prove a serving certificate from the test CA.
            "--kubelet-preferred-address-types=InternalIP",
            f"--kubelet-client-certificate={kubelet_client_cert}",
            f"--kubelet-client-key={kubelet_client_key}",
            *([] if self.address == "127.0.0.1" else [f"--kubelet-certificate-authority={pki.ca_cert}"]),
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
            *self.extra_apiserver_args,
        )
        self._wait(
            "kube-apiserver /readyz",
            deadline,
            self._apiserver_ready,
            ("kube-apiserver", "etcd"),
        )

        self._spawn(
            "kube-controller-manager",
            f"--kubeconfig={kubeconfigs['kube-controller-manager']}",
            "--bind-address=127.0.0.1",
            f"--secure-port={ports.controller_manager}",
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
        )
        self._spawn(
            "kube-scheduler",
            f"--kubeconfig={kubeconfigs['kube-scheduler']}",
            "--bind-address=127.0.0.1",
            f"--secure-port={ports.scheduler}",
            "--leader-elect=false",
        )
        stages = workdir / "kwok-stages.yaml"
        stages.write_text(importlib.resources.files("pweza.testing").joinpath(_KWOK_STAGES_FILE).read_text())
        self._spawn(
            "kwok",
            f"--kubeconfig={kubeconfigs['kwok']}",
            f"--config={stages}",
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
            "--node-ip=127.0.0.1",
            f"--cidr={_POD_CIDR}",
            f"--node-lease-duration-seconds={_NODE_LEASE_SECONDS}",
            f"--server-address=127.0.0.1:{ports.kwok}",
        )
        for node in self.node_names:
            self._create_node(node)

        self._wait(
            "kube-controller-manager /healthz",
            deadline,
            lambda: self._component_healthy(ports.controller_manager),
            ("kube-controller-manager",),
        )
        self._wait(
            "kube-scheduler /healthz",
            deadline,
            lambda: self._component_healthy(ports.scheduler),
            ("kube-scheduler",),
        )
        self._wait(
            "the default ServiceAccount",
            deadline,
            lambda: self._get("/api/v1/namespaces/default/serviceaccounts/default")[0] == 200,
            ("kube-controller-manager",),
        )
        self._wait(
            f"{self.nodes} kwok node(s) to be Ready and schedulable",
            deadline,
            self._nodes_ready,
            ("kwok", "kube-controller-manager"),
        )

    def _write_kubeconfig(self, name: str, ca: pathlib.Path, cert: pathlib.Path, key: pathlib.Path) -> pathlib.Path:
        def b64(path: pathlib.Path) -> str:
            return base64.b64encode(path.read_bytes()).decode()

        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "pweza-test",
                    "cluster": {
                        "server": self.server,
                        "certificate-authority-data": b64(ca),
                    },
                }
            ],
            "users": [
                {
                    "name": name,
                    "user": {
                        "client-certificate-data": b64(cert),
                        "client-key-data": b64(key),
                    },
                }
            ],
            "contexts": [
                {
                    "name": "pweza-test",
                    "context": {"cluster": "pweza-test", "user": name},
                }
            ],
            "current-context": "pweza-test",
        }
        path = self.workdir / f"{name}.kubeconfig"
        # JSON is valid YAML, which keeps this module free of a YAML dependency.
        path.write_text(json.dumps(config, indent=2))
        path.chmod(0o600)
        return path

    def _spawn(self, name: str, *args: str) -> None:
        log = self.workdir / "logs" / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [str(self.bin_dir / name), *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env={**os.environ, "HOME": str(self.workdir)},
                # The child only calls prctl(); it takes no lock another thread could hold.
                preexec_fn=_parent_death_signal(),
            )
        self._components.append(_Component(name, process, log))

    def _log_tails(self, names: Iterable[str]) -> str:
        by_name = {c.name: c for c in self._components}
        parts = []
        for name in names:
            component = by_name.get(name)
            if component is not None:
                parts.append(f"--- last {_LOG_TAIL_LINES} lines of {name} log ---\n{_tail(component.log)}")
        return "\n".join(parts)

    def _check_alive(self) -> None:
        for c in self._components:
            code = c.process.poll()
            if code is not None:
                raise ControlPlaneError(f"{c.name} exited with code {code} during startup\n{self._log_tails([c.name])}")

    def _wait(
        self,
        what: str,
        deadline: float,
        ready: Callable[[], bool],
        suspects: Sequence[str],
    ) -> None:
        while True:
            self._check_alive()
            if ready():
                return
            if time.monotonic() >= deadline:
                raise ControlPlaneError(
                    f"timed out after {self.startup_timeout:.0f}s waiting for {what}\n" + self._log_tails(suspects)
                )
            time.sleep(_POLL_INTERVAL)

    def _etcd_healthy(self) -> bool:
        assert self._ports is not None
        conn = http.client.HTTPConnection("127.0.0.1", self._ports.etcd_client, timeout=2)
        try:
            conn.request("GET", "/health")
            response = conn.getresponse()
            if response.status != 200:
                return False
            health: Any = json.loads(response.read())
        except (OSError, http.client.HTTPException, ValueError):
            return False
        finally:
            conn.close()
        return isinstance(health, dict) and health.get("health") == "true"

    def _request(self, method: str, path: str, body: object | None = None) -> tuple[int, bytes]:
        assert self._ports is not None and self._ssl is not None
        conn = http.client.HTTPSConnection(self.address, self._ports.apiserver, context=self._ssl, timeout=5)
        try:
            conn.request(
                method,
                path,
                body=None if body is None else json.dumps(body),
                headers={
                    "Accept": "application/json",
                    "Content-Type": "application/json",
                },
            )
            response = conn.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException):
            return 0, b""
        finally:
            conn.close()

    def _get(self, path: str) -> tuple[int, Any]:
        status, body = self._request("GET", path)
        if status != 200:
            return status, None
        try:
            return status, json.loads(body)
        except ValueError:
            return status, body.decode(errors="replace")

    def _apiserver_ready(self) -> bool:
        status, body = self._request("GET", "/readyz")
        return status == 200 and body.strip() == b"ok"

    def _component_healthy(self, port: int) -> bool:
        # These components serve a self-signed cert they make at startup; this is only a
        # loopback liveness probe, so there is nothing to verify it against.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=2)
        try:
            conn.request("GET", "/healthz")
            response = conn.getresponse()
            return response.status == 200 and response.read().strip() == b"ok"
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()

    def _create_node(self, name: str) -> None:
        # As a kubelet reports them; without ephemeral-storage a pod that requests it never schedules.
        resources = {"cpu": "32", "memory": "256Gi", "ephemeral-storage": "500Gi", "pods": "110"}
        node = {
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
        status, body = self._request("POST", "/api/v1/nodes", node)
        if status not in (201, 409):
            raise ControlPlaneError(f"creating node {name} failed: HTTP {status} {body.decode(errors='replace')}")

    def _nodes_ready(self) -> bool:
        if not self.node_names:
            return True
        selector = urllib.parse.quote("type=kwok")
        status, nodes = self._get(f"/api/v1/nodes?labelSelector={selector}")
        if status != 200 or not isinstance(nodes, dict):
            return False
        ready = set()
        for node in nodes.get("items", []):
            conditions = node.get("status", {}).get("conditions", [])
            is_ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
            # The node lifecycle controller lifts this taint a moment after Ready; until
            # then the scheduler would leave pods Pending.
            tainted = any(
                t.get("key", "").startswith("node.kubernetes.io/") for t in node.get("spec", {}).get("taints", []) or []
            )
            if is_ready and not tainted:
                ready.add(node["metadata"]["name"])
        return ready.issuperset(self.node_names)
