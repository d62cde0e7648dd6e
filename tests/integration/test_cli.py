"""The kubectl-like CLI against a real `pweza up`, started on the project `pweza init` scaffolds.

One platform serves the whole module (starting one takes a while); each test leaves the
scaffolded objects as it found them.
"""

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
import yaml

from pweza.testing.platform import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


class Up:
    """A `pweza up` subprocess and the CLI pointed at it (through the context it saved)."""

    def __init__(self, workdir: Path, project: Path, process: subprocess.Popen[bytes], http_port: int) -> None:
        self.workdir = workdir
        self.project = project
        self.process = process
        self.url = f"http://127.0.0.1:{http_port}"
        self.env = {**os.environ, "PWEZA_DATA_DIR": str(workdir / "data")}
        self.env.pop("PWEZA_URL", None)
        self.env.pop("PWEZA_TOKEN", None)

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pweza", *args],
            env=self.env,
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def ok(self, *args: str) -> str:
        done = self.cli(*args)
        assert done.returncode == 0, f"pweza {' '.join(args)}: {done.stderr}"
        return done.stdout

    def agents(self) -> list[dict[str, Any]]:
        token = (self.workdir / "data" / "admin-token").read_text()
        reply = httpx.get(f"{self.url}/api/v1/agents", headers={"Authorization": f"Bearer {token}"}, timeout=5)
        items: list[dict[str, Any]] = reply.json()["items"]
        return items


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    workdir = tmp_path_factory.mktemp("cli")
    project = workdir / "hello"
    made = subprocess.run(
        [sys.executable, "-m", "pweza", "init", str(project)], capture_output=True, text=True, timeout=60
    )
    assert made.returncode == 0, made.stderr
    http, grpc, metrics = free_port(), free_port(), free_port()
    # The ports only through the environment: `pweza up` must honour them when no flag is given.
    env = {
        **os.environ,
        "PWEZA_DATA_DIR": str(workdir / "data"),
        "HTTP_PORT": str(http),
        "GRPC_PORT": str(grpc),
        "METRICS_PORT": str(metrics),
    }
    with (workdir / "up.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "pweza", "up", "-f", str(project)], env=env, cwd=workdir, stdout=log, stderr=log
        )
    platform = Up(workdir, project, process, http)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert process.poll() is None, (workdir / "up.log").read_text()
            try:
                if [a["pool"] for a in platform.agents()] == ["greeters"]:
                    break
            except (httpx.HTTPError, OSError, KeyError, ValueError):
                pass
            time.sleep(0.2)
        else:
            raise TimeoutError(f"pweza up did not start its agent: {(workdir / 'up.log').read_text()}")
        yield platform
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


def test_the_scaffolded_project_runs_on_pweza_up_started_with_ports_from_the_environment(up: Up) -> None:
    assert sorted(p.name for p in up.project.iterdir()) == ["agents.yaml", "hello_agents.py", "workflow.yaml"]
    context = json.loads((up.workdir / "data" / "context.json").read_text())
    assert context["url"] == up.url, "HTTP_PORT was honoured"
    outputs = json.loads(up.ok("run", "hello/workflow.yaml", "-i", "name=Ada"))
    assert outputs == {"greeting": "Hello, Ada!", "shouted": "HELLO, ADA!"}
    detached = up.ok("run", "hello", "--detach")
    assert len(detached.strip().splitlines()) == 1, "only the run id on stdout"


def test_get_shows_ready_and_age_and_speaks_every_output_format(up: Up) -> None:
    header, row = up.ok("get", "ap").splitlines()[:2]
    assert header.split() == ["NAMESPACE", "NAME", "TEMPLATE", "READY", "MIN", "MAX", "AGE"]
    assert row.split()[:4] == ["default", "greeters", "greeter", "1/1"]
    assert row.split()[-1][-1] in "smhd"
    assert "GEN" in up.ok("get", "ap", "-o", "wide").splitlines()[0]
    assert up.ok("get", "ap", "-o", "name").split() == ["agentpool/greeters"]
    assert [p["metadata"]["name"] for p in json.loads(up.ok("get", "agentpools", "-o", "json"))] == ["greeters"]
    one = yaml.safe_load(up.ok("get", "at/greeter", "-o", "yaml"))
    assert one["spec"]["runtime"]["handler"] == "hello_agents:greet" and one["metadata"]["creationTimestamp"]
    agents = up.ok("get", "agents", "-o", "wide")
    assert "greeters" in agents and "HOST" in agents and "idle" in agents
    (agent,) = up.ok("get", "agents", "-o", "name").split()
    assert agent.startswith("agent/greeters-0-")
    refused = up.cli("get", "ap", "-o", "xml")
    assert refused.returncode == 2 and "--output must be" in refused.stderr


def test_every_listing_takes_the_output_formats(up: Up) -> None:
    up.ok("run", "hello", "-i", "name=Bo")
    for listing in (("task", "list"), ("runs", "list"), ("token", "list")):
        items = json.loads(up.ok(*listing, "-o", "json"))
        assert items, listing
        names = up.ok(*listing, "-o", "name").split()
        assert len(names) == len(items) and all("/" in name for name in names), names
        assert yaml.safe_load(up.ok(*listing, "-o", "yaml")) == items
        assert len(up.ok(*listing, "-o", "wide").splitlines()[0]) > len(up.ok(*listing).splitlines()[0])
    task = up.ok("task", "list", "-o", "name").split()[0]
    assert json.loads(up.ok("task", "get", task.split("/", 1)[1]))["attemptHistory"]
    run_id = up.ok("runs", "list", "-o", "name").split()[0].split("/", 1)[1]
    assert run_id in up.ok("runs", "list", "--workflow", "hello")


def test_describe_shows_conditions_agents_tasks_runs_and_events(up: Up) -> None:
    up.ok("run", "hello", "-i", "name=Cy")
    pool = up.ok("describe", "ap", "greeters")
    assert "Conditions:" in pool and "TemplateFound  True" in pool and "1/1 agents take work" in pool
    assert "Agents (1 connected)" in pool and "Recent tasks" in pool and "succeeded" in pool
    workflow = up.ok("describe", "workflow/hello")
    assert "greet  pool greeters" in workflow and "shout  pool greeters  greet" in workflow
    assert "Recent runs" in workflow and "RunSucceeded" in workflow
    template = up.ok("describe", "at", "greeter")
    assert "Used by pools" in template and "greeters" in template and "hello_agents:greet" in template
    agent_id = up.agents()[0]["id"]
    assert "Pool:          greeters" in up.ok("describe", "agent", agent_id)
    missing = up.cli("describe", "ap", "nope")
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1 and "not found" in missing.stderr


def test_diff_and_apply_dry_run_say_what_apply_would_change_and_change_nothing(up: Up, tmp_path: Path) -> None:
    same = up.cli("diff", "-f", str(up.project))
    assert same.returncode == 0 and same.stdout == "", same.stdout + same.stderr
    changed = tmp_path / "agents.yaml"
    changed.write_text((up.project / "agents.yaml").read_text().replace("concurrency: 4", "concurrency: 3"))
    diff = up.cli("diff", "-f", str(changed))
    assert diff.returncode == 1, diff.stderr
    assert "-  concurrency: 4\n" in diff.stdout and "+  concurrency: 3\n" in diff.stdout
    assert diff.stdout.startswith("--- stored/AgentTemplate/default/greeter\n")
    dry = up.ok("apply", "-f", str(changed), "--dry-run")
    assert "AgentTemplate/greeter configured (dry run)" in dry and "AgentPool/greeters unchanged (dry run)" in dry
    assert up.cli("diff", "-f", str(changed)).returncode == 1, "a dry run writes nothing"
    bad = tmp_path / "bad.yaml"
    bad.write_text(changed.read_text().replace("minReplicas: 1", "minReplicas: 5"))
    for args in (("apply", "-f", str(bad), "--dry-run"), ("apply", "-f", str(bad))):
        refused = up.cli(*args)
        assert refused.returncode == 2 and "minReplicas (5) must not exceed maxReplicas (2)" in refused.stderr
    new = tmp_path / "new.yaml"
    new.write_text(
        "apiVersion: pweza.ai/v1\nkind: AgentTemplate\nmetadata: {name: fresh}\n"
        "spec: {runtime: {kind: python, handler: 'hello_agents:greet'}}\n"
    )
    assert "AgentTemplate/fresh created (dry run)" in up.ok("apply", "-f", str(new), "--dry-run")
    assert up.cli("get", "at", "fresh").returncode == 1


def test_delete_takes_the_manifests_that_made_the_objects(up: Up, tmp_path: Path) -> None:
    extra = tmp_path / "extra.yaml"
    extra.write_text(
        "apiVersion: pweza.ai/v1\nkind: AgentTemplate\nmetadata: {name: spare}\n"
        "spec: {runtime: {kind: python, handler: 'hello_agents:greet'}}\n---\n"
        "apiVersion: pweza.ai/v1\nkind: AgentPool\nmetadata: {name: spares}\n"
        "spec: {templateRef: spare, scaling: {minReplicas: 1, maxReplicas: 1}}\n"
    )
    up.ok("apply", "-f", str(extra))
    # The pool goes first: a template in use by a pool cannot be deleted.
    assert up.ok("delete", "-f", str(extra)).splitlines() == ["AgentPool/spares deleted", "AgentTemplate/spare deleted"]
    gone = up.cli("delete", "-f", str(extra))
    assert gone.returncode == 1 and "not found" in gone.stderr
    assert up.cli("delete", "-f", str(extra), "--ignore-not-found").returncode == 0
    up.ok("apply", "-f", str(extra))
    assert up.ok("delete", "ap/spares").strip() == "AgentPool/spares deleted"
    assert up.ok("delete", "agenttemplate", "spare").strip() == "AgentTemplate/spare deleted"


def test_logs_of_a_task_and_of_an_agent_come_through_the_manager(up: Up) -> None:
    # A string input makes the scaffolded handler fail (it calls .get on its input): it logs a traceback.
    failed = up.cli("task", "submit", "--pool", "greeters", "--input", '"not a mapping"', "--wait")
    assert failed.returncode == 1, failed.stderr
    task_id = json.loads(failed.stdout)["id"]
    lines = up.ok("logs", f"task/{task_id}").splitlines()
    assert lines and all(task_id in line for line in lines)
    assert any("handler raised" in line and "AttributeError" in line for line in lines)
    followed = up.cli("logs", "task", task_id, "-f", timeout=60)
    assert followed.returncode == 0 and followed.stdout == "\n".join(lines) + "\n", "a finished task's log ends"
    agent_id = up.agents()[0]["id"]
    whole = up.ok("logs", f"agent/{agent_id}")
    assert "agent ready" in whole and "handler raised" in whole
    assert len(up.ok("logs", "agent", agent_id, "--tail", "2").splitlines()) == 2
    follower = subprocess.Popen(
        [sys.executable, "-m", "pweza", "logs", f"agent/{agent_id}", "-f", "--tail", "0"],
        env=up.env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        up.cli("task", "submit", "--pool", "greeters", "--input", '"again"', "--wait")
        assert follower.stdout is not None
        deadline = time.monotonic() + 60
        seen = ""
        while "handler raised" not in seen and time.monotonic() < deadline:
            seen += follower.stdout.readline()
        assert "handler raised" in seen, "a followed agent log shows new lines as they come"
    finally:
        follower.kill()
        follower.wait(10)
    unknown = up.cli("logs", "agent/nobody")
    assert unknown.returncode == 1 and "not connected" in unknown.stderr
    wrong = up.cli("logs", "pool/greeters")
    assert wrong.returncode == 2 and "tasks and agents" in wrong.stderr
