"""Loopback health probes for etcd and the components that serve /healthz."""

from __future__ import annotations

import http.client
import json
import ssl
from typing import Any

__all__ = ["component_healthy", "etcd_healthy"]


def etcd_healthy(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
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


def component_healthy(port: int) -> bool:
    """kube-controller-manager's or kube-scheduler's /healthz on 127.0.0.1."""
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
