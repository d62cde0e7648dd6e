"""A manager and its agents as real subprocesses on loopback, for tests and benchmarks."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

from pweza.domain.roles import Role
from pweza.manager.auth import TokenService
from pweza.store.sqlite import SqliteStore

_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port nobody listens on now, never the same twice from this process."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port


async def _bootstrap_tokens(database: Path) -> tuple[str, str]:
    """An admin and an agent token written straight into a new store (as `pweza token create
    --database-url` does), without paying for two CLI start-ups per test."""
    store = SqliteStore(database)
    await store.open()
    try:
        tokens = TokenService(store)
        _, admin = await tokens.create("test-admin", Role.ADMIN)
        _, agent = await tokens.create("test-agents", Role.AGENT)
    finally:
        await store.close()
    return admin, agent


class PortTaken(Exception):
    pass


class Platform:
    """Owns a data directory, a manager process and any number of agent processes."""

    def __init__(self, workdir: Path, *, lease_seconds: float = 2.0, env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.http_port, self.grpc_port, self.metrics_port = free_port(), free_port(), free_port()
        self.database_url = f"sqlite:///{workdir / 'pweza.db'}"
        self.env = {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "HTTP_PORT": str(self.http_port),
            "GRPC_PORT": str(self.grpc_port),
            "METRICS_PORT": str(self.metrics_port),
            "PWEZA_LEASE_SECONDS": str(lease_seconds),
            "PWEZA_HEARTBEAT_SECONDS": str(max(0.2, lease_seconds / 4)),
            "PWEZA_REAPER_INTERVAL_SECONDS": "0.1",
            "PWEZA_CONFIG": str(workdir / "config.yaml"),
            "LOG_LEVEL": "INFO",
            **(env or {}),
        }
        cert = self.env.get("TLS_CERT_FILE")
        self.tls_ca: Path | None = Path(cert) if cert else None  # the self-signed cert is its own CA
        self.admin_token, self.agent_token = asyncio.run(_bootstrap_tokens(workdir / "pweza.db"))
        self.manager: subprocess.Popen[bytes] | None = None
        self.agents: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        scheme = "https" if self.tls_ca else "http"
        return f"{scheme}://127.0.0.1:{self.http_port}"

    @property
    def verify(self) -> ssl.SSLContext | bool:
        return ssl.create_default_context(cafile=str(self.tls_ca)) if self.tls_ca else True

    @property
    def grpc_address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def client(self, token: str | None = None, timeout: float = 30.0) -> httpx.Client:
        return httpx.Client(
            verify=self.verify,
            base_url=self.url,
            timeout=timeout,
            headers={"Authorization": f"Bearer {token or self.admin_token}"},
        )

    def start_manager(self, timeout: float = 30.0) -> None:
        for _ in range(3):
            try:
                self._start_manager(timeout)
                return
            except PortTaken:
                # Another process took a port between our probe and the bind: take new ones.
                self.http_port, self.grpc_port, self.metrics_port = free_port(), free_port(), free_port()
                self.env.update(
                    HTTP_PORT=str(self.http_port),
                    GRPC_PORT=str(self.grpc_port),
                    METRICS_PORT=str(self.metrics_port),
                )
        self._start_manager(timeout)

    def _start_manager(self, timeout: float) -> None:
        log = (self.workdir / "manager.log").open("ab")
        self.manager = subprocess.Popen(
            [sys.executable, "-m", "pweza", "manager"], env=self.env, stdout=log, stderr=log
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.manager.poll() is not None:
                if "address already in use" in self.manager_log()[-500:]:
                    raise PortTaken()
                raise RuntimeError(f"manager exited: {self.manager_log()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/health/ready", timeout=1.0, verify=self.verify).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"manager not ready in {timeout}s: {self.manager_log()[-2000:]}")

    def kill_manager(self) -> None:
        if self.manager is not None and self.manager.poll() is None:
            self.manager.send_signal(signal.SIGKILL)
            self.manager.wait(10)

    def manager_log(self) -> str:
        path = self.workdir / "manager.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def apply(self, *documents: dict[str, Any]) -> None:
        with self.client() as client:
            for document in documents:
                plural = document["kind"].lower() + "s"
                name = document["metadata"]["name"]
                response = client.put(f"/api/v1/{plural}/{name}", json=document)
                response.raise_for_status()

    def apply_yaml(self, text: str) -> None:
        self.apply(*[doc for doc in yaml.safe_load_all(text) if doc])

    def start_agent(
        self, pool: str, *, agent_id: str | None = None, extra: list[str] | None = None
    ) -> subprocess.Popen[bytes]:
        index = len(self.agents)
        log = (self.workdir / f"agent-{pool}-{index}.log").open("ab")
        args = [sys.executable, "-m", "pweza", "agent", "--pool", pool, "--manager", self.grpc_address]
        if agent_id:
            args += ["--agent-id", agent_id]
        process = subprocess.Popen(
            args + (extra or []), env={**self.env, "PWEZA_TOKEN": self.agent_token}, stdout=log, stderr=log
        )
        self.agents.append(process)
        return process

    def wait_for_agents(self, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        with self.client() as client:
            while time.monotonic() < deadline:
                items: list[dict[str, Any]] = client.get("/api/v1/agents").json()["items"]
                if len(items) >= count:
                    return items
                time.sleep(0.05)
        raise TimeoutError(f"fewer than {count} agents connected within {timeout}s")

    def wait_task(self, task_id: str, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self.client() as client:
            while time.monotonic() < deadline:
                remaining = max(0.1, min(10.0, deadline - time.monotonic()))
                try:
                    task: dict[str, Any] = client.get(
                        f"/api/v1/tasks/{task_id}/wait", params={"timeout": remaining}
                    ).json()
                except httpx.HTTPError:
                    time.sleep(0.2)  # the manager may be restarting
                    continue
                if task["state"] in ("succeeded", "failed", "cancelled", "timed_out"):
                    return task
        raise TimeoutError(f"task {task_id} did not finish within {timeout}s")

    def stop(self) -> None:
        for process in [*self.agents, self.manager]:
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in [*self.agents, self.manager]:
            if process is None:
                continue
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


@contextmanager
def running_platform(**kwargs: Any) -> Iterator[Platform]:
    with tempfile.TemporaryDirectory(prefix="pweza-test-") as tmp:
        platform = Platform(Path(tmp), **kwargs)
        try:
            platform.start_manager()
            yield platform
        finally:
            platform.stop()
