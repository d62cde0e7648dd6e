"""The pieces `Platform` and `Cluster` are built from: loopback ports, manager subprocesses,
test tokens, and stopping a set of processes within a bounded time."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import httpx

from pweza.domain.roles import Role
from pweza.manager.auth import TokenService
from pweza.store.protocol import Store

__all__ = [
    "ManagerProcess",
    "PortTaken",
    "agent_command",
    "bootstrap_tokens",
    "free_port",
    "manager_env",
    "stop_processes",
]

_handed_out: set[int] = set()
# How long `stop_processes` gives SIGTERM before SIGKILL, and SIGKILL before giving up.
_TERM_GRACE = 10.0
_KILL_GRACE = 5.0


def free_port() -> int:
    """A loopback port nobody listens on now, never the same twice from this process."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port


async def bootstrap_tokens(store: Store) -> tuple[str, str]:
    """An admin and an agent token written straight into a new store (as `pweza token create
    --database-url` does), without paying for two CLI start-ups per test. The agent token serves
    any pool (`--any-pool`): tests start agents of many pools with it."""
    await store.open()
    try:
        tokens = TokenService(store)
        _, admin = await tokens.create("test-admin", Role.ADMIN)
        _, agent = await tokens.create("test-agents", Role.AGENT, any_pool=True)
    finally:
        await store.close()
    return admin, agent


def manager_env(
    workdir: Path, database_url: str, *, lease_seconds: float, env: dict[str, str] | None = None
) -> dict[str, str]:
    """The environment of a test manager (ports aside): short leases, quick reaping, no stray config."""
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "PWEZA_LEASE_SECONDS": str(lease_seconds),
        "PWEZA_HEARTBEAT_SECONDS": str(max(0.2, lease_seconds / 4)),
        "PWEZA_REAPER_INTERVAL_SECONDS": "0.1",
        "PWEZA_CONFIG": str(workdir / "config.yaml"),
        "LOG_LEVEL": "INFO",
        **(env or {}),
    }


def stop_processes(processes: Iterable[subprocess.Popen[bytes] | None], grace: float = _TERM_GRACE) -> None:
    """SIGTERM them all at once, SIGKILL whatever still runs after `grace`: bounded however many there are."""
    alive = [process for process in processes if process is not None and process.poll() is None]
    for process in alive:
        process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for process in alive:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(_KILL_GRACE)


class PortTaken(Exception):
    """The manager could not bind a port we probed as free: someone took it in between."""


class ManagerProcess:
    """One `pweza manager` subprocess with ports of its own, started, killed and started again in place."""

    def __init__(self, env: dict[str, str], log_path: Path, command: list[str] | None = None) -> None:
        self.env = dict(env)
        self.log_path = log_path
        # Another program that serves a manager the same way, e.g. one with a store a test slows down.
        self.command = command or [sys.executable, "-m", "pweza", "manager"]
        cert = self.env.get("TLS_CERT_FILE")
        self.tls_ca: Path | None = Path(cert) if cert else None  # the self-signed cert is its own CA
        self.process: subprocess.Popen[bytes] | None = None
        self._known = False  # once started, agents know the ports: they must not move
        self._take_ports()

    def _take_ports(self) -> None:
        self.http_port, self.grpc_port, self.metrics_port = free_port(), free_port(), free_port()
        ports = {"HTTP_PORT": self.http_port, "GRPC_PORT": self.grpc_port, "METRICS_PORT": self.metrics_port}
        self.env.update({name: str(port) for name, port in ports.items()})

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

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 30.0) -> None:
        """Start and wait for /health/ready, on new ports if another process took one before the first start."""
        for _ in range(3):
            try:
                self.launch()
                self.wait_ready(timeout)
                return
            except PortTaken:
                self.move_ports()
        self.launch()
        self.wait_ready(timeout)

    def move_ports(self) -> None:
        """Take new ports after losing a race for one: only before the first start, when nobody knows them yet."""
        if self._known:
            raise PortTaken(f"a port of the manager at {self.url} was taken while it was down")
        self._take_ports()

    def launch(self) -> None:
        """Start the process without waiting for it (`wait_ready` does)."""
        if self.running:
            raise RuntimeError(f"the manager at {self.url} is already running")  # a second one would be orphaned
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(self.command, env=self.env, stdout=log, stderr=log)

    def wait_ready(self, timeout: float) -> None:
        """Wait for /health/ready; PortTaken if the process lost a port race, RuntimeError if it died otherwise."""
        assert self.process is not None, "launch() first"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                if "address already in use" in self.log()[-500:]:
                    raise PortTaken()
                raise RuntimeError(f"manager exited: {self.log()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/health/ready", timeout=1.0, verify=self.verify).status_code == 200:
                    self._known = True
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"manager not ready in {timeout}s: {self.log()[-2000:]}")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash or a lost node."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def agent_command(pool: str, managers: str, agent_id: str | None, extra: list[str] | None) -> list[str]:
    """`pweza agent` for `pool`, dialing `managers` (one address or a comma-separated list)."""
    args = [sys.executable, "-m", "pweza", "agent", "--pool", pool, "--manager", managers]
    return args + (["--agent-id", agent_id] if agent_id else []) + (extra or [])
