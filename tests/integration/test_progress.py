"""Honest progress: `pweza up` is up once its agents are, and `pweza run` shows what a step waits for."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pweza.testing.platform import Platform, free_port
from tests.conftest import pool, template
from tests.integration.test_embedded import ROOT, stop, wait_for
from tests.integration.test_handler_code import up

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
BROKEN = """apiVersion: pweza.ai/v1
kind: AgentTemplate
metadata: {name: broken}
spec: {runtime: {kind: python, handler: 'missing_module_for_up:run'}}
---
apiVersion: pweza.ai/v1
kind: AgentPool
metadata: {name: broken}
spec: {templateRef: broken}
"""


def test_pweza_up_counts_its_agents_and_is_up_only_once_they_can_take_work(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    broken = tmp_path / "broken.yaml"
    broken.write_text(BROKEN)
    ports = (free_port(), free_port(), free_port())
    platform = up(data_dir, ports, [ROOT / "examples" / "quickstart", broken], "up.log")
    try:
        agents = platform.agents()  # asked right after "pweza is up": they are ready by then
        printed = " ".join((data_dir / "up.log").read_text().split())  # rich wraps at 80 columns
        assert "started 3 agents for 2 pools" in printed
        assert "2/3 agents ready, 1 cannot serve" in printed
        assert "of pool default/broken cannot serve:" in printed and "missing_module_for_up" in printed
        ready = [a for a in agents if a["pool"] == "counters"]
        assert len(ready) == 2 and all(a["state"] == "idle" and a["freeSlots"] > 0 for a in ready), agents
        assert [a["state"] for a in agents if a["pool"] == "broken"] == ["unhealthy"]
    finally:
        stop(platform)


WORKFLOW = {
    "apiVersion": "pweza.ai/v1",
    "kind": "Workflow",
    "metadata": {"name": "echoing"},
    "spec": {
        "steps": [{"name": "say", "agent": {"pool": "echo"}, "input": {"word": "hi"}}],
        "outputs": {"said": "${{ steps.say.output.word }}"},
    },
}


def test_pweza_run_shows_a_step_waiting_for_an_agent_of_its_pool_until_one_comes(
    platform: Platform, tmp_path: Path
) -> None:
    platform.apply(template(), pool(), WORKFLOW)  # the pool has no agent yet
    env = {
        **os.environ, "PWEZA_URL": platform.url, "PWEZA_TOKEN": platform.admin_token,
        # rich draws its live display only on a terminal; these make it draw to the pipe too.
        "TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1", "COLUMNS": "200",
    }  # fmt: skip
    shown = tmp_path / "run.err"
    with shown.open("w") as err:
        run = subprocess.Popen(
            [sys.executable, "-m", "pweza", "run", "echoing"], env=env, stdout=subprocess.PIPE, stderr=err, text=True
        )
    try:
        wait_for(lambda: "waiting for an agent of pool echo (no agent connected)" in shown.read_text(), 60, "the wait")
        platform.start_agent("echo")
        out, _ = run.communicate(timeout=60)
    finally:
        run.kill()
    assert run.returncode == 0, shown.read_text()[-2000:]
    assert '"said": "hi"' in out


def test_task_submit_wait_says_the_task_waits_for_an_agent_of_its_pool(platform: Platform, tmp_path: Path) -> None:
    """It used to show a bar that did not move, for as long as no agent came (found by tests/docs)."""
    platform.apply(template(), pool())  # the pool has no agent yet
    env = {
        **os.environ, "PWEZA_URL": platform.url, "PWEZA_TOKEN": platform.admin_token,
        "TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1", "COLUMNS": "200",
    }  # fmt: skip
    shown = tmp_path / "submit.err"
    with shown.open("w") as err:
        submit = subprocess.Popen(
            [sys.executable, "-m", "pweza", "task", "submit", "--pool", "echo", "--input", '{"word": "hi"}', "--wait"],
            env=env, stdout=subprocess.PIPE, stderr=err, text=True,
        )  # fmt: skip
    try:
        wait_for(
            lambda: "pending, waiting for an agent of pool echo (no agent connected)" in shown.read_text(),
            60,
            "the wait",
        )
        platform.start_agent("echo")
        out, _ = submit.communicate(timeout=60)
    finally:
        submit.kill()
    assert submit.returncode == 0, shown.read_text()[-2000:]
    assert '"word": "hi"' in out
