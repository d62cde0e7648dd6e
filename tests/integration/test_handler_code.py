"""Handler code travels with its manifests; an agent that cannot import its handler says so and takes nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pweza.testing.platform import Platform, free_port
from tests.conftest import pool
from tests.integration.test_embedded import Embedded, stop, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

HANDLER_MODULE = """
import sys


def double(ctx):
    return {"doubled": ctx.input["n"] * 2}


def modules(ctx):
    return sorted(sys.modules)
"""


def code_folder(root: Path, module: str) -> Path:
    """A folder with a handler module and a template + pool naming it with `pythonPath: [.]`."""
    root.mkdir(parents=True)
    (root / f"{module}.py").write_text(HANDLER_MODULE)
    (root / "agents.yaml").write_text(
        "apiVersion: pweza.ai/v1\nkind: AgentTemplate\nmetadata: {name: doubler}\n"
        f"spec: {{runtime: {{kind: python, handler: '{module}:double', pythonPath: [.]}}}}\n"
        "---\napiVersion: pweza.ai/v1\nkind: AgentPool\nmetadata: {name: doublers}\nspec: {templateRef: doubler}\n"
    )
    return root


def broken_template() -> dict[str, Any]:
    return {
        "apiVersion": "pweza.ai/v1",
        "kind": "AgentTemplate",
        "metadata": {"name": "broken"},
        "spec": {"runtime": {"kind": "python", "handler": "no_such_handler_module:run"}, "concurrency": 2},
    }


def log_events(text: str, event: str) -> list[dict[str, Any]]:
    found = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("event") == event:
            found.append(record)
    return found


def test_an_agent_whose_handler_does_not_import_is_unhealthy_says_why_and_is_sent_no_task(platform: Platform) -> None:
    platform.apply(broken_template(), pool("broken", "broken"))
    agent = platform.start_agent("broken", agent_id="broken-0")
    wait_for(lambda: platform.wait_for_agents(1)[0]["state"] == "unhealthy", 30, "the agent to be unhealthy")
    [listed] = platform.wait_for_agents(1)
    assert listed["freeSlots"] == 0
    assert "no_such_handler_module" in listed["error"] and "ModuleNotFoundError" in listed["error"]
    with platform.client() as client:
        task_id = client.post("/api/v1/tasks", json={"pool": "broken", "input": {}}).json()["id"]
        # The manager's own wait, bounded: the task is still pending afterwards, never tried.
        task = client.get(f"/api/v1/tasks/{task_id}/wait", params={"timeout": 2}).json()
    assert task["state"] == "pending" and task["attempts"] == 0, task
    assert agent.poll() is None, "the agent stays connected, reporting, instead of crash-looping"
    [said] = log_events(platform.manager_log(), "agent cannot serve")
    assert said["agent"] == "broken-0" and said["pool"] == "default/broken" and said["level"] == "warning"
    assert "No module named 'no_such_handler_module'" in said["error"]
    agent_log = (platform.workdir / "agent-broken-0.log").read_text()
    [line] = log_events(agent_log, "agent cannot serve: its handler does not load")
    assert line["handler"] == "no_such_handler_module:run" and "ModuleNotFoundError" in line["error"]


def up(data_dir: Path, ports: tuple[int, int, int], files: list[Path], log_name: str) -> Embedded:
    http, grpc, metrics = ports
    args = [
        sys.executable, "-m", "pweza", "up", "--data-dir", str(data_dir),
        "--http-port", str(http), "--grpc-port", str(grpc), "--metrics-port", str(metrics),
    ]  # fmt: skip
    for file in files:
        args += ["-f", str(file)]
    log = (data_dir / log_name).open("w")
    # The working directory holds no handler code: it must come from the templates.
    process = subprocess.Popen(args, stdout=log, stderr=log, text=True, cwd=data_dir)
    platform = Embedded(data_dir, process, http)
    try:
        wait_for(lambda: "pweza is up" in (data_dir / log_name).read_text(), 90, "pweza up")
    except BaseException:
        stop(platform)
        raise
    return platform


def run_doubler(platform: Embedded) -> dict[str, Any]:
    done = platform.cli("task", "submit", "--pool", "doublers", "--input", '{"n": 21}', "--wait")
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_a_pool_applied_later_and_restored_by_a_second_up_finds_its_code(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    code = code_folder(tmp_path / "elsewhere", "later_handlers")
    ports = (free_port(), free_port(), free_port())
    first = up(data_dir, ports, [], "up-1.log")
    try:
        applied = first.cli("apply", "-f", str(code))  # after start: its folder was never given to up
        assert applied.returncode == 0, applied.stderr
        stored = json.loads(first.cli("get", "at", "doubler", "-o", "json").stdout)
        assert stored["spec"]["runtime"]["pythonPath"] == [str(code.resolve())], "recorded as an absolute path"
        assert run_doubler(first)["output"] == {"doubled": 42}
    finally:
        stop(first)
    second = up(data_dir, ports, [], "up-2.log")  # the pool comes back from the store
    try:
        assert run_doubler(second)["output"] == {"doubled": 42}
    finally:
        stop(second)


def test_an_idle_agent_imports_neither_the_cli_nor_the_manager_nor_pydantic(platform: Platform, tmp_path: Path) -> None:
    code = code_folder(tmp_path / "code", "probe_handlers")
    template = {
        "apiVersion": "pweza.ai/v1",
        "kind": "AgentTemplate",
        "metadata": {"name": "probe"},
        "spec": {"runtime": {"kind": "python", "handler": "probe_handlers:modules", "pythonPath": [str(code)]}},
    }
    platform.apply(template, pool("probe", "probe"))
    args = [sys.executable, "-m", "pweza.agent", "--pool", "probe", "--manager", platform.grpc_address]
    with (tmp_path / "probe-agent.log").open("ab") as log:
        platform.agents.append(
            subprocess.Popen(args, env={**platform.env, "PWEZA_TOKEN": platform.agent_token}, stdout=log, stderr=log)
        )
    with platform.client() as client:
        task_id = client.post("/api/v1/tasks", json={"pool": "probe", "input": {}}).json()["id"]
    task = platform.wait_task(task_id)
    assert task["state"] == "succeeded", task
    loaded = set(task["output"])
    heavy = {"typer", "rich", "pydantic", "cel", "yaml", "fastapi", "sqlalchemy", "httpx", "pweza.cli", "pweza.manager"}
    heavy |= {"pweza.domain.manifests", "pweza.domain.workflows", "pweza.store", "prompt_toolkit"}
    assert not heavy & loaded, sorted(heavy & loaded)
    assert "pweza.agent.runtimes.python" in loaded and "pweza.agent.runtimes.http" not in loaded
