"""Where the test kit's binaries are: ``hack/build-k8s.sh`` builds them from source into a
cache named after the pinned Kubernetes version (``K8S_VERSION`` matches the script's pin)."""

from __future__ import annotations

import os
import pathlib
from typing import Final

__all__ = ["BUILD_COMMAND", "K8S_VERSION", "REQUIRED_BINARIES", "has_binaries", "k8s_bin_dir"]

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


def has_binaries(path: pathlib.Path) -> bool:
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
    return candidate.resolve() if has_binaries(candidate) else None
