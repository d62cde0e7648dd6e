"""`pweza up` and the CLI as a person uses them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pweza.testing.platform import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = """
apiVersion: pweza.ai/v1
kind: Workflow
metadata: {name: wordy}
spec:
  inputs: {text: {type: string}}
  steps:
    - {name: count, agent: {pool: counters}, input: {text: "${{ inputs.text }}"}}
    - {name: again, agent: {pool: counters}, depends: [count], input: {text: "${{ steps.count.output.top }}"}}
  outputs: {words: "${{ steps.count.output.words }}", top: "${{ steps.count.output.top }}"}
"""


class Embedded:
    def __init__(self, data_dir: Path, process: subprocess.Popen[str], http: int) -> None:
        self.data_dir = data_dir
        self.process = process
        self.url = f"http://127.0.0.1:{http}"
        self.env = {**os.environ, "PWEZA_DATA_DIR": str(data_dir)}

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pweza", *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def agents(self) -> list[dict[str, Any]]:
        token = (self.data_dir / "admin-token").read_text()
        response = httpx.get(f"{self.url}/api/v1/agents", headers={"Authorization": f"Bearer {token}"})
        items: list[dict[str, Any]] = response.json()["items"]
        return items


def wait_for(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (httpx.HTTPError, OSError, KeyError):
            pass
        time.sleep(0.2)
    raise TimeoutError(f"timed out waiting for {what}")


def launch(data_dir: Path, ports: tuple[int, int, int], log_name: str = "up.log") -> Embedded:
    """`pweza up` on the quickstart example, once its 2 agents are connected."""
    http, grpc, metrics = ports
    args = [
        sys.executable, "-m", "pweza", "up", "-f", str(ROOT / "examples" / "quickstart"), "--data-dir", str(data_dir),
        "--http-port", str(http), "--grpc-port", str(grpc), "--metrics-port", str(metrics),
    ]  # fmt: skip
    log = (data_dir / log_name).open("w")
    process = subprocess.Popen(args, stdout=log, stderr=log, text=True, cwd=data_dir)
    platform = Embedded(data_dir, process, http)
    try:
        wait_for(lambda: len(platform.agents()) == 2, 60, "pweza up with 2 agents")
    except BaseException:
        stop(platform)
        raise
    return platform


def stop(platform: Embedded) -> None:
    process = platform.process
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()


def alive(pid: int) -> bool:
    """Whether the process runs (a zombie, dead but not yet reaped, does not count)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc here
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[Embedded]:
    platform = launch(tmp_path, (free_port(), free_port(), free_port()))
    try:
        yield platform
    finally:
        stop(platform)


def test_up_applies_starts_agents_and_the_cli_finds_it(embedded: Embedded) -> None:
    assert (embedded.data_dir / "context.json").stat().st_mode & 0o077 == 0, "the token file is private"
    pools = json.loads(embedded.cli("get", "ap", "-o", "json").stdout)
    assert [p["metadata"]["name"] for p in pools] == ["counters"]
    done = embedded.cli("task", "submit", "--pool", "counters", "--input", '{"text": "a b a"}', "--wait")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["output"] == {"words": 3, "top": "a"}
    table = embedded.cli("task", "list").stdout
    assert "succeeded" in table and "counters" in table


def test_the_database_and_its_wal_are_readable_by_their_owner_only(embedded: Embedded, tmp_path: Path) -> None:
    database = embedded.data_dir / "pweza.db"
    files = [database, database.with_name("pweza.db-wal"), database.with_name("pweza.db-shm")]
    wait_for(lambda: all(path.exists() for path in files), 30, "the database, its WAL and its shared memory file")
    assert {path.name: oct(path.stat().st_mode & 0o777) for path in files} == {path.name: "0o600" for path in files}
    bootstrap = tmp_path / "bootstrap" / "tokens.db"
    made = embedded.cli("token", "create", "--role", "admin", "--database-url", f"sqlite:///{bootstrap}")
    assert made.returncode == 0, made.stderr
    assert oct(bootstrap.stat().st_mode & 0o777) == "0o600"


def test_a_dead_agent_is_restarted(embedded: Embedded) -> None:
    victim = embedded.agents()[0]
    os.kill(victim["pid"], signal.SIGKILL)
    wait_for(
        lambda: victim["pid"] not in {a["pid"] for a in embedded.agents()} and len(embedded.agents()) == 2,
        60,
        "a new agent",
    )


def test_pweza_run_applies_shows_progress_prints_outputs_and_sets_the_exit_code(
    embedded: Embedded, tmp_path: Path
) -> None:
    workflow = tmp_path / "wordy.yaml"
    workflow.write_text(WORKFLOW)
    ok = embedded.cli("run", str(workflow), "-i", "text=to be or not to be")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout) == {"words": 6, "top": "to"}
    assert "count" in ok.stderr and "succeeded" in ok.stderr, "the step tree is drawn on stderr"
    runs = embedded.cli("runs", "list", "-o", "json")
    run_id = json.loads(runs.stdout)[0]["id"]
    logs = embedded.cli("runs", "logs", run_id).stdout
    assert "RunStarted" in logs and "RunSucceeded" in logs
    failed = embedded.cli("run", "wordy", "-i", "text=42")
    assert failed.returncode == 1, "a run that fails exits non-zero"
    detached = embedded.cli("run", "wordy", "-i", "text=x y", "--detach")
    assert detached.returncode == 0 and len(detached.stdout.strip()) == 16
    bad_input = embedded.cli("run", "wordy", "-i", "colour=red")
    assert bad_input.returncode == 1 and "inputs.colour" in bad_input.stderr


def test_cli_errors_say_what_is_wrong(embedded: Embedded, tmp_path: Path) -> None:
    wrong = embedded.cli("get", "ap", "--token", "pwz_wrong")
    assert wrong.returncode == 1 and "token was rejected" in wrong.stderr
    away = embedded.cli("get", "ap", "--server", f"http://127.0.0.1:{free_port()}")
    assert away.returncode == 1 and "cannot reach the manager" in away.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: pweza.ai/v1\nkind: AgentPool\nmetadata: {name: p}\nspec: {templateRef: x, scaling: {minReplicas: 4, maxReplicas: 2}}\n"
    )
    refused = embedded.cli("apply", "-f", str(bad))
    assert refused.returncode == 2 and "spec.scaling: minReplicas (4) must not exceed maxReplicas (2)" in refused.stderr


def test_sigterm_stops_the_platform_and_its_agents(embedded: Embedded) -> None:
    pids = [agent["pid"] for agent in embedded.agents()]
    embedded.process.send_signal(signal.SIGTERM)
    assert embedded.process.wait(60) == 0
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_agents_die_with_a_killed_pweza_up_and_a_restart_does_not_double_the_fleet(tmp_path: Path) -> None:
    ports = (free_port(), free_port(), free_port())
    first = launch(tmp_path, ports, "up-1.log")
    pids = [agent["pid"] for agent in first.agents()]
    first.process.kill()  # SIGKILL: no chance to stop its agents itself
    first.process.wait(30)
    wait_for(lambda: not any(alive(pid) for pid in pids), 60, f"the agents {pids} to die with pweza up")
    second = launch(tmp_path, ports, "up-2.log")  # the same data directory and ports
    try:
        wait_for(lambda: len(second.agents()) == 2, 30, "the configured 2 agents")
        time.sleep(3)  # an orphan would reconnect within a second or two of the new manager's start
        agents = second.agents()
        assert len(agents) == 2, agents
        assert not {agent["pid"] for agent in agents} & set(pids)
    finally:
        stop(second)


def test_an_agent_stops_when_the_process_named_in_pweza_parent_pid_is_gone(tmp_path: Path) -> None:
    """The check that works without PR_SET_PDEATHSIG: a parent that sets no death signal."""
    parent_code = (
        "import os, subprocess, sys, time\n"
        "env = {**os.environ, 'PWEZA_PARENT_PID': str(os.getpid()), 'PWEZA_TOKEN': 'pwz_unused'}\n"
        "agent = subprocess.Popen([sys.executable, '-m', 'pweza', 'agent', '--pool', 'p',\n"
        f"    '--manager', '127.0.0.1:{free_port()}'], env=env)\n"  # nobody listens: it keeps retrying
        "print(agent.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE, text=True, cwd=tmp_path)
    assert parent.stdout is not None
    agent_pid = int(parent.stdout.readline())
    try:
        assert alive(agent_pid)  # (killed before it watches, it finds its parent gone at once)
        parent.kill()
        parent.wait(30)
        wait_for(lambda: not alive(agent_pid), 30, "the agent to notice its parent is gone")
    finally:
        parent.kill()
        if alive(agent_pid):
            os.kill(agent_pid, signal.SIGKILL)
