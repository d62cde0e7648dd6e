"""examples/llm-research run as `make demo-llm` runs it (scripts/demo_llm.py: `pweza up`, `pweza run`),
on the session's real local model: the run succeeds, the answer follows the researcher's
outputSchema, the researcher's journal shows its call of the writers pool, and that call is a
child task on the writers pool whose journal shows the notes server's search_notes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from pweza.testing.local_model import LocalModel

pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]
ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "llm-research"


def output_schema(template: str) -> dict[str, Any]:
    documents = yaml.safe_load_all((EXAMPLE / "agents.yaml").read_text())
    found = next(d for d in documents if d["kind"] == "AgentTemplate" and d["metadata"]["name"] == template)
    schema: dict[str, Any] = found["spec"]["runtime"]["outputSchema"]
    return schema


def test_the_llm_research_demo_delegates_to_a_writer_who_searches_the_notes(
    local_model: LocalModel, tmp_path: Path
) -> None:
    report_path = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo_llm.py"), "--base-url", local_model.base_url,
         "--report", str(report_path)],
        capture_output=True, text=True, timeout=360,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(report_path.read_text())
    run = report["run"]
    assert run["state"] == "succeeded", run.get("error")
    answer = report["outputs"]["answer"]
    assert list(Draft202012Validator(output_schema("researcher")).iter_errors(answer)) == []
    assert run["outputs"]["answer"] == answer

    (step,) = run["steps"]
    calls = [(c["kind"], c.get("tool")) for c in step["journal"]]
    assert ("tool", "writers") in calls, step["journal"]
    assert calls[-1][0] == "model", "the answer comes from a model call after the delegation"
    assert report["outputs"]["usage"]["toolCalls"] >= 1

    writers = report["writerTasks"]
    assert writers, "the writers pool got no delegated task"
    for task in writers:
        assert (task["pool"], task["parentId"], task["state"]) == ("writers", step["taskId"], "succeeded")
    searches = [c for task in writers for c in task["journal"] if c["kind"] == "tool"]
    assert searches and all(c["tool"] == "search_notes" and not c["isError"] for c in searches), searches
    found = json.loads(searches[0]["response"]["content"])  # the notes server's answer, as it wrote it
    assert isinstance(found["query"], str) and isinstance(found["notes"], list), found
    assert "demo-llm finished" in done.stdout
