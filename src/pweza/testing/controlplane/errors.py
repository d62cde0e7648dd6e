"""The control plane's errors."""

from __future__ import annotations

import subprocess

__all__ = ["ControlPlaneError", "KubectlError"]


class ControlPlaneError(RuntimeError):
    """The control plane could not be started or did not become ready in time."""


class KubectlError(subprocess.CalledProcessError):
    """A ``kubectl`` call exited non-zero; ``str()`` includes its stderr."""

    def __str__(self) -> str:
        stderr = self.stderr if isinstance(self.stderr, str) else ""
        return f"{super().__str__()}\n{stderr.strip()}"
