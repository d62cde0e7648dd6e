"""Several manager replicas on one PostgreSQL database, and agents that know every replica.

The multi-replica counterpart of `pweza.testing.platform.Platform`, with the same shape of API
plus a replica index where it matters::

    url = postgres_server.create_database("t1")          # pweza.testing.postgres.PostgresServer
    with running_cluster(url, replicas=2) as cluster:
        cluster.apply(template, pool)
        cluster.start_agent("echo")                       # lists every replica, its own first
        cluster.kill_manager(0)                           # SIGKILL, as in a lost node
        cluster.restart_manager(0)                        # the same ports again

Agent i lists replica i % N first, so a fleet spreads over the replicas and, when one dies, its
agents fail over to the others (`pweza.agent.failover`). Every process is a real subprocess on
127.0.0.1; logs are `manager-<i>.log` and `agent-<pool>-<i>.log` in the work directory.
"""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

from pweza.store.postgres import PostgresStore
from pweza.testing.processes import (
    ManagerProcess,
    PortTaken,
    agent_command,
    bootstrap_tokens,
    manager_env,
    stop_processes,
)

__all__ = ["Cluster", "running_cluster"]

_FINISHED = ("succeeded", "failed", "cancelled", "timed_out")
# A long poll on one replica may not hear of a task another replica finished; asking again this
# often bounds how late `wait_task` notices.
_WAIT_POLL = 2.0


class Cluster:
    """Owns a work directory, N manager processes sharing `database_url`, and agent processes."""

    def __init__(
        self,
        workdir: Path,
        database_url: str,
        *,
        replicas: int = 2,
        lease_seconds: float = 2.0,
        env: dict[str, str] | None = None,
    ) -> None:
        if replicas < 1:
            raise ValueError("a cluster needs at least one manager replica")
        self.workdir = workdir
        self.database_url = database_url
        self.env = manager_env(workdir, database_url, lease_seconds=lease_seconds, env=env)
        self.managers = [
            ManagerProcess({**self.env, "PWEZA_REPLICA_ID": f"manager-{index}"}, workdir / f"manager-{index}.log")
            for index in range(replicas)
        ]
        # One connection is plenty for two inserts; the migrations run here first, under their lock.
        store = PostgresStore(database_url, pool_size=1, max_overflow=0)
        self.admin_token, self.agent_token = asyncio.run(bootstrap_tokens(store))
        self.agents: list[subprocess.Popen[bytes]] = []

    # -- addresses -----------------------------------------------------------------
    @property
    def urls(self) -> list[str]:
        return [manager.url for manager in self.managers]

    @property
    def grpc_addresses(self) -> list[str]:
        return [manager.grpc_address for manager in self.managers]

    def url(self, index: int = 0) -> str:
        return self.managers[index].url

    def client(self, index: int = 0, token: str | None = None, timeout: float = 30.0) -> httpx.Client:
        """An HTTP client of replica `index`, with the admin token unless told otherwise."""
        manager = self.managers[index]
        return httpx.Client(
            verify=manager.verify,
            base_url=manager.url,
            timeout=timeout,
            headers={"Authorization": f"Bearer {token or self.admin_token}"},
        )

    def running_indexes(self) -> list[int]:
        return [index for index, manager in enumerate(self.managers) if manager.running]

    # -- managers --------------------------------------------------------------------
    def start_managers(self, timeout: float = 30.0) -> None:
        """Start every replica at once, as a rollout would, and wait until each is ready."""
        for manager in self.managers:
            manager.launch()
        deadline = time.monotonic() + timeout
        for manager in self.managers:
            try:
                manager.wait_ready(max(0.1, deadline - time.monotonic()))
            except PortTaken:
                manager.move_ports()
                manager.start(timeout)

    def start_manager(self, index: int, timeout: float = 30.0) -> None:
        self.managers[index].start(timeout)

    def kill_manager(self, index: int) -> None:
        """SIGKILL replica `index`: no shutdown code runs."""
        self.managers[index].kill()

    def restart_manager(self, index: int, timeout: float = 30.0) -> None:
        """Kill replica `index` if it runs, then start it on the same ports (the agents' lists name them)."""
        self.managers[index].kill()
        self.managers[index].start(timeout)

    def manager_log(self, index: int) -> str:
        return self.managers[index].log()

    # -- objects and agents --------------------------------------------------------------
    def apply(self, *documents: dict[str, Any], manager: int = 0) -> None:
        with self.client(manager) as client:
            for document in documents:
                plural = document["kind"].lower() + "s"
                name = document["metadata"]["name"]
                client.put(f"/api/v1/{plural}/{name}", json=document).raise_for_status()

    def apply_yaml(self, text: str, manager: int = 0) -> None:
        self.apply(*[doc for doc in yaml.safe_load_all(text) if doc], manager=manager)

    def start_agent(
        self, pool: str, *, agent_id: str | None = None, extra: list[str] | None = None
    ) -> subprocess.Popen[bytes]:
        """An agent dialing every replica in turn, replica `i % N` first for the i-th agent."""
        index = len(self.agents)
        first = index % len(self.managers)
        addresses = self.grpc_addresses[first:] + self.grpc_addresses[:first]
        with (self.workdir / f"agent-{pool}-{index}.log").open("ab") as log:
            process = subprocess.Popen(
                agent_command(pool, ",".join(addresses), agent_id, extra),
                env={**self.env, "PWEZA_TOKEN": self.agent_token},
                stdout=log,
                stderr=log,
            )
        self.agents.append(process)
        return process

    def connected_agents(self) -> dict[int, list[dict[str, Any]]]:
        """The agents each running replica has a stream with; a replica that does not answer is left out."""
        found: dict[int, list[dict[str, Any]]] = {}
        for index in self.running_indexes():
            try:
                with self.client(index, timeout=5.0) as client:
                    items = client.get("/api/v1/agents").json()["items"]
                # Every replica lists every agent; keep those with a stream to this one.
                found[index] = [agent for agent in items if agent["replica"] == f"manager-{index}"]
            except httpx.HTTPError:
                continue
        return found

    def wait_for_agents(self, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Wait until `count` distinct agents are connected, to whichever replicas; return them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            agents = {agent["id"]: agent for items in self.connected_agents().values() for agent in items}
            if len(agents) >= count:
                return list(agents.values())
            time.sleep(0.05)
        raise TimeoutError(f"fewer than {count} agents connected within {timeout}s")

    def wait_task(self, task_id: str, timeout: float = 60.0, manager: int | None = None) -> dict[str, Any]:
        """Wait for a task to finish, asking replica `manager`, or any running one in turn if None."""
        deadline = time.monotonic() + timeout
        turns = itertools.count()
        while time.monotonic() < deadline:
            index = manager if manager is not None else self._any_running(next(turns))
            remaining = max(0.1, min(_WAIT_POLL, deadline - time.monotonic()))
            try:
                with self.client(index, timeout=remaining + 5.0) as client:
                    task: dict[str, Any] = client.get(
                        f"/api/v1/tasks/{task_id}/wait", params={"timeout": remaining}
                    ).json()
            except httpx.HTTPError:
                time.sleep(0.2)  # that replica is down or restarting
                continue
            if task["state"] in _FINISHED:
                return task
        raise TimeoutError(f"task {task_id} did not finish within {timeout}s")

    def _any_running(self, turn: int) -> int:
        """A running replica, a different one each turn; replica 0 if none runs (the call will fail and retry)."""
        running = self.running_indexes()
        return running[turn % len(running)] if running else 0

    def stop(self) -> None:
        """Stop agents and managers together, SIGKILL what outlives the grace: bounded in time."""
        stop_processes([*self.agents, *(manager.process for manager in self.managers)])


@contextmanager
def running_cluster(database_url: str, **kwargs: Any) -> Iterator[Cluster]:
    """A started cluster in a temporary work directory; the database is the caller's to create and drop."""
    with tempfile.TemporaryDirectory(prefix="pweza-cluster-") as tmp:
        cluster = Cluster(Path(tmp), database_url, **kwargs)
        try:
            cluster.start_managers()
            yield cluster
        finally:
            cluster.stop()
