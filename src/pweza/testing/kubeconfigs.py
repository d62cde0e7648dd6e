"""Kubeconfig files for the test kits' clients: a client certificate of the test CA, with the
files' contents inlined."""

from __future__ import annotations

import base64
import json
import pathlib

__all__ = ["write_kubeconfig"]


def write_kubeconfig(
    path: pathlib.Path, server: str, ca: pathlib.Path, cert: pathlib.Path, key: pathlib.Path, *, user: str = "user"
) -> pathlib.Path:
    """A kubeconfig for a client certificate, with the files' contents inlined (mode 0600)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "pweza-test", "cluster": {"server": server, "certificate-authority-data": _b64(ca)}}],
        "users": [{"name": user, "user": {"client-certificate-data": _b64(cert), "client-key-data": _b64(key)}}],
        "contexts": [{"name": "pweza-test", "context": {"cluster": "pweza-test", "user": user}}],
        "current-context": "pweza-test",
    }
    # JSON is valid YAML, which keeps this module free of a YAML dependency.
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)
    return path


def _b64(path: pathlib.Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()
