"""`pweza up`: the whole platform on one machine.

The manager runs in this process on SQLite; every pool's `minReplicas` agents run as
real subprocesses speaking gRPC, restarted with backoff when they die.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import structlog
from rich.console import Console

from pweza.agent.main import PARENT_PID_ENV
from pweza.cli.context import Context, save_context
from pweza.cli.files import load_documents
from pweza.cli.fleet import report_fleet, wait_for_fleet
from pweza.cli.serving import Endpoints, serve
from pweza.domain.errors import PwezaError
from pweza.domain.kinds import parse_manifest
from pweza.domain.manifests import AgentPool
from pweza.domain.roles import Role
from pweza.manager.auth import Principal
from pweza.manager.children import dies_with_parent
from pweza.manager.config import Settings
from pweza.manager.service import Manager

log = structlog.get_logger(__name__)
SYSTEM = Principal("system", "pweza-up", Role.ADMIN)
_MAX_BACKOFF = 30.0
# How long `pweza up` waits for its agents before saying it is up anyway (with how many are).
_FLEET_WAIT = 90.0


@dataclass(slots=True)
class _Slot:
    process: asyncio.subprocess.Process | None = None
    failures: int = 0
    next_start: float = 0.0


@dataclass(slots=True)
class AgentSupervisor:
    grpc: str
    token_dir: Path
    log_dir: Path
    python_path: list[str]
    slots: dict[tuple[str, str, int], _Slot] = field(default_factory=dict)
    desired: dict[tuple[str, str], int] = field(default_factory=dict)
    # Each pool's agents get a token bound to that pool (made on first need, kept in token_dir).
    tokens: dict[tuple[str, str], str] = field(default_factory=dict)

    async def reconcile(self, manager: Manager) -> None:
        pools = await manager.registry.list("AgentPool", None, 10_000)
        self.desired = {
            (p.namespace, p.name): AgentPool.model_validate(p.body).spec.scaling.min_replicas for p in pools
        }
        for namespace, pool in self.desired:
            if (namespace, pool) not in self.tokens:
                self.tokens[(namespace, pool)] = await _ensure_token(
                    manager,
                    self.token_dir / f"{namespace}.{pool}",
                    f"embedded-agents-{namespace}-{pool}",
                    Role.AGENT,
                    pool=f"{namespace}/{pool}",
                )
        for key in list(self.slots):
            namespace, pool, index = key
            if index >= self.desired.get((namespace, pool), 0):
                await self._terminate(self.slots.pop(key))
        for (namespace, pool), replicas in self.desired.items():
            for index in range(replicas):
                self.slots.setdefault((namespace, pool, index), _Slot())
        await self.tend()

    async def tend(self) -> None:
        now = time.monotonic()
        for (namespace, pool, index), slot in self.slots.items():
            if slot.process is not None and slot.process.returncode is None:
                continue
            if slot.process is not None:
                slot.failures += 1
                delay = min(_MAX_BACKOFF, 0.5 * 2 ** min(slot.failures, 6))
                slot.next_start = now + delay
                log.warning("agent exited", pool=pool, index=index, code=slot.process.returncode, retry_in=delay)
                slot.process = None
            if now >= slot.next_start:
                slot.process = await self._spawn(namespace, pool, index)

    async def _spawn(self, namespace: str, pool: str, index: int) -> asyncio.subprocess.Process:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env["PWEZA_TOKEN"] = self.tokens[(namespace, pool)]
        env[PARENT_PID_ENV] = str(os.getpid())
        env["PYTHONPATH"] = os.pathsep.join([*self.python_path, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        log_file = (self.log_dir / f"{namespace}-{pool}-{index}.log").open("ab")
        process = await asyncio.create_subprocess_exec(
            # The agent's own entry (no CLI imports); a killed `pweza up` takes its agents with it.
            *dies_with_parent([sys.executable, "-m", "pweza.agent"]),
            "--pool", pool, "--namespace", namespace, "--manager", self.grpc,
            "--agent-id", f"{pool}-{index}-{os.getpid()}-{int(time.time()) % 100000}",
            env=env, stdout=log_file, stderr=log_file, stdin=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        log_file.close()
        return process

    async def _terminate(self, slot: _Slot, grace: float = 35.0) -> None:
        process = slot.process
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), grace)
        except TimeoutError:
            process.kill()
            await process.wait()

    async def stop(self) -> None:
        await asyncio.gather(*(self._terminate(slot) for slot in self.slots.values()))


async def _ensure_token(manager: Manager, path: Path, name: str, role: Role, pool: str | None = None) -> str:
    """The token saved at `path` if it still works for `role` (and `pool`), else a new one saved there.

    These tokens never expire (`--ttl never`, chosen here on purpose): they live in the data
    directory (files of mode 0600) of a platform on one machine, which is their trust boundary,
    and a lost or revoked one is simply replaced at the next start."""
    if path.exists():
        secret = path.read_text().strip()
        try:
            principal = await manager.tokens.authenticate(secret)
            if principal.role is role and principal.pool == pool:
                return secret
        except PwezaError:
            pass
    _, secret = await manager.create_token(None, name, role, pool=pool)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret)
    return secret


async def run_embedded(settings: Settings, data_dir: Path, files: list[Path], console: Console) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    supervisor: AgentSupervisor | None = None
    tending: asyncio.Task[None] | None = None
    reporting: asyncio.Task[None] | None = None

    async def on_ready(manager: Manager, endpoints: Endpoints) -> None:
        nonlocal supervisor, tending, reporting
        admin = await _ensure_token(manager, data_dir / "admin-token", "embedded-admin", Role.ADMIN)
        context_path = save_context(data_dir, Context(endpoints.http, admin, endpoints.grpc))
        for target in files:
            for where, document in load_documents(target):
                manifest = parse_manifest(document)
                _, warnings = await manager.registry.apply(manifest)
                console.print(f"applied {manifest.kind_name}/{manifest.metadata.name}")
                for warning in warnings:
                    console.print(f"[yellow]warning[/yellow] {where}: {warning}")
        roots = {str(Path.cwd())} | {str(t.resolve().parent if t.is_file() else t.resolve()) for t in files}
        supervisor = AgentSupervisor(endpoints.grpc, data_dir / "agent-tokens", data_dir / "logs", sorted(roots))
        changed = asyncio.Event()
        manager.registry.on_change(lambda kind, *_: changed.set() if kind == "AgentPool" else None)
        await supervisor.reconcile(manager)
        tending = asyncio.create_task(_tend(supervisor, manager, changed))
        pools = len(supervisor.desired)
        console.print(f"started {len(supervisor.slots)} agents for {pools} pool{'' if pools == 1 else 's'}")
        # "Up" once the agents can take work (or said why they cannot), not when they were forked.
        fleet = await wait_for_fleet(manager, supervisor, console, _FLEET_WAIT, stop)
        console.print(
            f"[bold green]pweza is up[/bold green]  API {endpoints.http}  gRPC {endpoints.grpc}  {fleet.summary()}"
        )
        if endpoints.metrics:
            console.print(f"metrics {endpoints.metrics}")
        console.print(f"admin token saved to {context_path} (the CLI uses it); agent logs in {data_dir / 'logs'}")
        reporting = asyncio.create_task(report_fleet(manager, supervisor, console, fleet))

    try:
        await serve(settings, stop, on_ready)
    finally:
        for task in (tending, reporting):
            if task is not None:
                task.cancel()
        if supervisor is not None:
            await supervisor.stop()


async def _tend(supervisor: AgentSupervisor, manager: Manager, changed: asyncio.Event) -> None:
    while True:
        try:
            await asyncio.wait_for(changed.wait(), timeout=1.0)
        except TimeoutError:
            await supervisor.tend()
            continue
        changed.clear()
        await supervisor.reconcile(manager)
