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

Inside: ``binaries`` finds the kit, ``pki`` makes the certificates, ``components`` holds each
component's command line, ``kwok`` describes the fake nodes, ``probes`` asks the components
whether they are healthy, and ``plane`` starts them in order and waits for each.
"""

from pweza.testing.controlplane.binaries import BUILD_COMMAND, K8S_VERSION, REQUIRED_BINARIES, k8s_bin_dir
from pweza.testing.controlplane.errors import ControlPlaneError, KubectlError
from pweza.testing.controlplane.plane import ControlPlane

__all__ = [
    "BUILD_COMMAND",
    "K8S_VERSION",
    "REQUIRED_BINARIES",
    "ControlPlane",
    "ControlPlaneError",
    "KubectlError",
    "k8s_bin_dir",
]
