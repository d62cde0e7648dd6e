"""A real node for the test control plane: containerd, runc, the CNI bridge, kubelet, kube-proxy.

``NodeCluster`` makes a bridge for the pods, starts a ``ControlPlane`` whose apiserver listens on
that bridge's address (so pods reach it through the ``kubernetes`` Service), and joins one real
kubelet to it. Containers really run: images are imported into a private containerd straight from
the archives ``hack/build-image.sh`` writes (no registry), so pods use ``imagePullPolicy:
IfNotPresent`` with the image names in ``pweza.testing.images.IMAGES``::

    reason = node_unavailable()
    pytestmark = pytest.mark.skipif(reason is not None, reason=reason or "")

    with NodeCluster() as cluster:
        cluster.kubectl("run", "x", "--image=ghcr.io/pweza/pweza-core:0.1.0", "--", "version")

Network safety: pods live only on the bridge this module makes (``POD_SUBNET``), the service CIDR
is ``10.96.0.0/16``; nothing is masqueraded to an uplink, and a policy-routing table plus a
mangle rule drop whatever a pod sends to any other interface, so nothing a pod does leaves the
machine. Everything (processes, containers, mounts, network namespaces, the bridge, routing rules,
iptables chains, sysctls) is undone on exit, even after a failure, and a run killed half-way is
cleaned up by the next one (the names are fixed).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import pathlib
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Final, Self

from pweza.manager.children import dies_with_parent
from pweza.testing.addons import KubeRouterFirewall, remove_kube_router_firewall_state
from pweza.testing.child_processes import log_tail
from pweza.testing.controlplane import BUILD_COMMAND, ControlPlane, ControlPlaneError, k8s_bin_dir
from pweza.testing.controlplane.components import SERVICE_CLUSTER_IP_RANGE
from pweza.testing.images import BUILD_IMAGES_COMMAND, PAUSE_IMAGE, image_archives, import_images
from pweza.testing.node_addons import CLUSTER_DNS_IP, addon_objects
from pweza.testing.oci import write_binary_image

__all__ = [
    "BRIDGE",
    "CLUSTER_DNS_IP",
    "GATEWAY_IP",
    "NODE_NAME",
    "POD_SUBNET",
    "STORAGE_CLASS",
    "NodeCluster",
    "clean_stale_nodes",
    "node_unavailable",
]

BRIDGE: Final = "pweza0"
POD_SUBNET: Final = "10.244.0.0/24"
GATEWAY_IP: Final = "10.244.0.1"
NODE_NAME: Final = "pweza-node"
STORAGE_CLASS: Final = "pweza-local"
SANDBOX_IMAGE: Final = PAUSE_IMAGE
CNI_BIN_DIR: Final = pathlib.Path("/usr/lib/cni")
KUBELET_PORT: Final = 10250
# Where clusters serve the API (the chart's NetworkPolicies admit 443 and 6443 to reach it).
APISERVER_PORT: Final = 6443
# Policy routing: what a pod sends is routed by this table only, which knows the bridge and
# nothing else, so a pod cannot reach beyond the machine even with forwarding on.
_ROUTE_TABLE: Final = "244"
_RULE_PRIORITY: Final = "2440"
_GUARD_CHAIN: Final = "PWEZA-NODE-GUARD"
_HOST_PACKAGES: Final = {
    "containerd": "containerd",
    "ctr": "containerd",
    "runc": "runc",
    "ip": "iproute2",
    "iptables": "iptables",
    "ipset": "ipset",
    "conntrack": "conntrack",
}
_WORKDIR_PREFIX: Final = "pweza-node-"


class NodeError(ControlPlaneError):
    """The node could not be set up or did not become ready in time."""


def node_unavailable() -> str | None:
    """Why a real node cannot run here (what is missing and how to get it), or None."""
    if os.name != "posix" or not pathlib.Path("/proc/sys/net").is_dir():
        return "a real test node needs Linux"
    if os.geteuid() != 0:
        return "a real test node needs root (it makes a bridge, mounts and iptables rules)"
    missing = sorted({pkg for cmd, pkg in _HOST_PACKAGES.items() if shutil.which(cmd) is None})
    if not (CNI_BIN_DIR / "bridge").exists():
        missing.append("containernetworking-plugins")
    if missing:
        return f"Debian packages missing for the real test node: apt-get install {' '.join(sorted(set(missing)))}"
    bin_dir = k8s_bin_dir()
    if bin_dir is None or not all((bin_dir / b).exists() for b in ("kubelet", "kube-proxy")):
        return f"kubelet/kube-proxy not built: run {BUILD_COMMAND} (make test does)"
    if image_archives() is None:
        return f"images not built: run {BUILD_IMAGES_COMMAND} (make test does)"
    return None


def _run(*cmd: str, check: bool = True, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise NodeError(f"{' '.join(cmd)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


@dataclass
class _Sysctl:
    path: pathlib.Path
    old: str


@dataclass
class PodNetwork:
    """The bridge, its routing guard and the sysctls the node needs; undone in reverse."""

    _sysctls: list[_Sysctl] = field(default_factory=list)

    def setup(self) -> None:
        self.teardown()  # whatever a killed run left behind
        _run("ip", "link", "add", BRIDGE, "type", "bridge")
        _run("ip", "addr", "add", f"{GATEWAY_IP}/24", "dev", BRIDGE)
        _run("ip", "link", "set", BRIDGE, "up")
        ipv6 = pathlib.Path(f"/proc/sys/net/ipv6/conf/{BRIDGE}/disable_ipv6")
        if ipv6.exists():
            ipv6.write_text("1")
        _run("ip", "route", "add", POD_SUBNET, "dev", BRIDGE, "table", _ROUTE_TABLE)
        _run("ip", "route", "add", "unreachable", "default", "table", _ROUTE_TABLE)
        _run("ip", "rule", "add", "pref", _RULE_PRIORITY, "iif", BRIDGE, "lookup", _ROUTE_TABLE)
        # Belt and braces in the mangle table, which kube-proxy and the policy enforcer leave alone.
        _run("iptables", "-t", "mangle", "-N", _GUARD_CHAIN)
        _run("iptables", "-t", "mangle", "-A", _GUARD_CHAIN, "-i", BRIDGE, "!", "-o", BRIDGE, "-j", "DROP")
        _run("iptables", "-t", "mangle", "-A", _GUARD_CHAIN, "!", "-i", BRIDGE, "-o", BRIDGE, "-j", "DROP")
        _run("iptables", "-t", "mangle", "-I", "FORWARD", "1", "-j", _GUARD_CHAIN)
        # Pod to pod through a Service is bridged traffic that must see kube-proxy's rules;
        # forwarding is on only while the guard above is in place.
        for path in ("/proc/sys/net/bridge/bridge-nf-call-iptables", "/proc/sys/net/ipv4/ip_forward"):
            self._set(pathlib.Path(path), "1")

    def _set(self, path: pathlib.Path, value: str) -> None:
        if not path.exists():
            raise NodeError(f"{path} is missing: the kernel needs bridge netfilter and IPv4 forwarding")
        self._sysctls.append(_Sysctl(path, path.read_text().strip()))
        path.write_text(value)

    def teardown(self) -> None:
        for sysctl in reversed(self._sysctls):
            with contextlib.suppress(OSError):
                sysctl.path.write_text(sysctl.old)
        self._sysctls.clear()
        while _run("iptables", "-t", "mangle", "-D", "FORWARD", "-j", _GUARD_CHAIN, check=False).returncode == 0:
            pass
        _run("iptables", "-t", "mangle", "-F", _GUARD_CHAIN, check=False)
        _run("iptables", "-t", "mangle", "-X", _GUARD_CHAIN, check=False)
        while _run("ip", "rule", "del", "pref", _RULE_PRIORITY, check=False).returncode == 0:
            pass
        _run("ip", "route", "flush", "table", _ROUTE_TABLE, check=False)
        if pathlib.Path(f"/sys/class/net/{BRIDGE}").exists():
            _run("ip", "link", "del", BRIDGE, check=False)


@dataclass
class _Process:
    name: str
    process: subprocess.Popen[bytes]
    log: pathlib.Path


class NodeCluster:
    """A ``ControlPlane`` (no kwok nodes) with one real kubelet node and the add-ons pods need.

    ``kubectl``/``env``/``kubeconfig`` are the control plane's. ``workdir`` holds the node's
    state (containerd, kubelet, CNI, volumes) and ``logs/``.
    """

    def __init__(self, *, startup_timeout: float = 300.0, stop_timeout: float = 15.0) -> None:
        reason = node_unavailable()
        if reason is not None:
            raise NodeError(reason)
        bin_dir = k8s_bin_dir()
        assert bin_dir is not None
        self.bin_dir = bin_dir
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.network = PodNetwork()
        self.control_plane = ControlPlane(
            nodes=0, address=GATEWAY_IP, apiserver_port=APISERVER_PORT, startup_timeout=startup_timeout
        )
        self._workdir: pathlib.Path | None = None
        self._processes: list[_Process] = []
        self._cleanups: list[Callable[[], None]] = []
        self._netns_before: set[str] = set()
        self._kube_router: KubeRouterFirewall | None = None

    # -- what tests use -------------------------------------------------------------------

    @property
    def workdir(self) -> pathlib.Path:
        if self._workdir is None:
            raise NodeError("the node is not running")
        return self._workdir

    @property
    def kubeconfig(self) -> pathlib.Path:
        return self.control_plane.kubeconfig

    @property
    def env(self) -> dict[str, str]:
        return self.control_plane.env

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        return self.control_plane.kubectl(*args, stdin=stdin, check=check, timeout=timeout)

    def log(self, name: str) -> pathlib.Path:
        return self.workdir / "logs" / f"{name}.log"

    def tag_image(self, source: str, target: str) -> None:
        """Give an imported image one more name, as a registry push of a new tag would."""
        self._ctr("-n", "k8s.io", "images", "tag", "--force", source, target)

    def container_process(self, container_id: str) -> dict[str, str]:
        """A running container's main process as the node sees it: pid, uid, gid, and whether its
        root filesystem is mounted read-only ("ro") or not ("rw")."""
        pid = ""
        for line in self._ctr("-n", "k8s.io", "tasks", "ls").stdout.splitlines()[1:]:
            fields = line.split()
            if fields and fields[0] == container_id:
                pid = fields[1]
        if not pid:
            raise NodeError(f"no running task for container {container_id}")
        status = pathlib.Path(f"/proc/{pid}/status").read_text()
        uid = next(line.split()[1] for line in status.splitlines() if line.startswith("Uid:"))
        gid = next(line.split()[1] for line in status.splitlines() if line.startswith("Gid:"))
        root = "rw"
        for line in pathlib.Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
            fields = line.split()
            if fields[4] == "/":
                root = "ro" if "ro" in fields[5].split(",") else "rw"
        return {"pid": pid, "uid": uid, "gid": gid, "root": root}

    def on_stop(self, cleanup: Callable[[], None]) -> None:
        """Run ``cleanup`` when the node stops (add-ons started by tests), last added first."""
        self._cleanups.append(cleanup)

    # -- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        if self._workdir is not None:
            raise NodeError("the node is already running")
        self._workdir = pathlib.Path(tempfile.mkdtemp(prefix=_WORKDIR_PREFIX))
        (self._workdir / "logs").mkdir()
        deadline = time.monotonic() + self.startup_timeout
        try:
            clean_stale_nodes(keep=self._workdir)
            self._netns_before = set(_netns_names())
            self.network.setup()
            self.control_plane.start()
            self._start_containerd(deadline)
            self._start_kubelet(deadline)
            self._start_kube_proxy(deadline)
            self._start_policy_enforcer()
            self._register_cluster_objects()
            self._start_addons(deadline)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Undo everything start() did, whatever state it reached."""
        errors: list[str] = []

        def attempt(step: Callable[[], None]) -> None:
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - every step must run; report all at the end
                errors.append(f"{getattr(step, '__name__', repr(step))}: {exc}")

        while self._cleanups:
            attempt(self._cleanups.pop())
        if self._kube_router is not None:
            attempt(self._kube_router.stop)
            self._kube_router = None
        by_name = {p.name: p for p in self._processes}
        for name in ("kube-proxy", "kubelet"):
            if name in by_name:
                attempt(functools.partial(self._terminate, by_name.pop(name)))
        if self._workdir is not None:
            attempt(self._kube_proxy_cleanup)
            attempt(self._kill_containers)
        for process in by_name.values():
            attempt(functools.partial(self._terminate, process))
        self._processes.clear()
        attempt(self._kill_leftover_pods)
        if self._workdir is not None:
            attempt(lambda: _unmount_under(self.workdir))
        attempt(self._delete_new_netns)
        attempt(_remove_kube_chains)
        attempt(self.control_plane.stop)
        attempt(self.network.teardown)
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
        if errors:
            raise NodeError("tearing the node down failed: " + "; ".join(errors))

    # -- containerd -----------------------------------------------------------------------

    @property
    def containerd_socket(self) -> pathlib.Path:
        return self.workdir / "containerd" / "containerd.sock"

    def _start_containerd(self, deadline: float) -> None:
        root = self.workdir / "containerd"
        cni_conf = self.workdir / "cni" / "net.d"
        cni_conf.mkdir(parents=True)
        (cni_conf / "10-pweza.conflist").write_text(json.dumps(self._cni_config(), indent=2))
        config = root / "config.toml"
        root.mkdir(exist_ok=True)
        config.write_text(
            f"""version = 2
root = "{root / "root"}"
state = "{root / "state"}"
oom_score = 0

[grpc]
  address = "{self.containerd_socket}"

[ttrpc]
  address = "{root / "containerd.sock.ttrpc"}"

[debug]
  level = "warn"

[metrics]
  address = ""

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{SANDBOX_IMAGE}"
  # Root here lacks CAP_SYS_RESOURCE, so runc cannot lower a process's OOM score: without this
  # every pod sandbox fails with "can't get final child's PID from pipe".
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{cni_conf}"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = ""
"""
        )
        self._spawn("containerd", "containerd", "--config", str(config))
        self._wait("containerd to serve its socket", deadline, self._containerd_up, "containerd")
        archives = image_archives()
        assert archives is not None
        import_images("ctr", self.containerd_socket, archives)

    def _cni_config(self) -> dict[str, object]:
        return {
            "cniVersion": "1.0.0",
            "name": "pweza-pods",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": BRIDGE,
                    "isGateway": True,
                    # No masquerade: pod traffic has nowhere to go but the bridge.
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": POD_SUBNET, "gateway": GATEWAY_IP}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(self.workdir / "cni" / "ipam"),
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        }

    def _ctr(self, *args: str, check: bool = True, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        return _run("ctr", "--address", str(self.containerd_socket), *args, check=check, timeout=timeout)

    def _containerd_up(self) -> bool:
        return self.containerd_socket.exists() and self._ctr("version", check=False, timeout=10).returncode == 0

    def _kill_containers(self) -> None:
        if not self.containerd_socket.exists() or not self._containerd_up():
            return
        tasks = self._ctr("-n", "k8s.io", "tasks", "ls", "-q", check=False).stdout.split()
        for task in tasks:
            self._ctr("-n", "k8s.io", "tasks", "kill", "-s", "SIGKILL", task, check=False)
        end = time.monotonic() + 20
        for task in tasks:
            while time.monotonic() < end:
                if self._ctr("-n", "k8s.io", "tasks", "delete", task, check=False).returncode == 0:
                    break
                if task not in self._ctr("-n", "k8s.io", "tasks", "ls", "-q", check=False).stdout.split():
                    break
                time.sleep(0.2)
        for container in self._ctr("-n", "k8s.io", "containers", "ls", "-q", check=False).stdout.split():
            self._ctr("-n", "k8s.io", "containers", "delete", container, check=False)

    def _kill_leftover_pods(self) -> None:
        """SIGKILL whatever still runs in the kubelet's pod cgroups (shims gone, containers not)."""
        end = time.monotonic() + 20
        while time.monotonic() < end:
            pids = _pids_in_cgroups("kubepods")
            shims = _shims_of(str(self.containerd_socket)) if self._workdir is not None else []
            if not pids and not shims:
                break
            for pid in {*pids, *shims}:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)
        _remove_cgroups("kubepods")

    def _delete_new_netns(self) -> None:
        for name in set(_netns_names()) - self._netns_before:
            if name.startswith("cni-"):
                _run("ip", "netns", "delete", name, check=False)

    # -- kubelet --------------------------------------------------------------------------

    def _start_kubelet(self, deadline: float) -> None:
        pki = self.control_plane.pki
        kubelet_dir = self.workdir / "kubelet"
        kubelet_dir.mkdir()
        client_cert, client_key = pki.issue("kubelet-client", f"system:node:{NODE_NAME}", organization="system:nodes")
        serving_cert, serving_key = pki.issue(
            "kubelet-serving", f"system:node:{NODE_NAME}", server_names=(NODE_NAME,), server_ips=(GATEWAY_IP,)
        )
        kubeconfig = self.control_plane.write_kubeconfig("kubelet", pki.ca_cert, client_cert, client_key)
        # Pods with dnsPolicy Default read this instead of the machine's resolver.
        resolv = self.workdir / "resolv.conf"
        resolv.write_text(f"nameserver {CLUSTER_DNS_IP}\n")
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": GATEWAY_IP,
            "port": KUBELET_PORT,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": 10248,
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(pki.ca_cert)},
            },
            "authorization": {"mode": "Webhook"},
            "tlsCertFile": str(serving_cert),
            "tlsPrivateKeyFile": str(serving_key),
            "containerRuntimeEndpoint": f"unix://{self.containerd_socket}",
            "cgroupDriver": "cgroupfs",
            # Kubelet >= 1.35 refuses cgroup v1 hosts (this one is v1, hybrid) unless told.
            "failCgroupV1": False,
            "failSwapOn": False,
            "clusterDNS": [CLUSTER_DNS_IP],
            "clusterDomain": "cluster.local",
            "resolvConf": str(resolv),
            "maxPods": 110,
            "serializeImagePulls": False,
            # The images were imported, not pulled: nothing may garbage-collect them.
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
                "nodefs.inodesFree": "1%",
            },
            "registerNode": True,
            "rotateCertificates": False,
            "serverTLSBootstrap": False,
            "protectKernelDefaults": False,
            "makeIPTablesUtilChains": True,
            "localStorageCapacityIsolation": True,
            "shutdownGracePeriod": "0s",
        }
        config_path = kubelet_dir / "config.json"
        config_path.write_text(json.dumps(config, indent=2))
        self._spawn(
            "kubelet",
            str(self.bin_dir / "kubelet"),
            f"--config={config_path}",
            f"--kubeconfig={kubeconfig}",
            f"--root-dir={kubelet_dir / 'root'}",
            f"--cert-dir={kubelet_dir / 'pki'}",
            f"--hostname-override={NODE_NAME}",
            f"--node-ip={GATEWAY_IP}",
            "--node-labels=pweza.ai/test-node=true",
            "--v=1",
        )
        self._wait("the node to be Ready", deadline, self._node_ready, "kubelet")
        # The node's share of the pod network, as a controller-manager allocating node CIDRs
        # would give it; the NetworkPolicy enforcer reads it (the CNI config names it already).
        patch = {"spec": {"podCIDR": POD_SUBNET, "podCIDRs": [POD_SUBNET]}}
        self.kubectl("patch", "node", NODE_NAME, "--type=merge", "-p", json.dumps(patch))

    def _node_ready(self) -> bool:
        result = self.kubectl("get", "node", NODE_NAME, "-o", "json", check=False, timeout=10)
        if result.returncode != 0:
            return False
        node = json.loads(result.stdout)
        conditions = node.get("status", {}).get("conditions", [])
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
        tainted = any(
            t.get("key", "").startswith("node.kubernetes.io/") for t in node.get("spec", {}).get("taints", []) or []
        )
        return ready and not tainted

    # -- kube-proxy -----------------------------------------------------------------------

    def _start_kube_proxy(self, deadline: float) -> None:
        pki = self.control_plane.pki
        cert, key = pki.issue("kube-proxy-client", "system:kube-proxy")
        kubeconfig = self.control_plane.write_kubeconfig("kube-proxy", pki.ca_cert, cert, key)
        config = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": str(kubeconfig)},
            "mode": "iptables",
            "clusterCIDR": POD_SUBNET,
            "hostnameOverride": NODE_NAME,
            "bindAddress": GATEWAY_IP,
            "healthzBindAddress": "127.0.0.1:10256",
            "metricsBindAddress": "127.0.0.1:10249",
            # NodePorts only on the bridge, never on an uplink or loopback.
            "nodePortAddresses": [f"{GATEWAY_IP}/32"],
            # Leave the machine's conntrack table size alone.
            "conntrack": {"maxPerCore": 0, "min": 0},
        }
        path = self.workdir / "kube-proxy.json"
        path.write_text(json.dumps(config, indent=2))
        self._kube_proxy_config = path
        self._spawn("kube-proxy", str(self.bin_dir / "kube-proxy"), f"--config={path}", "--v=1")
        self._wait("kube-proxy /healthz", deadline, _http_ok("127.0.0.1", 10256, "/healthz"), "kube-proxy")

    def _start_policy_enforcer(self) -> None:
        """kube-router, firewall only, enforces NetworkPolicies for the node's pods."""
        self._kube_router = KubeRouterFirewall(
            self.bin_dir,
            self.kubeconfig,
            NODE_NAME,
            self.workdir / "kube-router",
            service_cidr=SERVICE_CLUSTER_IP_RANGE,
        )
        self._kube_router.start()

    def _kube_proxy_cleanup(self) -> None:
        # Removes the chains and rules kube-proxy made; the kubelet's own (KUBE-FIREWALL, the
        # canaries) go in the sweep after the kubelet has stopped.
        _run(str(self.bin_dir / "kube-proxy"), "--cleanup", check=False, timeout=60)

    # -- cluster objects ------------------------------------------------------------------

    def _register_cluster_objects(self) -> None:
        volumes = self.workdir / "volumes"
        volumes.mkdir()
        self.kubectl("apply", "-f", "-", stdin=json.dumps(self._storage_objects(volumes)))

    def _addon_image(self, binary: str) -> str:
        """Import ``binary`` from the kit as a one-file image; its tag is the kit's pinned version."""
        stamp = (self.bin_dir.parent / "stamps" / binary).read_text().split()
        name = f"ghcr.io/pweza/{binary}:{stamp[1] if len(stamp) > 1 else 'kit'}"
        archive = write_binary_image(self.bin_dir / binary, name, self.bin_dir.parent / "images" / f"{binary}.tar")
        import_images("ctr", self.containerd_socket, {name: archive})
        return name

    def _start_addons(self, deadline: float) -> None:
        """CoreDNS and metrics-server as pods in kube-system, as a cluster runs them, so that
        NetworkPolicies see DNS and metrics traffic exactly as they would there."""
        pki = self.control_plane.pki
        cert, key = pki.issue(
            "metrics-server",
            "metrics-server",
            server_names=("metrics-server.kube-system.svc", "metrics-server.kube-system.svc.cluster.local"),
        )
        objects = addon_objects(
            coredns_image=self._addon_image("coredns"),
            metrics_image=self._addon_image("metrics-server"),
            metrics_cert=cert.read_text(),
            metrics_key=key.read_text(),
            ca_bundle=pki.ca_cert.read_text(),
        )
        self.kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))
        self._wait("CoreDNS and metrics-server to be Available", deadline, self._addons_available, "kubelet")

    def _addons_available(self) -> bool:
        for deployment in ("coredns", "metrics-server"):
            found = self.kubectl("get", "deployment", deployment, "-n", "kube-system", "-o", "json", check=False)
            if found.returncode != 0 or not json.loads(found.stdout).get("status", {}).get("availableReplicas"):
                return False
        service = self.kubectl("get", "apiservice", "v1beta1.metrics.k8s.io", "-o", "json", check=False)
        if service.returncode != 0:
            return False
        conditions = json.loads(service.stdout).get("status", {}).get("conditions", [])
        return any(c["type"] == "Available" and c["status"] == "True" for c in conditions)

    def _storage_objects(self, volumes: pathlib.Path, count: int = 6) -> dict[str, object]:
        """A no-provisioner StorageClass (the default) with volumes made here ahead of time."""
        items: list[dict[str, object]] = [
            {
                "apiVersion": "storage.k8s.io/v1",
                "kind": "StorageClass",
                "metadata": {
                    "name": STORAGE_CLASS,
                    "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
                },
                "provisioner": "kubernetes.io/no-provisioner",
                "volumeBindingMode": "WaitForFirstConsumer",
                "reclaimPolicy": "Retain",
            }
        ]
        for i in range(count):
            path = volumes / f"pv{i}"
            path.mkdir()
            # Whatever uid the pod runs as (fsGroup does not apply to local volumes).
            path.chmod(0o777)
            items.append(
                {
                    "apiVersion": "v1",
                    "kind": "PersistentVolume",
                    "metadata": {"name": f"{STORAGE_CLASS}-{i}"},
                    "spec": {
                        "capacity": {"storage": "20Gi"},
                        "accessModes": ["ReadWriteOnce"],
                        "persistentVolumeReclaimPolicy": "Retain",
                        "storageClassName": STORAGE_CLASS,
                        "local": {"path": str(path)},
                        "nodeAffinity": {
                            "required": {
                                "nodeSelectorTerms": [
                                    {
                                        "matchExpressions": [
                                            {"key": "kubernetes.io/hostname", "operator": "In", "values": [NODE_NAME]}
                                        ]
                                    }
                                ]
                            }
                        },
                    },
                }
            )
        return {"apiVersion": "v1", "kind": "List", "items": items}

    # -- processes ------------------------------------------------------------------------

    def _spawn(self, name: str, *cmd: str) -> None:
        log = self.log(name)
        with log.open("wb") as out:
            process = subprocess.Popen(
                # Gone with the test process even if it is killed before its teardown runs.
                dies_with_parent(cmd, signal.SIGKILL),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=True,
            )
        self._processes.append(_Process(name, process, log))

    def _terminate(self, proc: _Process) -> None:
        if proc.process.poll() is None:
            proc.process.send_signal(signal.SIGTERM)
        try:
            proc.process.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            proc.process.kill()
            proc.process.wait(timeout=10)

    def _wait(self, what: str, deadline: float, ready: Callable[[], bool], suspect: str) -> None:
        while True:
            for p in self._processes:
                code = p.process.poll()
                if code is not None:
                    raise NodeError(f"{p.name} exited with code {code}\n--- {p.name} log ---\n{log_tail(p.log)}")
            if ready():
                return
            if time.monotonic() >= deadline:
                raise NodeError(
                    f"timed out after {self.startup_timeout:.0f}s waiting for {what}\n"
                    f"--- {suspect} log ---\n{log_tail(self.log(suspect))}"
                )
            time.sleep(0.5)


def _http_ok(host: str, port: int, path: str) -> Callable[[], bool]:
    import http.client

    def check() -> bool:
        conn = http.client.HTTPConnection(host, port, timeout=2)
        try:
            conn.request("GET", path)
            return conn.getresponse().status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()

    return check


def clean_stale_nodes(keep: pathlib.Path | None = None) -> None:
    """Undo what a test node killed before its teardown left: its processes (containerd's shims
    outlive containerd), their containers, mounts, network namespaces, chains and bridge."""
    marker = f"{tempfile.gettempdir()}/{_WORKDIR_PREFIX}"
    stale = [d for d in pathlib.Path(tempfile.gettempdir()).glob(f"{_WORKDIR_PREFIX}*") if d != keep]
    if not stale and not pathlib.Path(f"/sys/class/net/{BRIDGE}").exists():
        return
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            if marker in cmdline and (keep is None or str(keep) not in cmdline):
                os.kill(int(entry.name), signal.SIGKILL)
    end = time.monotonic() + 20
    while (pids := _pids_in_cgroups("kubepods")) and time.monotonic() < end:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
    _remove_cgroups("kubepods")
    for directory in stale:
        _unmount_under(directory)
        shutil.rmtree(directory, ignore_errors=True)
    for name in _netns_names():
        if name.startswith("cni-"):
            _run("ip", "netns", "delete", name, check=False)
    _remove_kube_chains()
    PodNetwork().teardown()


def _remove_kube_chains() -> None:
    """Delete every KUBE-* chain (and the built-in chains' jumps to them) the node's components
    left in the machine's iptables: no other Kubernetes runs here while a test node does."""
    for tool in ("iptables", "ip6tables"):
        if shutil.which(tool) is None:
            continue
        for table in ("filter", "nat", "mangle", "raw"):
            saved = _run(f"{tool}-save", "-t", table, check=False).stdout.splitlines()
            for line in saved:
                parts = shlex.split(line)
                if (
                    len(parts) > 2
                    and parts[0] == "-A"
                    and not parts[1].startswith("KUBE-")
                    and any(p.startswith("KUBE-") for p in parts[2:])
                ):
                    _run(tool, "-t", table, "-D", *parts[1:], check=False)
            chains = [line[1:].split()[0] for line in saved if line.startswith(":KUBE-")]
            for chain in chains:
                _run(tool, "-t", table, "-F", chain, check=False)
            for chain in chains:
                _run(tool, "-t", table, "-X", chain, check=False)
    # kube-router's ipsets, once no rule refers to them.
    if shutil.which("ipset") is not None:
        remove_kube_router_firewall_state()


def _netns_names() -> list[str]:
    directory = pathlib.Path("/var/run/netns")
    return [p.name for p in directory.iterdir()] if directory.is_dir() else []


def _cgroup_dirs(name: str) -> Iterator[pathlib.Path]:
    root = pathlib.Path("/sys/fs/cgroup")
    for top in [root / name, *(c / name for c in root.iterdir() if c.is_dir())]:
        if top.is_dir():
            yield top


def _pids_in_cgroups(name: str) -> set[int]:
    pids: set[int] = set()
    for top in _cgroup_dirs(name):
        for procs in top.rglob("cgroup.procs"):
            with contextlib.suppress(OSError, ValueError):
                pids.update(int(line) for line in procs.read_text().split())
    return pids


def _remove_cgroups(name: str) -> None:
    for top in _cgroup_dirs(name):
        # Leaves first: a cgroup directory can only be removed once it has no children.
        for directory in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                directory.rmdir()
        with contextlib.suppress(OSError):
            top.rmdir()


def _shims_of(address: str) -> list[int]:
    pids = []
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            if cmdline and cmdline[0].endswith(b"containerd-shim-runc-v2") and address.encode() in cmdline:
                pids.append(int(entry.name))
    return pids


def _unmount_under(directory: pathlib.Path) -> None:
    prefix = str(directory.resolve())
    mounts: Sequence[str] = []
    with contextlib.suppress(OSError):
        mounts = [
            line.split()[4].encode().decode("unicode_escape")
            for line in pathlib.Path("/proc/self/mountinfo").read_text().splitlines()
        ]
    for mount in sorted({m for m in mounts if m == prefix or m.startswith(prefix + "/")}, key=len, reverse=True):
        _run("umount", "-l", mount, check=False)
