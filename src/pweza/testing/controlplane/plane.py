"""``ControlPlane``: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok
started as local processes, wired together, and waited for until they are ready."""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import json
import os
import pathlib
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Self

from pweza.manager.children import dies_with_parent
from pweza.testing.child_processes import LOG_TAIL_LINES, log_tail
from pweza.testing.controlplane import kwok
from pweza.testing.controlplane.binaries import BUILD_COMMAND, REQUIRED_BINARIES, has_binaries, k8s_bin_dir
from pweza.testing.controlplane.components import (
    apiserver_args,
    controller_manager_args,
    etcd_args,
    etcd_url,
    issue_apiserver_certificates,
    scheduler_args,
)
from pweza.testing.controlplane.errors import ControlPlaneError, KubectlError
from pweza.testing.controlplane.pki import Pki
from pweza.testing.controlplane.probes import component_healthy, etcd_healthy
from pweza.testing.kubeconfigs import write_kubeconfig

__all__ = ["ControlPlane"]

_POLL_INTERVAL: Final = 0.25


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
        if resolved is None or not has_binaries(resolved):
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
        self._pki: Pki | None = None

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
    def pki(self) -> Pki:
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
        pki = self._pki = Pki.create(workdir / "pki", "pweza-test-ca")
        pki.create_service_account_keys()
        certificates = issue_apiserver_certificates(pki, self.address)
        kubeconfigs = self._client_kubeconfigs(pki)

        self._spawn("etcd", *etcd_args(workdir / "etcd", ports.etcd_client, ports.etcd_peer))
        self._wait("etcd to be healthy", deadline, lambda: etcd_healthy(ports.etcd_client), ("etcd",))

        self._spawn(
            "kube-apiserver",
            *apiserver_args(
                etcd=etcd_url(ports.etcd_client),
                address=self.address,
                port=ports.apiserver,
                cert_dir=workdir / "apiserver-certs",
                pki=pki,
                certificates=certificates,
                extra=self.extra_apiserver_args,
            ),
        )
        self._wait(
            "kube-apiserver /readyz",
            deadline,
            self._apiserver_ready,
            ("kube-apiserver", "etcd"),
        )

        self._spawn(
            "kube-controller-manager",
            *controller_manager_args(kubeconfigs["kube-controller-manager"], ports.controller_manager, pki),
        )
        self._spawn("kube-scheduler", *scheduler_args(kubeconfigs["kube-scheduler"], ports.scheduler))
        stages = workdir / "kwok-stages.yaml"
        stages.write_text(kwok.stages_yaml())
        self._spawn("kwok", *kwok.kwok_args(kubeconfigs["kwok"], stages, ports.kwok))
        for node in self.node_names:
            self._create_node(node)

        self._wait(
            "kube-controller-manager /healthz",
            deadline,
            lambda: component_healthy(ports.controller_manager),
            ("kube-controller-manager",),
        )
        self._wait(
            "kube-scheduler /healthz",
            deadline,
            lambda: component_healthy(ports.scheduler),
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

    def _client_kubeconfigs(self, pki: Pki) -> dict[str, pathlib.Path]:
        """A client certificate and kubeconfig per client; the admin's also authenticates this
        object's own requests."""
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
            kubeconfigs[name] = self.write_kubeconfig(name, pki.ca_cert, cert, key)
            if name == "admin":
                self._ssl = ssl.create_default_context(cafile=str(pki.ca_cert))
                self._ssl.load_cert_chain(str(cert), str(key))
        return kubeconfigs

    def write_kubeconfig(self, name: str, ca: pathlib.Path, cert: pathlib.Path, key: pathlib.Path) -> pathlib.Path:
        """A kubeconfig in the workdir for a client certificate of this cluster's CA (the
        components', and a real node's kubelet and kube-proxy)."""
        return write_kubeconfig(self.workdir / f"{name}.kubeconfig", self.server, ca, cert, key, user=name)

    def _spawn(self, name: str, *args: str) -> None:
        log = self.workdir / "logs" / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                dies_with_parent([str(self.bin_dir / name), *args], signal.SIGKILL),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env={**os.environ, "HOME": str(self.workdir)},
            )
        self._components.append(_Component(name, process, log))

    def _log_tails(self, names: Iterable[str]) -> str:
        by_name = {c.name: c for c in self._components}
        parts = []
        for name in names:
            component = by_name.get(name)
            if component is not None:
                parts.append(f"--- last {LOG_TAIL_LINES} lines of {name} log ---\n{log_tail(component.log)}")
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

    def _create_node(self, name: str) -> None:
        status, body = self._request("POST", "/api/v1/nodes", kwok.node_object(name))
        if status not in (201, 409):
            raise ControlPlaneError(f"creating node {name} failed: HTTP {status} {body.decode(errors='replace')}")

    def _nodes_ready(self) -> bool:
        if not self.node_names:
            return True
        selector = urllib.parse.quote(kwok.NODE_SELECTOR)
        status, nodes = self._get(f"/api/v1/nodes?labelSelector={selector}")
        if status != 200 or not isinstance(nodes, dict):
            return False
        return kwok.ready_node_names(nodes).issuperset(self.node_names)
