"""The chart's admission webhook: configuration, Service port, certificate and mounts, as rendered.

The certificate Helm makes is checked the way the API server uses it: the operator's webhook
server serves the rendered tls.crt/tls.key, and a TLS client trusting only the rendered caBundle
connects to it under the Service's DNS name and gets an admission review answered.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver

from pweza.operator import admission
from pweza.operator.admission import AdmissionServer, WebhookOptions
from pweza.testing.platform import free_port
from tests.chart.conftest import (
    CHART,
    KUBE_VERSION,
    RELEASE,
    SYSTEM_NAMESPACE,
    Cluster,
    Rendered,
    _documents,
    render,
    render_error,
)

pytestmark = [pytest.mark.chart, pytest.mark.timeout(600)]
NAME = "pweza-core-operator"
SECRET = "pweza-core-operator-webhook-tls"
MOUNT = "/etc/pweza-operator-webhook"
SERVICE_HOST = f"{NAME}.{SYSTEM_NAMESPACE}.svc"  # the name the API server checks the certificate for


def operator_pod(rendered: Any) -> dict[str, Any]:
    pod: dict[str, Any] = rendered.one("Deployment", NAME)["spec"]["template"]["spec"]
    return pod


def webhook_of(rendered: Any) -> dict[str, Any]:
    (webhook,) = rendered.one("ValidatingWebhookConfiguration", NAME)["webhooks"]
    return dict(webhook)


def flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_the_webhook_configuration_the_service_port_and_the_mounts_render() -> None:
    rendered = render("values-production.yaml")
    webhook = webhook_of(rendered)
    assert webhook["name"] == "validate.pweza.ai"
    assert webhook["clientConfig"]["service"] == {
        "name": NAME,
        "namespace": SYSTEM_NAMESPACE,
        "path": "/validate",
        "port": 443,
    }
    assert (webhook["failurePolicy"], webhook["sideEffects"], webhook["admissionReviewVersions"]) == (
        "Fail",
        "None",
        ["v1"],
    )
    assert webhook["rules"] == [
        {
            "apiGroups": ["pweza.ai"],
            "apiVersions": ["v1"],
            "operations": ["CREATE", "UPDATE"],
            "resources": ["agenttemplates", "agentpools", "workflows", "toolservers", "modelconfigs"],
            "scope": "Namespaced",
        }
    ]
    service = rendered.one("Service", NAME)
    ports = {port["name"]: port for port in service["spec"]["ports"]}
    assert ports["webhook"]["port"] == 443 and ports["webhook"]["targetPort"] == "webhook"

    pod = operator_pod(rendered)
    container = pod["containers"][0]
    assert {"name": "webhook", "containerPort": 8443, "protocol": "TCP"} in container["ports"]
    args = container["args"]
    assert flag(args, "--webhook-port") == "8443"
    assert flag(args, "--webhook-cert-file") == f"{MOUNT}/tls.crt"
    assert flag(args, "--webhook-key-file") == f"{MOUNT}/tls.key"
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == MOUNT)
    assert mount["readOnly"] is True and "subPath" not in mount, "renewed files must reach the pod"
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["secret"]["secretName"] == SECRET
    assert volume["secret"]["defaultMode"] == 0o440
    assert {item["key"] for item in volume["secret"]["items"]} == {"tls.crt", "tls.key"}, "not the CA"

    # The API server reaches the webhook port through the operator's NetworkPolicy.
    policy = rendered.one("NetworkPolicy", NAME)
    opened = [port["port"] for rule in policy["spec"]["ingress"] if "from" not in rule for port in rule["ports"]]
    assert opened == [8443]


async def test_the_rendered_ca_bundle_trusts_the_certificate_the_operator_serves(tmp_path: Path) -> None:
    rendered = render("values.yaml")
    secret = rendered.one("Secret", SECRET)
    assert secret["type"] == "kubernetes.io/tls"
    ca_bundle = webhook_of(rendered)["clientConfig"]["caBundle"]
    assert ca_bundle == secret["data"]["ca.crt"]
    for key in ("tls.crt", "tls.key"):
        (tmp_path / key).write_bytes(base64.b64decode(secret["data"][key]))
    port = free_port()
    server = AdmissionServer(
        WebhookOptions(
            certfile=str(tmp_path / "tls.crt"), keyfile=str(tmp_path / "tls.key"), port=port, host="127.0.0.1"
        )
    )
    await server.start()
    try:
        # As the API server does: trust only the caBundle, check the Service's DNS name.
        trust = ssl.create_default_context(cadata=base64.b64decode(ca_bundle).decode())
        review = {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "u-1",
                "operation": "CREATE",
                "kind": {"group": "pweza.ai", "version": "v1", "kind": "Workflow"},
                "object": {
                    "apiVersion": "pweza.ai/v1",
                    "kind": "Workflow",
                    "metadata": {"name": "w", "namespace": "default"},
                    "spec": {"steps": [{"name": "a", "agent": {"pool": "p"}, "depends": ["b"]}]},
                },
            },
        }
        connector = aiohttp.TCPConnector(ssl=trust, resolver=_Loopback(SERVICE_HOST))
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            session.post(f"https://{SERVICE_HOST}:{port}/validate", json=review) as answer,
        ):
            body = await answer.json()
        assert body["response"] == {
            "uid": "u-1",
            "allowed": False,
            "status": {"code": 422, "reason": "Invalid", "message": "spec.steps[0].depends: unknown step 'b'"},
        }
    finally:
        await server.stop()


class _Loopback(AbstractResolver):
    """Resolves the Service's DNS name to 127.0.0.1, so TLS checks the name and nothing leaves the host."""

    def __init__(self, host: str) -> None:
        self.host = host

    async def resolve(self, host: str, port: int = 0, family: int = 0) -> list[Any]:
        assert host == self.host, host
        return [{"hostname": host, "host": "127.0.0.1", "port": port, "family": socket.AF_INET, "proto": 0, "flags": 0}]

    async def close(self) -> None:
        return None


def test_cert_manager_issues_the_certificate_and_injects_the_ca() -> None:
    rendered = render(sets=("admissionWebhook.certManager.enabled=true",))
    certificate = rendered.one("Certificate", f"{NAME}-webhook")
    assert certificate["metadata"]["namespace"] == SYSTEM_NAMESPACE
    assert certificate["spec"]["secretName"] == SECRET
    assert SERVICE_HOST in certificate["spec"]["dnsNames"]
    assert certificate["spec"]["issuerRef"] == {"name": "pweza-core-ca", "kind": "ClusterIssuer"}  # tls.certManager's
    configuration = rendered.one("ValidatingWebhookConfiguration", NAME)
    assert configuration["metadata"]["annotations"] == {
        "cert-manager.io/inject-ca-from": f"{SYSTEM_NAMESPACE}/{NAME}-webhook"
    }
    assert "caBundle" not in webhook_of(rendered)["clientConfig"], "cainjector fills it"
    assert SECRET not in {secret["metadata"]["name"] for secret in rendered.of("Secret")}


def test_the_webhook_follows_the_chart_cert_manager_setting_unless_told_otherwise() -> None:
    chart_wide = ("tls.enabled=true", "tls.certManager.enabled=true")
    assert render(sets=chart_wide).of("Certificate") and webhook_certificate(render(sets=chart_wide))
    own = render(sets=(*chart_wide, "admissionWebhook.certManager.enabled=false"))
    assert not webhook_certificate(own) and "caBundle" in webhook_of(own)["clientConfig"]
    assert not webhook_certificate(render("values.yaml"))


def webhook_certificate(rendered: Any) -> bool:
    return any(doc["metadata"]["name"] == f"{NAME}-webhook" for doc in rendered.of("Certificate"))


def test_turned_off_nothing_of_the_webhook_renders() -> None:
    rendered = render(sets=("admissionWebhook.enabled=false",))
    assert not rendered.of("ValidatingWebhookConfiguration")
    assert SECRET not in {secret["metadata"]["name"] for secret in rendered.of("Secret")}
    pod = operator_pod(rendered)
    assert "--webhook-cert-file" not in pod["containers"][0]["args"]
    assert [volume["name"] for volume in pod["volumes"]] == ["tmp"]
    assert [port["name"] for port in rendered.one("Service", NAME)["spec"]["ports"]] == ["metrics"]


def test_the_schema_refuses_an_unknown_failure_policy() -> None:
    assert "failurePolicy" in render_error("admissionWebhook.failurePolicy=Sometimes")


def test_an_upgrade_keeps_the_certificate_helm_made(cluster: Cluster, tmp_path: Path) -> None:
    """`lookup` finds the Secret of the release and renders it, and its CA in the caBundle, again."""
    first = render("values.yaml").one("Secret", SECRET)
    cluster.cp.kubectl("create", "namespace", SYSTEM_NAMESPACE, check=False)
    stored = tmp_path / "secret.json"
    stored.write_text(json.dumps(first))
    cluster.cp.kubectl("apply", "-f", str(stored))
    try:
        # --dry-run=server: helm template reads the cluster (lookup) as install and upgrade do.
        result = cluster.helm(
            "template", RELEASE, str(CHART), "--kube-version", KUBE_VERSION, "--namespace", SYSTEM_NAMESPACE,
            "--dry-run=server",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        again = Rendered(result.stdout, _documents(result.stdout))
        assert again.one("Secret", SECRET)["data"] == first["data"]
        assert webhook_of(again)["clientConfig"]["caBundle"] == first["data"]["ca.crt"]
    finally:
        cluster.cp.kubectl("delete", "secret", SECRET, "-n", SYSTEM_NAMESPACE, "--ignore-not-found", check=False)


async def test_a_renewed_certificate_is_served_without_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As when cert-manager renews the Secret and the kubelet updates the mounted files."""
    monkeypatch.setattr(admission, "RELOAD_SECONDS", 0.1)
    old = render("values.yaml").one("Secret", SECRET)["data"]
    new = render(sets=("admissionWebhook.selfSigned.days=30",)).one("Secret", SECRET)["data"]  # another CA
    assert old["ca.crt"] != new["ca.crt"]

    def write(data: dict[str, str]) -> None:
        for key in ("tls.crt", "tls.key"):
            (tmp_path / f"{key}.tmp").write_bytes(base64.b64decode(data[key]))
            os.replace(tmp_path / f"{key}.tmp", tmp_path / key)

    async def handshake(data: dict[str, str]) -> bool:
        trust = ssl.create_default_context(cadata=base64.b64decode(data["ca.crt"]).decode())
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=trust, server_hostname=SERVICE_HOST)
        except ssl.SSLError:
            return False
        writer.close()
        await writer.wait_closed()
        return True

    write(old)
    port = free_port()
    server = AdmissionServer(
        WebhookOptions(
            certfile=str(tmp_path / "tls.crt"), keyfile=str(tmp_path / "tls.key"), port=port, host="127.0.0.1"
        )
    )
    await server.start()
    try:
        assert await handshake(old) and not await handshake(new)
        await asyncio.sleep(0.05)  # a later modification time than the files loaded
        write(new)
        for _ in range(100):
            if await handshake(new):
                break
            await asyncio.sleep(0.1)
        assert await handshake(new) and not await handshake(old)
    finally:
        await server.stop()
