"""What the peers need running on loopback: Redis for Celery, a Prefect server for Prefect, a
PostgreSQL server for DBOS on PostgreSQL, and the Temporal server's binary (each Temporal turn
starts its own server from it)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from peers import common

from comparing.console import log
from comparing.paths import ROOT
from pweza.testing.postgres import PostgresServer


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ensure_redis() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    log("redis-server missing: apt-get install -y redis-server")
    attempt = subprocess.run(["apt-get", "install", "-y", "redis-server"], capture_output=True, text=True)
    if attempt.returncode != 0:
        subprocess.run(["apt-get", "update"], capture_output=True, text=True)
        attempt = subprocess.run(["apt-get", "install", "-y", "redis-server"], capture_output=True, text=True)
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError(f"cannot install redis-server: {attempt.stderr.strip()[-1000:]}")
    return found


@dataclass
class Service:
    name: str
    process: subprocess.Popen[bytes]
    url: str

    def stop(self) -> None:
        if self.process.poll() is None:
            common.kill_group(self.process, signal.SIGTERM)

    def cpu_seconds(self) -> float:
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_redis(scratch: Path) -> Service:
    binary = ensure_redis()
    port = free_port()
    data = scratch / "redis"
    data.mkdir()
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    command += ["--dir", str(data), "--protected-mode", "yes"]
    output = (scratch / "redis.log").open("ab")
    process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return Service("redis", process, f"redis://127.0.0.1:{port}/0")
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"redis-server did not answer on port {port}: {(scratch / 'redis.log').read_text()[-1000:]}")


def prefect_env(scratch: Path) -> dict[str, str]:
    return {
        "PREFECT_HOME": str(scratch / "prefect-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }


def start_prefect(python: Path, scratch: Path) -> Service:
    scratch.mkdir(parents=True, exist_ok=True)
    port = free_port()
    prefect = python.parent / "prefect"
    env = {**os.environ, **prefect_env(scratch)}
    env.pop("PREFECT_API_URL", None)
    output = (scratch / "prefect-server.log").open("ab")
    process = subprocess.Popen(
        [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return Service("prefect-server", process, url)
        except OSError:
            time.sleep(0.5)
    common.kill_group(process)
    raise RuntimeError(f"prefect server did not start: {(scratch / 'prefect-server.log').read_text()[-1500:]}")


def wait_quiet(services: list[Service], limit: float = 60.0) -> float:
    """Wait until background services stop working off the last system's load (bounded)."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        before = sum(s.cpu_seconds() for s in services)
        time.sleep(1.0)
        if sum(s.cpu_seconds() for s in services) - before < 0.15:
            break
    return time.monotonic() - started


def start_postgres() -> PostgresServer:
    """Debian's PostgreSQL on a free loopback port, flushing as a real database does (the test
    servers of pweza.testing run with fsync off); every turn gets a fresh database on it."""
    server = PostgresServer(settings={"fsync": "on", "full_page_writes": "on", "synchronous_commit": "on"})
    server.__enter__()
    return server


def temporal_server() -> str:
    """The Temporal server binary, built by hack/build-temporal.sh when it is not cached yet."""
    log("Temporal server: hack/build-temporal.sh (cached in ~/.cache/pweza; a cold build takes tens of minutes)")
    script = ROOT / "hack" / "build-temporal.sh"
    try:
        done = subprocess.run([str(script)], capture_output=True, text=True, timeout=3 * 3600)
    except subprocess.TimeoutExpired as error:
        raise RuntimeError(f"{script.name} did not finish within 3 h") from error
    if done.returncode != 0:
        raise RuntimeError(f"{script.name} failed ({done.returncode}): {done.stderr.strip()[-1500:]}")
    return done.stdout.strip().splitlines()[-1]
