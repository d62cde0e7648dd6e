"""Three manager replicas on one PostgreSQL database, agents spread over them.

Each test submits 2,000 tasks and starts 20 workflow runs, spread over the replicas, with the
`record` handler writing `task/attempt pid` for every execution. Afterwards every task and run
must have succeeded, and no attempt may have run twice: a task runs again only as a new,
recorded attempt (after a failure in the middle of it).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pweza.testing import eventually
from pweza.testing.cluster import Cluster
from pweza.testing.postgres import PostgresServer
from tests.conftest import pool, template

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

TASKS = 2000
RUNS = 20
REPLICAS = 3
AGENTS = 6
# Seconds each execution takes: with 6 agents x 8 slots, the work lasts ~18 s, long enough to
# kill a replica or stop the database while much of it is in flight.
WORK = 0.4


@pytest.fixture
def database(postgres_database: str) -> str:
    return postgres_database


@pytest.fixture
def replica_ttl() -> str:
    return "3"


@pytest.fixture
def cluster(database: str, tmp_path: Path, replica_ttl: str) -> Iterator[Cluster]:
    instance = Cluster(
        tmp_path,
        database,
        replicas=REPLICAS,
        lease_seconds=3.0,
        env={"PWEZA_REPLICA_TTL_SECONDS": replica_ttl, "LOG_LEVEL": "INFO"},
    )
    try:
        instance.start_managers()
        yield instance
    finally:
        instance.stop()


def _workflow() -> dict[str, Any]:
    record = {"agent": {"pool": "work"}}
    return {
        "apiVersion": "pweza.ai/v1",
        "kind": "Workflow",
        "metadata": {"name": "spread"},
        "spec": {
            "inputs": {"log": {"type": "string"}},
            "steps": [
                {"name": "first", **record, "input": {"log": "${{ inputs.log }}", "value": 1, "seconds": WORK}},
                {
                    "name": "each",
                    **record,
                    "depends": ["first"],
                    "foreach": "${{ [1, 2, 3, 4, 5] }}",
                    "input": {"log": "${{ inputs.log }}", "value": "${{ item }}", "seconds": WORK},
                },
                {
                    "name": "last",
                    **record,
                    "depends": ["each"],
                    "input": {"log": "${{ inputs.log }}", "value": "${{ size(steps.each.output) }}"},
                },
            ],
            "outputs": {"count": "${{ steps.last.output.value }}"},
        },
    }


def _start(cluster: Cluster, log: Path) -> None:
    cluster.apply(
        template("recorder", "pweza.testing.handlers:record", concurrency=8),
        pool("work", "recorder"),
        _workflow(),
    )
    for _ in range(AGENTS):
        cluster.start_agent("work")
    agents = cluster.wait_for_agents(AGENTS)
    assert len(agents) == AGENTS


def _submit(cluster: Cluster, log: Path) -> tuple[list[str], list[str]]:
    """Tasks in batches of 100 and runs, round robin over the replicas; their ids."""
    task_ids: list[str] = []
    run_ids: list[str] = []
    for batch in range(TASKS // 100):
        items = [
            {"pool": "work", "input": {"log": str(log), "value": batch * 100 + i, "seconds": WORK}} for i in range(100)
        ]
        with cluster.client(batch % REPLICAS) as client:
            response = client.post("/api/v1/tasks:batch", json={"tasks": items})
            response.raise_for_status()
            task_ids += [item["id"] for item in response.json()["items"]]
        if batch < RUNS:
            with cluster.client((batch + 1) % REPLICAS) as client:
                response = client.post("/api/v1/workflows/spread/runs", json={"inputs": {"log": str(log)}})
                response.raise_for_status()
                run_ids.append(response.json()["id"])
    return task_ids, run_ids


def _wait_all(server: PostgresServer, database: str, timeout: float, cluster: Cluster | None = None) -> None:
    """Until every task and run has finished (asked of the database itself); on a timeout the
    message names what is stuck and where."""
    name = database.rsplit("/", 1)[1]
    deadline = time.monotonic() + timeout
    unfinished = ""
    while time.monotonic() < deadline:
        try:
            unfinished = server.psql(
                "SELECT (SELECT count(*) FROM tasks WHERE state NOT IN ('succeeded','failed','cancelled','timed_out'))"
                " + (SELECT count(*) FROM runs WHERE state = 'running')",
                database=name,
                timeout=10,
            ).strip()
        except Exception as error:  # noqa: BLE001 - the server may be stopped by the test just now
            unfinished = str(error)
        if unfinished == "0":
            return
        time.sleep(0.5)
    raise AssertionError(f"not finished within {timeout}s: {unfinished}\n{_stuck(server, name, cluster)}")


def _stuck(server: PostgresServer, name: str, cluster: Cluster | None) -> str:
    """The unfinished tasks and runs, their steps and history, the replicas' leases, and what the
    managers logged about them."""

    def query(sql: str) -> str:
        try:
            return server.psql(sql, database=name, timeout=10)
        except Exception as error:  # noqa: BLE001 - a report, made while failing anyway
            return f"({error})"

    unfinished = "SELECT id FROM runs WHERE state = 'running' LIMIT 20"
    tasks = query(
        "SELECT id, state, owner, attempts, agent_id, labels FROM tasks"
        " WHERE state NOT IN ('succeeded','failed','cancelled','timed_out') LIMIT 20"
    )
    runs = query("SELECT id, owner, seq, created_at FROM runs WHERE state = 'running' LIMIT 20")
    report = [
        f"tasks:\n{tasks}",
        f"runs:\n{runs}",
        "their steps:\n" + query(f"SELECT run_id, name, state, items FROM run_steps WHERE run_id IN ({unfinished})"),
        "their events:\n"
        + query(f"SELECT run_id, at, type, step FROM run_events WHERE run_id IN ({unfinished}) ORDER BY id"),
        "their tasks:\n"
        + query(f"SELECT id, state, owner, attempts FROM tasks WHERE labels::json->>'run' IN ({unfinished})"),
        "leases:\n" + query("SELECT name, holder, expires, extract(epoch from now()) FROM leases"),
    ]
    if cluster is not None:
        ids = [line.split("|")[0] for line in (tasks + runs).splitlines() if line]
        for index in range(len(cluster.managers)):
            log = cluster.manager_log(index).splitlines()
            lines = [line for line in log if any(i in line for i in ids) or "runs" in line or "duties" in line]
            report.append(f"manager-{index} on those ids, runs and duties:\n" + "\n".join(lines[-40:]))
    return "\n".join(report)


def _in_flight(server: PostgresServer, database: str, owner: str | None = None) -> tuple[int, int]:
    """Attempts handed out and not yet finished, and runs running (of one replica if `owner`)."""
    name = database.rsplit("/", 1)[1]
    mine = f" AND owner = '{owner}'" if owner else ""
    tasks, runs = (
        server.psql(
            f"SELECT (SELECT count(*) FROM tasks WHERE state IN ('assigned','running'){mine}),"
            f" (SELECT count(*) FROM runs WHERE state = 'running'{mine})",
            database=name,
        )
        .strip()
        .split("|")
    )
    return int(tasks), int(runs)


def _check(server: PostgresServer, database: str, log: Path, *, failures: bool) -> int:
    """Assert everything succeeded and no attempt ran twice; return how many runs were resumed
    by a replica other than the one that started them."""
    name = database.rsplit("/", 1)[1]

    def rows(sql: str) -> list[list[str]]:
        return [line.split("|") for line in server.psql(sql, database=name).splitlines() if line]

    assert rows("SELECT state, count(*) FROM runs GROUP BY state") == [["succeeded", str(RUNS)]]
    for (run_id,) in rows("SELECT id FROM runs"):
        assert rows(f"SELECT outputs FROM runs WHERE id = '{run_id}'") == [['{"count":5}']]
    workflow_tasks = RUNS * 7
    assert rows("SELECT state, count(*) FROM tasks GROUP BY state") == [["succeeded", str(TASKS + workflow_tasks)]]
    attempts = {task_id: int(count) for task_id, count in rows("SELECT id, attempts FROM tasks")}
    executed = Counter(line.split()[0] for line in log.read_text().splitlines())
    twice = {key: count for key, count in executed.items() if count > 1}
    assert not twice, f"attempts that ran more than once: {twice}"

    ran = Counter(key.rsplit("/", 1)[0] for key in executed)
    assert set(ran) == set(attempts), "every task ran, and only those"
    for key in executed:
        task_id, number = key.rsplit("/", 1)
        assert int(number) <= attempts[task_id], f"{key} ran but the task records {attempts[task_id]} attempts"
    again = {task_id: count for task_id, count in ran.items() if count > 1}
    if not failures:
        assert not again, f"tasks run more than once without any failure: {again}"
        assert set(attempts.values()) == {1}
    for task_id in again:
        assert attempts[task_id] >= ran[task_id], f"{task_id} ran {ran[task_id]} times, {attempts[task_id]} recorded"
    return int(rows("SELECT count(*) FROM run_events WHERE type = 'RunResumed'")[0][0])


def _ready(url: str, within: float) -> bool:
    """Whether /health/ready answers 200 within `within` seconds (a loaded machine answers slowly)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health/ready", timeout=5).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    return False


def _listed_agents(cluster: Cluster, index: int, count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
    """GET /agents on one replica, once it lists `count` agents (others' appear within moments)."""
    deadline = time.monotonic() + timeout
    items: list[dict[str, Any]] = []
    with cluster.client(index) as client:
        while time.monotonic() < deadline:
            items = client.get("/api/v1/agents").json()["items"]
            if len(items) >= count:
                break
            time.sleep(0.2)
    return items


def _spread(cluster: Cluster) -> dict[int, int]:
    return {index: len(agents) for index, agents in cluster.connected_agents().items()}


def test_three_replicas_share_tasks_and_runs(
    cluster: Cluster, postgres_server: PostgresServer, database: str, tmp_path: Path
) -> None:
    log = tmp_path / "executions.log"
    _start(cluster, log)
    assert _spread(cluster) == {0: 2, 1: 2, 2: 2}
    # Any replica lists all six agents, each with the replica its stream is on.
    listed = _listed_agents(cluster, 1, AGENTS)
    assert Counter(agent["replica"] for agent in listed) == {"manager-0": 2, "manager-1": 2, "manager-2": 2}
    with cluster.client(2) as client:
        replicas = client.get("/api/v1/replicas").json()
    assert replicas["replica"] == "manager-2"
    assert [r["id"] for r in replicas["items"]] == ["manager-0", "manager-1", "manager-2"]
    assert sum(r["holdsDuties"] for r in replicas["items"]) == 1
    _submit(cluster, log)
    _wait_all(postgres_server, database, timeout=180, cluster=cluster)
    assert _check(postgres_server, database, log, failures=False) == 0
    # Work went to every replica's agents, not just to the replica it was submitted to.
    pids = Counter(line.split()[1] for line in log.read_text().splitlines())
    assert len(pids) == AGENTS and min(pids.values()) > 100, pids


@pytest.mark.parametrize(
    ("restart", "replica_ttl"),
    # A long TTL for the restart: the replica is back before anyone presumes it dead.
    [(False, "3"), (True, "60")],
    ids=["stays-dead", "restarts-under-its-name"],
)
def test_a_replica_killed_mid_run_loses_nothing(
    cluster: Cluster, postgres_server: PostgresServer, database: str, tmp_path: Path, restart: bool, replica_ttl: str
) -> None:
    log = tmp_path / "executions.log"
    _start(cluster, log)
    _submit(cluster, log)
    # SIGKILL while its agents run tasks and it drives runs (whatever the machine's speed).
    eventually(
        lambda: all(_in_flight(postgres_server, database, owner="manager-1")),
        timeout=60,
        what="manager-1 to hold attempts in flight and drive runs",
    )
    cluster.kill_manager(1)
    if restart:
        # Back at once under the same name: it takes back what its previous process held.
        cluster.start_manager(1)
    _wait_all(postgres_server, database, timeout=240, cluster=cluster)
    assert _check(postgres_server, database, log, failures=True) > 0, "the dead replica's runs were resumed"
    # Its agents moved to the other replicas (and stay there when it comes back).
    assert sum(_spread(cluster).values()) == AGENTS
    with cluster.client(0) as client:
        live = [r["id"] for r in client.get("/api/v1/replicas").json()["items"]]
    assert live == (["manager-0", "manager-1", "manager-2"] if restart else ["manager-0", "manager-2"])
    if restart:
        assert "taking back what this replica held" in cluster.manager_log(1)


def test_the_database_stopped_for_ten_seconds_loses_nothing(
    cluster: Cluster, postgres_server: PostgresServer, database: str, tmp_path: Path
) -> None:
    log = tmp_path / "executions.log"
    _start(cluster, log)
    _submit(cluster, log)
    eventually(
        lambda: all(_in_flight(postgres_server, database)), timeout=60, what="attempts in flight and runs running"
    )
    postgres_server.stop("immediate")
    time.sleep(10)
    postgres_server.start()
    _wait_all(postgres_server, database, timeout=240, cluster=cluster)
    _check(postgres_server, database, log, failures=True)
    for url in cluster.urls:  # every replica came back by itself
        assert _ready(url, within=30.0), f"{url} is not ready again"


def _gated() -> dict[str, Any]:
    return {
        "apiVersion": "pweza.ai/v1",
        "kind": "Workflow",
        "metadata": {"name": "gated"},
        "spec": {
            "steps": [
                {"name": "draft", "agent": {"pool": "slow"}, "input": {"seconds": 0.01}},
                {"name": "review", "depends": ["draft"], "approval": {"message": "publish?", "timeout": "1h"}},
                {"name": "publish", "depends": ["review"], "agent": {"pool": "slow"}, "input": {"seconds": 0.01}},
            ]
        },
    }


def _run_state(cluster: Cluster, index: int, run_id: str, wanted: str, timeout: float = 30.0) -> dict[str, Any]:
    """Poll replica `index` until the run itself is in state `wanted`."""
    return _poll_run(cluster, index, run_id, lambda run: run["state"] == wanted, wanted, timeout)


def _step_state(
    cluster: Cluster, index: int, run_id: str, step: str, wanted: str, timeout: float = 30.0
) -> dict[str, Any]:
    """Poll replica `index` until the step `step` of the run is in state `wanted`."""

    def reached(run: dict[str, Any]) -> bool:
        return any(s["name"] == step and s["state"] == wanted for s in run["steps"])

    return _poll_run(cluster, index, run_id, reached, f"{step} {wanted}", timeout)


def _poll_run(
    cluster: Cluster, index: int, run_id: str, reached: Callable[[dict[str, Any]], bool], wanted: str, timeout: float
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    run: dict[str, Any] = {}
    with cluster.client(index) as client:
        while time.monotonic() < deadline:
            run = client.get(f"/api/v1/runs/{run_id}").json()
            if reached(run):
                return run
            time.sleep(0.1)
    raise AssertionError(f"run {run_id} never reached {wanted}: {run}")


def test_commands_work_on_any_replica(cluster: Cluster, tmp_path: Path) -> None:
    """A run started on one replica is approved on another, a task running on one replica's agent is
    cancelled through another, and a run is cancelled through a third."""
    cluster.apply(template("sleeper", "pweza.testing.handlers:sleep", concurrency=4), pool("slow", "sleeper"), _gated())
    for _ in range(REPLICAS):
        cluster.start_agent("slow")
    cluster.wait_for_agents(REPLICAS)
    with cluster.client(0) as client:
        run_id = client.post("/api/v1/workflows/gated/runs", json={}).json()["id"]
    _step_state(cluster, 0, run_id, "review", "waiting_approval")
    with cluster.client(1) as client:
        approved = client.post(f"/api/v1/runs/{run_id}/steps/review/approve", json={"comment": "ship it"})
        assert approved.status_code == 200, approved.text
    run = _run_state(cluster, 2, run_id, "succeeded")
    assert {step["name"]: step["state"] for step in run["steps"]} == {
        "draft": "succeeded",
        "review": "succeeded",
        "publish": "succeeded",
    }

    with cluster.client(0) as client:
        marker = tmp_path / "cancelled"
        body = {"pool": "slow", "input": {"seconds": 600, "marker": str(marker)}}
        task_id = client.post("/api/v1/tasks", json=body).json()["id"]
        deadline = time.monotonic() + 30
        while client.get(f"/api/v1/tasks/{task_id}").json()["state"] != "running" and time.monotonic() < deadline:
            time.sleep(0.1)
        agent = client.get(f"/api/v1/tasks/{task_id}").json()["agentId"]
    holder = next(index for index, agents in cluster.connected_agents().items() if agent in {a["id"] for a in agents})
    elsewhere = (holder + 1) % REPLICAS  # a cancel through a replica that does not hold it reaches the agent
    with cluster.client(elsewhere) as client:
        response = client.post(f"/api/v1/tasks/{task_id}/cancel")
        assert response.status_code == 200, response.text
    task = cluster.wait_task(task_id, timeout=30)
    assert task["state"] == "cancelled"
    assert marker.read_text() == "cancelled", "the handler itself saw the cancel"

    with cluster.client(0) as client:
        second = client.post("/api/v1/workflows/gated/runs", json={}).json()["id"]
    _step_state(cluster, 0, second, "review", "waiting_approval")
    with cluster.client(2) as client:
        assert client.post(f"/api/v1/runs/{second}/cancel").status_code == 200
    assert _run_state(cluster, 1, second, "cancelled")["state"] == "cancelled"

    # An agent drained through a replica it is not connected to: forwarded (202) to its replica.
    holder, agent = next((index, agents[0]) for index, agents in cluster.connected_agents().items() if agents)
    elsewhere = (holder + 1) % REPLICAS
    with cluster.client(elsewhere) as client:
        response = client.post(f"/api/v1/agents/{agent['id']}/drain", params={"grace": 5})
    assert response.status_code == 202, response.text
    assert response.json()["replica"] == f"manager-{holder}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        mine = {a["id"]: a for a in cluster.connected_agents().get(holder, [])}
        if mine.get(agent["id"], {"state": "draining"})["state"] == "draining":
            break  # draining, or already gone after draining
        time.sleep(0.2)
    else:
        raise AssertionError(f"agent {agent['id']} was not drained by manager-{holder}")
    with cluster.client(elsewhere) as client:
        assert client.post("/api/v1/agents/nobody/drain").status_code == 404
