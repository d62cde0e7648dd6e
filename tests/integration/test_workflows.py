"""Workflows on real processes: DAGs, fan-out, conditions, retries, approvals, delegation, crashes."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from pweza.testing import eventually
from pweza.testing.platform import Platform
from tests.conftest import pool, template

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
H = "pweza.testing.handlers:"


def workflow(name: str, steps: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "pweza.ai/v1",
        "kind": "Workflow",
        "metadata": {"name": name},
        "spec": {"steps": steps, **spec},
    }


def start(platform: Platform, name: str, inputs: dict[str, Any] | None = None) -> str:
    with platform.client() as client:
        response = client.post(f"/api/v1/workflows/{name}/runs", json={"inputs": inputs or {}})
        assert response.status_code == 201, response.text
        return str(response.json()["id"])


def get_run(platform: Platform, run_id: str) -> dict[str, Any]:
    for _ in range(50):
        try:
            with platform.client() as client:
                run: dict[str, Any] = client.get(f"/api/v1/runs/{run_id}").json()
                return run
        except httpx.HTTPError:
            time.sleep(0.2)  # the manager may be restarting
    raise TimeoutError("manager unreachable")


def wait_run(platform: Platform, run_id: str, timeout: float = 60, until: str | None = None) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = get_run(platform, run_id)
        if (until is None and run["state"] != "running") or (until and _step_states(run).get(until[0]) == until[1]):
            return run
        time.sleep(0.05)
    raise TimeoutError(f"run {run_id} still {get_run(platform, run_id)['state']} after {timeout}s")


def _step_states(run: dict[str, Any]) -> dict[str, str]:
    return {step["name"]: step["state"] for step in run["steps"]}


def steps_of(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {step["name"]: step for step in run["steps"]}


def setup_pool(platform: Platform, handler: str, name: str = "work", concurrency: int = 16, **spec: Any) -> None:
    platform.apply(
        template(name=f"{name}-t", handler=H + handler, concurrency=concurrency, **spec),
        pool(name=name, template_ref=f"{name}-t"),
    )
    platform.start_agent(name)


def test_diamond_dag_passes_outputs_along(platform: Platform) -> None:
    setup_pool(platform, "echo")
    platform.wait_for_agents(1)
    step = {"agent": {"pool": "work"}}
    platform.apply(
        workflow(
            "diamond",
            [
                {"name": "a", **step, "input": {"v": "${{ inputs.n }}"}},
                {"name": "b", **step, "depends": ["a"], "input": {"v": "${{ steps.a.output.v + 1 }}"}},
                {"name": "c", **step, "depends": ["a"], "input": {"v": "${{ steps.a.output.v * 10 }}"}},
                {
                    "name": "d",
                    **step,
                    "depends": ["b", "c"],
                    "input": {"v": "${{ steps.b.output.v + steps.c.output.v }}"},
                },
            ],
            inputs={"n": {"type": "integer"}},
            outputs={"total": "${{ steps.d.output.v }}", "text": "b=${{ steps.b.output.v }}"},
        )
    )
    run = wait_run(platform, start(platform, "diamond", {"n": 4}))
    assert run["state"] == "succeeded", run
    assert run["outputs"] == {"total": 45, "text": "b=5"}
    steps = steps_of(run)
    assert steps["d"]["startedAt"] >= max(steps["b"]["finishedAt"], steps["c"]["finishedAt"])
    assert steps["b"]["startedAt"] >= steps["a"]["finishedAt"]


def test_fan_out_of_200_respects_parallelism_and_gathers_in_order(platform: Platform, tmp_path: Path) -> None:
    setup_pool(platform, "interval", concurrency=64)
    platform.wait_for_agents(1)
    log = tmp_path / "intervals.log"
    platform.apply(
        workflow(
            "fan",
            [
                {
                    "name": "each",
                    "agent": {"pool": "work"},
                    "foreach": "inputs.items",
                    "parallelism": 10,
                    "input": {"seconds": 0.02, "log": str(log), "value": "${{ item * 2 }}"},
                }
            ],
            inputs={"items": {"type": "array"}},
            outputs={"doubled": "${{ steps.each.output }}"},
        )
    )
    run = wait_run(platform, start(platform, "fan", {"items": list(range(200))}), timeout=120)
    assert run["state"] == "succeeded"
    assert run["outputs"]["doubled"] == [n * 2 for n in range(200)]
    marks = sorted(
        [(float(s), 1) for s, _ in (line.split() for line in log.read_text().splitlines())]
        + [(float(e), -1) for _, e in (line.split() for line in log.read_text().splitlines())]
    )
    running = peak = 0
    for _, delta in marks:
        running += delta
        peak = max(peak, running)
    assert len(log.read_text().splitlines()) == 200
    assert 2 <= peak <= 10


def test_when_false_skips_a_step_and_its_only_dependents(platform: Platform) -> None:
    setup_pool(platform, "echo")
    platform.wait_for_agents(1)
    step = {"agent": {"pool": "work"}, "input": 1}
    platform.apply(
        workflow(
            "branches",
            [
                {"name": "start", **step},
                {"name": "urgent", **step, "depends": ["start"], "when": "inputs.urgent"},
                {"name": "page", **step, "depends": ["urgent"]},
                {"name": "normal", **step, "depends": ["start"], "when": "!inputs.urgent"},
                {"name": "join", **step, "depends": ["page", "normal"]},
            ],
            inputs={"urgent": {"type": "boolean", "default": False}},
            outputs={"paged": "${{ steps.page.state }}"},
        )
    )
    run = wait_run(platform, start(platform, "branches"))
    assert run["state"] == "succeeded"
    assert _step_states(run) == {
        "start": "succeeded",
        "urgent": "skipped",
        "page": "skipped",
        "normal": "succeeded",
        "join": "succeeded",
    }
    assert run["outputs"] == {"paged": "skipped"}


def test_failing_step_is_retried_until_it_succeeds(platform: Platform) -> None:
    setup_pool(platform, "fail_until")
    platform.wait_for_agents(1)
    platform.apply(
        workflow(
            "flaky",
            [
                {
                    "name": "flaky",
                    "agent": {"pool": "work"},
                    "input": {"succeed_on": 3},
                    "retry": {"limit": 3, "backoff": "50ms"},
                }
            ],
        )
    )
    run = wait_run(platform, start(platform, "flaky"))
    assert run["state"] == "succeeded"
    assert steps_of(run)["flaky"]["attempts"] == 3
    assert steps_of(run)["flaky"]["output"] == {"attempt": 3}


def test_step_timeout_fails_the_run_naming_the_step(platform: Platform) -> None:
    setup_pool(platform, "sleep")
    platform.wait_for_agents(1)
    platform.apply(
        workflow(
            "slow",
            [
                {
                    "name": "slow",
                    "agent": {"pool": "work"},
                    "input": {"seconds": 30},
                    "timeout": "300ms",
                    "retry": {"limit": 0},
                }
            ],
        )
    )
    run = wait_run(platform, start(platform, "slow"), timeout=30)
    assert run["state"] == "failed"
    assert steps_of(run)["slow"]["state"] == "timed_out"
    assert "'slow' timed_out" in run["error"]


def _approval_workflow(platform: Platform) -> None:
    setup_pool(platform, "echo")
    platform.wait_for_agents(1)
    platform.apply(
        workflow(
            "gated",
            [
                {"name": "draft", "agent": {"pool": "work"}, "input": {"text": "hello"}},
                {"name": "review", "depends": ["draft"], "approval": {"message": "publish?", "timeout": "1h"}},
                {
                    "name": "publish",
                    "depends": ["review"],
                    "agent": {"pool": "work"},
                    "input": "${{ steps.review.output }}",
                },
            ],
        )
    )


def test_approval_approved_lets_the_run_finish(platform: Platform) -> None:
    _approval_workflow(platform)
    run_id = start(platform, "gated")
    waiting = wait_run(platform, run_id, until=("review", "waiting_approval"))
    assert waiting["state"] == "running"
    assert steps_of(waiting)["review"]["approval"]["message"] == "publish?"
    with platform.client() as client:
        response = client.post(f"/api/v1/runs/{run_id}/steps/review/approve", json={"comment": "ship it"})
        assert response.status_code == 200
        assert client.post(f"/api/v1/runs/{run_id}/steps/review/approve", json={}).status_code == 409
    run = wait_run(platform, run_id)
    assert run["state"] == "succeeded"
    published = steps_of(run)["publish"]["output"]
    assert published["decision"] == "approved" and published["comment"] == "ship it"


def test_approval_rejected_fails_the_run(platform: Platform) -> None:
    _approval_workflow(platform)
    run_id = start(platform, "gated")
    wait_run(platform, run_id, until=("review", "waiting_approval"))
    with platform.client() as client:
        client.post(f"/api/v1/runs/{run_id}/steps/review/reject", json={"comment": "not yet"}).raise_for_status()
    run = wait_run(platform, run_id)
    assert run["state"] == "failed"
    assert steps_of(run)["review"]["state"] == "failed"
    assert steps_of(run)["review"]["error"] == {"type": "Rejected", "message": "not yet"}
    assert steps_of(run)["publish"]["state"] == "pending"


def test_cancel_mid_run_cancels_the_running_step_on_its_agent(platform: Platform, tmp_path: Path) -> None:
    setup_pool(platform, "sleep")
    platform.wait_for_agents(1)
    marker = tmp_path / "cancelled"
    platform.apply(
        workflow(
            "long",
            [
                {"name": "wait", "agent": {"pool": "work"}, "input": {"seconds": 120, "marker": str(marker)}},
                {"name": "after", "agent": {"pool": "work"}, "depends": ["wait"], "input": {}},
            ],
        )
    )
    run_id = start(platform, "long")
    wait_run(platform, run_id, until=("wait", "running"))
    task_id = steps_of(get_run(platform, run_id))["wait"]["taskId"]
    with platform.client() as client:
        # Cancelled once its handler has begun (the agent said so), so the handler sees it.
        eventually(lambda: client.get(f"/api/v1/tasks/{task_id}").json()["state"] == "running", timeout=30,
                   what="the handler to begin")  # fmt: skip
        assert client.post(f"/api/v1/runs/{run_id}/cancel").json()["state"] == "cancelled"
        task = platform.wait_task(task_id, timeout=20)
    run = get_run(platform, run_id)
    assert _step_states(run) == {"wait": "cancelled", "after": "pending"}
    assert task["state"] == "cancelled"
    assert marker.read_text() == "cancelled"


def test_retry_of_a_failed_step_keeps_earlier_results(platform: Platform, tmp_path: Path) -> None:
    flag = tmp_path / "broken"
    flag.write_text("yes")
    log = tmp_path / "first.log"
    platform.apply(template(name="rec", handler=H + "record", concurrency=4), pool(name="rec", template_ref="rec"))
    platform.start_agent("rec")
    setup_pool(platform, "fail_if_file")
    platform.wait_for_agents(2)
    platform.apply(
        workflow(
            "fixable",
            [
                {"name": "first", "agent": {"pool": "rec"}, "input": {"log": str(log), "value": 7}},
                {"name": "second", "agent": {"pool": "work"}, "depends": ["first"], "input": {"flag": str(flag)}},
                {
                    "name": "third",
                    "agent": {"pool": "rec"},
                    "depends": ["second"],
                    "input": {"log": str(log), "value": 8},
                },
            ],
            outputs={"first": "${{ steps.first.output.value }}", "third": "${{ steps.third.output.value }}"},
        )
    )
    run_id = start(platform, "fixable")
    failed = wait_run(platform, run_id)
    assert failed["state"] == "failed"
    assert _step_states(failed) == {"first": "succeeded", "second": "failed", "third": "pending"}
    flag.unlink()
    with platform.client() as client:
        client.post(f"/api/v1/runs/{run_id}/retry", json={"step": "second"}).raise_for_status()
    run = wait_run(platform, run_id)
    assert run["state"] == "succeeded"
    assert run["outputs"] == {"first": 7, "third": 8}
    assert steps_of(run)["second"]["retries"] == 1
    assert len(log.read_text().splitlines()) == 2, "the first step must not run again"
    with platform.client() as client:
        history = [
            e["type"] for e in client.get(f"/api/v1/runs/{run_id}/events", params={"follow": False}).json()["items"]
        ]
    assert history.count("RunFailed") == 1 and "RunRetried" in history and history[-1] == "RunSucceeded"


def test_delegation_three_levels_deep(platform: Platform) -> None:
    for name in ("coord", "mid", "low", "leaf"):
        platform.apply(
            template(name=f"{name}-t", handler=H + "delegate_down", concurrency=4),
            pool(name=name, template_ref=f"{name}-t"),
        )
        platform.start_agent(name)
    platform.wait_for_agents(4)
    platform.apply(
        workflow(
            "deep",
            [
                {
                    "name": "coordinate",
                    "agent": {"pool": "coord"},
                    "input": {"pools": ["mid", "low", "leaf"], "value": 42},
                }
            ],
        )
    )
    run = wait_run(platform, start(platform, "deep"))
    assert run["state"] == "succeeded", run
    step = steps_of(run)["coordinate"]
    assert step["output"] == {"via": "mid", "child": {"via": "low", "child": {"via": "leaf", "child": {"leaf": 42}}}}
    level1 = step["children"]
    assert [c["pool"] for c in level1] == ["mid"]
    assert [c["pool"] for c in level1[0]["children"]] == ["low"]
    assert [c["pool"] for c in level1[0]["children"][0]["children"]] == ["leaf"]
    assert all(c["state"] == "succeeded" for c in level1)


def test_cancelling_a_run_cancels_its_delegated_children(platform: Platform) -> None:
    platform.apply(template(name="coord-t", handler=H + "delegate_down"), pool(name="coord", template_ref="coord-t"))
    platform.apply(template(name="slow-t", handler=H + "sleep"), pool(name="slow", template_ref="slow-t"))
    platform.start_agent("coord")
    platform.start_agent("slow")
    platform.wait_for_agents(2)
    platform.apply(
        workflow(
            "cascade",
            [{"name": "c", "agent": {"pool": "coord"}, "input": {"pools": ["slow"], "value": {"seconds": 60}}}],
        )
    )
    run_id = start(platform, "cascade")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not steps_of(get_run(platform, run_id))["c"].get("children"):
        time.sleep(0.05)
    with platform.client() as client:
        client.post(f"/api/v1/runs/{run_id}/cancel").raise_for_status()
    child = steps_of(get_run(platform, run_id))["c"]["children"][0]
    assert platform.wait_task(child["taskId"], timeout=20)["state"] == "cancelled"


def test_manager_killed_at_random_moments_every_run_still_succeeds(platform: Platform) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    setup_pool(platform, "add_one", concurrency=16)
    platform.wait_for_agents(1)
    steps = [{"name": "s0", "agent": {"pool": "work"}, "input": {"v": 0, "seconds": 0.01}}]
    for n in range(1, 50):
        steps.append(
            {
                "name": f"s{n}",
                "agent": {"pool": "work"},
                "depends": [f"s{n - 1}"],
                "input": {"v": f"${{{{ steps.s{n - 1}.output.v }}}}", "seconds": 0.05},
            }
        )
    platform.apply(workflow("chain", steps, outputs={"v": "${{ steps.s49.output.v }}"}))
    runs = [start(platform, "chain") for _ in range(10)]
    for _ in range(10):
        time.sleep(rng.uniform(0.05, 0.8))
        platform.kill_manager()
        platform.start_manager()
    finals = [wait_run(platform, run_id, timeout=180) for run_id in runs]
    for run in finals:
        assert run["state"] == "succeeded", (seed, run["id"], run["error"])
        assert run["outputs"] == {"v": 50}
        for n, step in enumerate(run["steps"]):
            assert step["output"] == {"v": n + 1}, (seed, run["id"], step)
            assert step["attempts"] >= 1


def _overlap(log: Path) -> int:
    marks = []
    for line in log.read_text().splitlines():
        start, end = line.split()
        marks += [(float(start), 1), (float(end), -1)]
    running = peak = 0
    for _, delta in sorted(marks):
        running += delta
        peak = max(peak, running)
    return peak


def test_run_concurrency_caps_steps_in_flight(platform: Platform, tmp_path: Path) -> None:
    setup_pool(platform, "interval", concurrency=16)
    platform.wait_for_agents(1)
    log = tmp_path / "steps.log"
    steps = [
        {"name": f"s{n}", "agent": {"pool": "work"}, "input": {"seconds": 0.2, "log": str(log), "value": n}}
        for n in range(6)
    ]
    platform.apply(workflow("capped", steps, concurrency=2))
    run = wait_run(platform, start(platform, "capped"))
    assert run["state"] == "succeeded"
    assert _overlap(log) == 2


def test_steps_find_agents_by_template_or_capabilities(platform: Platform) -> None:
    platform.apply(
        template(name="speaker", handler=H + "echo", capabilities=["speech", "text"]),
        pool(name="voices", template_ref="speaker"),
    )
    platform.start_agent("voices")
    platform.wait_for_agents(1)
    platform.apply(
        workflow(
            "finders",
            [
                {"name": "by_template", "agent": {"template": "speaker"}, "input": "t"},
                {"name": "by_capability", "agent": {"capabilities": ["speech"]}, "input": "c"},
                {"name": "nobody", "agent": {"capabilities": ["flight"]}, "input": "x", "continueOnFailure": True},
            ],
        )
    )
    run = wait_run(platform, start(platform, "finders"))
    steps = steps_of(run)
    assert (steps["by_template"]["output"], steps["by_capability"]["output"]) == ("t", "c")
    assert steps["nobody"]["state"] == "failed"
    assert "no AgentPool in namespace 'default' provides capabilities ['flight']" in steps["nobody"]["error"]["message"]
    assert run["state"] == "succeeded", "continueOnFailure lets the run finish"


def test_approval_deadline_rejects_and_run_timeout_ends_the_run(platform: Platform) -> None:
    setup_pool(platform, "sleep")
    platform.wait_for_agents(1)
    platform.apply(workflow("deadline", [{"name": "gate", "approval": {"message": "quick!", "timeout": "500ms"}}]))
    platform.apply(
        workflow("overall", [{"name": "long", "agent": {"pool": "work"}, "input": {"seconds": 60}}], timeout="1s")
    )
    gated = wait_run(platform, start(platform, "deadline"), timeout=30)
    assert gated["state"] == "failed"
    assert steps_of(gated)["gate"]["approval"]["by"] == "deadline"
    timed = wait_run(platform, start(platform, "overall"), timeout=30)
    assert timed["state"] == "timed_out"
    assert steps_of(timed)["long"]["state"] == "cancelled"


def test_retry_of_a_failed_run_continues_from_where_it_failed(platform: Platform, tmp_path: Path) -> None:
    flag = tmp_path / "broken"
    flag.write_text("yes")
    setup_pool(platform, "fail_if_file")
    platform.wait_for_agents(1)
    platform.apply(
        workflow(
            "resumable",
            [
                {"name": "one", "agent": {"pool": "work"}, "input": {"flag": str(tmp_path / "never")}},
                {"name": "two", "agent": {"pool": "work"}, "depends": ["one"], "input": {"flag": str(flag)}},
                {
                    "name": "three",
                    "agent": {"pool": "work"},
                    "depends": ["two"],
                    "input": {"flag": str(tmp_path / "never")},
                },
            ],
        )
    )
    run_id = start(platform, "resumable")
    assert wait_run(platform, run_id)["state"] == "failed"
    first_task = steps_of(get_run(platform, run_id))["one"]["taskId"]
    flag.unlink()
    with platform.client() as client:
        retried = client.post(f"/api/v1/runs/{run_id}/retry", json={})
        assert retried.status_code == 200
    run = wait_run(platform, run_id)
    assert run["state"] == "succeeded" and run["retries"] == 1
    steps = steps_of(run)
    assert steps["one"]["taskId"] == first_task and steps["one"]["retries"] == 0, "the succeeded step is kept"
    assert steps["two"]["retries"] == 1 and steps["three"]["retries"] == 1
    with platform.client() as client:
        again = client.post(f"/api/v1/runs/{run_id}/retry", json={})
    assert again.status_code == 409, "a succeeded run has nothing to retry"
