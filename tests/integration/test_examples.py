"""The examples/ workflows, run end to end on a real manager and real agent processes.

Each example folder is applied as a user would (`agents.yaml`, then `workflow.yaml`),
with one agent per pool and the folder on the agents' PYTHONPATH, as `pweza up` does.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from pweza.testing.platform import Platform

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
RUN_TIMEOUT = 30.0
CATEGORIES = ("billing", "technical", "account", "other")


def start_example(name: str, workdir: Path) -> Platform:
    folder = EXAMPLES / name
    python_path = os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH", "")) if p)
    platform = Platform(workdir, env={"PYTHONPATH": python_path})
    platform.start_manager()
    try:
        pools: list[str] = []
        for file in ("agents.yaml", "workflow.yaml"):
            text = (folder / file).read_text()
            platform.apply_yaml(text)
            pools += [doc["metadata"]["name"] for doc in yaml.safe_load_all(text) if doc and doc["kind"] == "AgentPool"]
        for pool in pools:
            platform.start_agent(pool)
        platform.wait_for_agents(len(pools), timeout=60)
    except BaseException:
        platform.stop()
        raise
    return platform


@pytest.fixture(scope="module")
def triage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    platform = start_example("support-triage", tmp_path_factory.mktemp("triage"))
    yield platform
    platform.stop()


@pytest.fixture(scope="module")
def research(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    platform = start_example("research-pipeline", tmp_path_factory.mktemp("research"))
    yield platform
    platform.stop()


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    platform = start_example("data-pipeline", tmp_path_factory.mktemp("data"))
    yield platform
    platform.stop()


def start_run(client: httpx.Client, workflow: str, inputs: dict[str, Any] | None = None) -> str:
    response = client.post(f"/api/v1/workflows/{workflow}/runs", json={"inputs": inputs or {}})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def wait_run(
    client: httpx.Client,
    run_id: str,
    until: Callable[[dict[str, Any]], bool] = lambda run: run["state"] != "running",
    timeout: float = RUN_TIMEOUT,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    run: dict[str, Any] = {}
    while time.monotonic() < deadline:
        run = client.get(f"/api/v1/runs/{run_id}").json()
        if until(run):
            return run
        time.sleep(0.1)
    states = {step["name"]: step["state"] for step in run.get("steps", [])}
    raise TimeoutError(f"run {run_id} still {run.get('state')} after {timeout}s: {states}")


def steps_of(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {step["name"]: step for step in run["steps"]}


def ticket(id_: str, subject: str, body: str) -> dict[str, str]:
    return {"id": id_, "customer": "Test Co", "subject": subject, "body": body}


# -- support-triage ----------------------------------------------------------------------------


def test_triage_classifies_routes_pages_and_reports(triage: Platform) -> None:
    with triage.client() as client:
        run = wait_run(client, start_run(client, "support-triage"))
    assert run["state"] == "succeeded", run["error"]
    steps = steps_of(run)
    assert [steps[name]["state"] for name in ("classify", "route", "escalate", "summarize", "report")] == [
        "succeeded"
    ] * 5

    classified = steps["classify"]["output"]
    assert steps["classify"]["items"] == len(classified) == 12
    assert [t["id"] for t in classified] == [f"T-{n}" for n in range(1001, 1013)], "foreach keeps item order"
    present = {t["category"] for t in classified}
    assert present == set(CATEGORIES)

    report: str = run["outputs"]["report"]
    counts = run["outputs"]["counts"]
    assert counts == {"billing": 4, "technical": 3, "account": 4, "other": 1}
    assert report.startswith("# Support triage report")
    for category in present:
        assert f"### {category} ({counts[category]})" in report
        assert f"| {category} | {counts[category]} |" in report

    urgent = {t["id"] for t in classified if t["urgency"] == "urgent"}
    assert urgent == {"T-1002", "T-1004", "T-1007", "T-1012"}
    paged = steps["escalate"]["output"]["paged"]
    assert {p["rota"] for p in paged} == {"sre-primary", "identity-security"}
    assert {t for p in paged for t in p["tickets"]} == urgent
    for ticket_id in urgent:
        assert f"**{ticket_id}**" in report
    assert "paged Amina Odhiambo (sre-primary" in report

    # The coordinator delegated one summary per non-empty queue to the writers pool.
    children = steps["summarize"]["children"]
    assert len(children) == steps["summarize"]["output"]["delegated"] == 4
    assert {child["pool"] for child in children} == {"writers"}
    assert {child["state"] for child in children} == {"succeeded"}
    assert all(child["taskId"].startswith(steps["summarize"]["taskId"]) for child in children)
    assert {child["output"]["queue"] for child in children} == set(CATEGORIES)
    for child in children:
        assert child["output"]["summary"] in report


def test_triage_without_urgent_tickets_skips_escalation(triage: Platform) -> None:
    calm = [
        ticket("Q-1", "Question about my invoice", "Which VAT rate was applied on the last invoice?"),
        ticket("Q-2", "Change my password", "How often should I change my password?"),
        ticket("Q-3", "Dark mode?", "Would love a dark theme."),
    ]
    with triage.client() as client:
        run = wait_run(client, start_run(client, "support-triage", {"tickets": calm}))
    assert run["state"] == "succeeded", run["error"]
    steps = steps_of(run)
    assert steps["escalate"]["state"] == "skipped"
    assert steps["escalate"]["output"] is None
    # report depends on summarize (succeeded) and escalate (skipped): it still runs.
    assert steps["report"]["state"] == "succeeded"
    assert run["outputs"]["counts"] == {"billing": 1, "technical": 0, "account": 1, "other": 1}
    report = run["outputs"]["report"]
    assert "**0 urgent**" in report
    assert "None: nobody was paged." in report
    assert "### technical" not in report, "an empty queue gets no summary"
    assert len(steps["summarize"]["children"]) == 3


# -- research-pipeline -------------------------------------------------------------------------


def test_research_waits_for_approval_then_publishes(research: Platform) -> None:
    with research.client() as client:
        run_id = start_run(client, "research-pipeline", {"topic": "vector databases", "questions": 4})
        waiting = wait_run(client, run_id, lambda run: steps_of(run)["review"]["state"] != "pending")
        steps = steps_of(waiting)
        assert waiting["state"] == "running"
        assert steps["review"]["state"] == "waiting_approval"
        assert steps["review"]["approval"]["message"].startswith("Read the draft")
        assert steps["research"]["items"] == 4
        assert steps["draft"]["state"] == "succeeded"
        assert steps["draft"]["output"]["unsupported"] == []
        assert steps["publish"]["state"] == "pending"

        time.sleep(0.5)  # nothing moves while the gate is closed
        assert steps_of(client.get(f"/api/v1/runs/{run_id}").json())["publish"]["state"] == "pending"

        approved = client.post(f"/api/v1/runs/{run_id}/steps/review/approve", json={"comment": "ship it"})
        assert approved.status_code == 200, approved.text
        run = wait_run(client, run_id)
    assert run["state"] == "succeeded", run["error"]
    steps = steps_of(run)
    assert steps["review"]["approval"]["decision"] == "approved"
    assert run["outputs"]["title"] == "Vector databases: a 4-question briefing"
    assert run["outputs"]["slug"] == "vector-databases-a-4-question-briefing"
    assert run["outputs"]["words"] > 150
    assert steps["publish"]["output"]["approvedBy"] == "test-admin"
    assert steps["publish"]["output"]["comment"] == "ship it"


def test_research_rejected_draft_fails_the_run(research: Platform) -> None:
    with research.client() as client:
        run_id = start_run(client, "research-pipeline", {"topic": "quantum knitting", "questions": 2})
        waiting = wait_run(client, run_id, lambda run: steps_of(run)["review"]["state"] == "waiting_approval")
        assert steps_of(waiting)["draft"]["output"]["unsupported"] == [1, 2]
        rejected = client.post(f"/api/v1/runs/{run_id}/steps/review/reject", json={"comment": "no sources"})
        assert rejected.status_code == 200, rejected.text
        run = wait_run(client, run_id)
    assert run["state"] == "failed"
    steps = steps_of(run)
    assert steps["review"]["state"] == "failed"
    assert steps["review"]["error"]["type"] == "Rejected"
    assert "no sources" in run["error"]
    assert steps["publish"]["state"] != "succeeded"
    assert run["outputs"] is None


def test_research_rejects_a_bad_input_with_a_non_retryable_failure(research: Platform) -> None:
    with research.client() as client:
        run = wait_run(client, start_run(client, "research-pipeline", {"topic": "heat pumps", "questions": 9}))
    assert run["state"] == "failed"
    plan = steps_of(run)["plan"]
    assert plan["state"] == "failed"
    assert plan["attempts"] == 1, "an invalid input is not retried"
    assert "questions must be 1 to 6" in plan["error"]["message"]


# -- data-pipeline -----------------------------------------------------------------------------


def test_data_pipeline_retries_the_flaky_step_and_tolerates_the_slow_check(data: Platform) -> None:
    with data.client() as client:
        run = wait_run(client, start_run(client, "data-pipeline"))
        steps = steps_of(run)
        history = client.get(f"/api/v1/tasks/{steps['transform']['taskId']}").json()["attemptHistory"]
    assert run["state"] == "succeeded", run["error"]
    assert steps["extract"]["items"] == 4
    assert steps["transform"]["state"] == "succeeded"
    assert steps["transform"]["attempts"] == 3
    assert steps["transform"]["output"]["attempt"] == 3
    assert [a["state"] for a in history] == ["failed", "failed", "succeeded"]
    assert history[0]["error"]["type"] == "ConnectionError"
    assert steps["enrich"]["state"] == "succeeded"

    check = steps["slow_quality_check"]
    assert check["state"] == "timed_out"
    assert check["attempts"] == 1, "retry limit 0: a timed-out check is not run again"
    assert check["finishedAt"] - check["startedAt"] < 5

    assert steps["load"]["state"] == "succeeded"
    outputs = run["outputs"]
    assert outputs["quality_check"] == "timed_out"
    assert outputs["rows_loaded"] == sum(outputs["per_source"].values()) == 104
    assert outputs["per_source"] == {"crm": 22, "marketplace": 28, "pos": 17, "webshop": 37}
    assert outputs["dropped"] == {"duplicate": 11, "missing_amount": 8}
    assert steps["load"]["output"]["quality"] == "unverified (timed_out)"


def test_data_pipeline_with_a_fast_scan_verifies_quality(data: Platform) -> None:
    sources = [{"name": "crm", "rows": 10}, {"name": "pos", "rows": 5}]
    with data.client() as client:
        run = wait_run(client, start_run(client, "data-pipeline", {"sources": sources, "quality_scan_seconds": 0.2}))
    assert run["state"] == "succeeded", run["error"]
    steps = steps_of(run)
    assert steps["slow_quality_check"]["state"] == "succeeded"
    assert steps["slow_quality_check"]["output"]["passed"] is True
    assert run["outputs"]["quality_check"] == "succeeded"
    assert steps["load"]["output"]["quality"] == "succeeded"
    assert set(run["outputs"]["per_source"]) == {"crm", "pos"}
