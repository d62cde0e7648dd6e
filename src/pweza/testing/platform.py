"""A manager and its agents as real subprocesses on loopback, for tests and benchmarks."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

from pweza.store.sqlite import SqliteStore
from pweza.testing.processes import (
    ManagerProcess,
    PortTaken,
    agent_command,
    bootstrap_tokens,
    free_port,
    manager_env,
    stop_processes,
)

__all__ = ["Platform", "PortTaken", "free_port", "running_platform"]


class Platform:
    """Owns a data directory, a manager process and any number of agent processes."""

    def __init__(
        self,
        workdir: Path,
        *,
        lease_seconds: float = 2.0,
        env: dict[str, str] | None = None,
        manager_command: list[str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.database_url = f"sqlite:///{workdir / 'pweza.db'}"
        self.env = manager_env(workdir, self.database_url, lease_seconds=lease_seconds, env=env)
        self._manager = ManagerProcess(self.env, workdir / "manager.log", manager_command)
        self.tls_ca = self._manager.tls_ca
        self.admin_token, self.agent_token = asyncio.run(bootstrap_tokens(SqliteStore(workdir / "pweza.db")))
        self.agents: list[subprocess.Popen[bytes]] = []

    @property
    def manager(self) -> subprocess.Popen[bytes] | None:
        return self._manager.process

    @property
    def http_port(self) -> int:
        return self._manager.http_port

    @property
    def grpc_port(self) -> int:
        return self._manager.grpc_port

    @property
    def metrics_port(self) -> int:
        return self._manager.metrics_port

    @property
    def url(self) -> str:
        return self._manager.url

    @property
    def verify(self) -> ssl.SSLContext | bool:
        return self._manager.verify

    @property
    def grpc_address(self) -> str:
        return self._manager.grpc_address

    def client(self, token: str | None = None, timeout: float = 30.0) -> httpx.Client:
        return httpx.Client(
            verify=self.verify,
            base_url=self.url,
            timeout=timeout,
            headers={"Authorization": f"Bearer {token or self.admin_token}"},
        )

    def start_manager(self, timeout: float = 30.0) -> None:
        self._manager.start(timeout)

    def kill_manager(self) -> None:
        self._manager.kill()

    def manager_log(self) -> str:
        return self._manager.log()

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
        with (self.workdir / f"agent-{pool}-{index}.log").open("ab") as log:
            process = subprocess.Popen(
                agent_command(pool, self.grpc_address, agent_id, extra),
                env={**self.env, "PWEZA_TOKEN": self.agent_token},
                stdout=log,
                stderr=log,
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
        stop_processes([*self.agents, self.manager])


@contextmanager
def running_platform(**kwargs: Any) -> Iterator[Platform]:
    with tempfile.TemporaryDirectory(prefix="pweza-test-") as tmp:
        platform = Platform(Path(tmp), **kwargs)
        try:
            platform.start_manager()
            yield platform
        finally:
            platform.stop()
