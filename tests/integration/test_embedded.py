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

pytestmark = pytest.mark.integration
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


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[Embedded]:
    http = free_port()
    args = [
        sys.executable, "-m", "pweza", "up", "-f", str(ROOT / "examples" / "quickstart"), "--data-dir", str(tmp_path),
        "--http-port", str(http), "--grpc-port", str(free_port()), "--metrics-port", str(free_port()),
    ]  # fmt: skip
    log = (tmp_path / "up.log").open("w")
    process = subprocess.Popen(args, stdout=log, stderr=log, text=True, cwd=tmp_path)
    platform = Embedded(tmp_path, process, http)
    try:
        wait_for(lambda: len(platform.agents()) == 2, 60, "pweza up with 2 agents")
        yield platform
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()


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
