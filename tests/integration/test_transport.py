"""TLS for HTTP and gRPC, gRPC reflection and health, and the config file."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import grpc
import httpx
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from pweza.testing.platform import Platform
from tests.conftest import pool, template

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def self_signed(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "tls.crt", directory / "tls.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def test_tls_protects_http_and_the_agent_channel(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    platform = Platform(tmp_path, env={"TLS_CERT_FILE": str(cert), "TLS_KEY_FILE": str(key)})
    try:
        platform.start_manager()
        url = f"https://127.0.0.1:{platform.http_port}"
        assert httpx.get(f"{url}/health/ready", verify=ssl.create_default_context(cafile=str(cert))).status_code == 200
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{platform.http_port}/health/ready", timeout=3)
        headers = {"Authorization": f"Bearer {platform.admin_token}"}
        with httpx.Client(base_url=url, verify=ssl.create_default_context(cafile=str(cert)), headers=headers) as client:
            client.put("/api/v1/agenttemplates/echoer", json=template()).raise_for_status()
            client.put("/api/v1/agentpools/echo", json=pool()).raise_for_status()
            platform.start_agent("echo", extra=["--tls-ca", str(cert)])
            task_id = client.post("/api/v1/tasks", json={"pool": "echo", "input": "over tls"}).json()["id"]
            task = client.get(f"/api/v1/tasks/{task_id}/wait", params={"timeout": 30}).json()
        assert task["state"] == "succeeded" and task["output"] == "over tls"
    finally:
        platform.stop()


def test_grpc_serves_health_and_reflection(platform: Platform) -> None:
    with grpc.insecure_channel(platform.grpc_address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        assert health.Check(health_pb2.HealthCheckRequest(service="pweza.v1.AgentChannel")).status == 1
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        answers = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        names = {service.name for answer in answers for service in answer.list_services_response.service}
    assert {"pweza.v1.AgentChannel", "grpc.health.v1.Health"} <= names


def test_health_and_openapi_are_served(platform: Platform) -> None:
    assert httpx.get(f"{platform.url}/health/live").json() == {"status": "ok"}
    spec = httpx.get(f"{platform.url}/openapi.json").json()
    assert "/api/v1/tasks" in spec["paths"] and "/api/v1/runs/{run_id}" in spec["paths"]


def test_metrics_can_be_turned_off(tmp_path: Path) -> None:
    platform = Platform(tmp_path, env={"METRICS_ENABLED": "false"})
    try:
        platform.start_manager()
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{platform.metrics_port}/metrics", timeout=2)
    finally:
        platform.stop()


def test_grpc_serves_reflection_v1(platform: Platform) -> None:
    # grpc.reflection.v1 is v1alpha renamed, message for message and field for field, so
    # v1alpha's classes write and read v1's bytes; only the method path differs.
    requests = [
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="pweza.v1.AgentChannel"),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="grpc.reflection.v1.ServerReflection"),
    ]
    with grpc.insecure_channel(platform.grpc_address) as channel:
        info = channel.stream_stream(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        listed, agent_channel, reflection_v1 = list(info(iter(requests), timeout=10))
    names = {service.name for service in listed.list_services_response.service}
    assert {"pweza.v1.AgentChannel", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"} <= names
    described = [
        descriptor_pb2.FileDescriptorProto.FromString(answer.file_descriptor_response.file_descriptor_proto[0])
        for answer in (agent_channel, reflection_v1)
    ]
    assert described[0].package == "pweza.v1" and "AgentChannel" in {s.name for s in described[0].service}
    assert described[1].package == "grpc.reflection.v1" and described[1].service[0].name == "ServerReflection"


def test_grpc_health_list_returns_the_served_services(platform: Platform) -> None:
    with grpc.insecure_channel(platform.grpc_address) as channel:
        answer = health_pb2_grpc.HealthStub(channel).List(health_pb2.HealthListRequest(), timeout=10)
    assert answer.statuses["pweza.v1.AgentChannel"].status == health_pb2.HealthCheckResponse.SERVING
    assert answer.statuses[""].status == health_pb2.HealthCheckResponse.SERVING
