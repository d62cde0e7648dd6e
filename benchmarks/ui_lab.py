"""A manager for the web UI's tests, benchmark and screenshots: the support-triage and
research-pipeline examples with one agent per pool, plus a few workflows made to show what the
UI must handle (a step that fails until a file is removed, an output holding HTML, a 300-step
DAG, a 1,000-item foreach), and a headless Chromium (Debian's) driven by Playwright.

    from ui_lab import lab, browser   # benchmarks/ on sys.path, or benchmarks.ui_lab from the repo root
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from pweza.testing.platform import Platform

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
EXAMPLE_FOLDERS = ("support-triage", "research-pipeline")
WIDE_DAG_STEPS = 300
FAN_OUT_ITEMS = 1000
# What a step's output holds to check it stays text: markup that would run script if rendered.
HOSTILE_OUTPUT = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2"><b>bold</b>'


def _template(name: str, handler: str, concurrency: int = 8) -> dict[str, Any]:
    return {
        "apiVersion": "pweza.ai/v1",
        "kind": "AgentTemplate",
        "metadata": {"name": name},
        "spec": {
            "runtime": {"kind": "python", "handler": f"pweza.testing.handlers:{handler}"},
            "concurrency": concurrency,
            "timeout": "30s",
        },
    }


def _pool(name: str, template: str) -> dict[str, Any]:
    return {
        "apiVersion": "pweza.ai/v1",
        "kind": "AgentPool",
        "metadata": {"name": name},
        "spec": {"templateRef": template},
    }


def _workflow(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "pweza.ai/v1", "kind": "Workflow", "metadata": {"name": name}, "spec": spec}


def wide_dag(steps: int = WIDE_DAG_STEPS) -> dict[str, Any]:
    """`steps` steps in layers of about 20, each depending on two steps of the layer above, so the
    layout has long layers and crossings to reduce."""
    width = 20
    spec_steps: list[dict[str, Any]] = []
    for index in range(steps):
        layer, slot = divmod(index, width)
        depends = (
            []
            if layer == 0
            else sorted({f"s{(layer - 1) * width + slot}", f"s{(layer - 1) * width + (slot * 7 + 3) % width}"})
        )
        spec_steps.append({"name": f"s{index}", "depends": depends, "agent": {"pool": "lab-echo"}, "input": index})
    return _workflow("wide-dag", {"steps": spec_steps})


def lab_documents(flag: Path) -> list[dict[str, Any]]:
    return [
        _template("lab-echoer", "echo", concurrency=64),
        _pool("lab-echo", "lab-echoer"),
        _template("lab-fragile", "fail_if_file"),
        _pool("lab-fragile", "lab-fragile"),
        _workflow(
            "hostile-output",
            {"steps": [{"name": "shout", "agent": {"pool": "lab-echo"}, "input": {"html": HOSTILE_OUTPUT}}]},
        ),
        _workflow(
            "fragile",
            {
                "steps": [
                    {"name": "prepare", "agent": {"pool": "lab-echo"}, "input": "ready"},
                    {
                        "name": "fix_me",
                        "depends": ["prepare"],
                        "agent": {"pool": "lab-fragile"},
                        "input": {"flag": str(flag)},
                    },
                ]
            },
        ),
        _workflow(
            "fan-out",
            {
                "inputs": {"items": {"type": "array", "default": list(range(FAN_OUT_ITEMS))}},
                "steps": [
                    {
                        "name": "each",
                        "agent": {"pool": "lab-echo"},
                        "foreach": "${{ inputs.items }}",
                        "parallelism": 64,
                        "input": "${{ item }}",
                    },
                    {"name": "after", "depends": ["each"], "agent": {"pool": "lab-echo"}, "input": "done"},
                ],
            },
        ),
        wide_dag(),
    ]


class Lab:
    def __init__(self, platform: Platform, flag: Path) -> None:
        self.platform = platform
        self.flag = flag  # while it exists, the fragile workflow's fix_me step fails

    @property
    def url(self) -> str:
        return self.platform.url

    def token(self, role: str) -> str:
        with self.platform.client() as client:
            response = client.post("/api/v1/tokens", json={"name": f"ui-{role}", "role": role})
            response.raise_for_status()
            return str(response.json()["token"])

    def start_run(self, workflow: str, inputs: dict[str, Any] | None = None) -> str:
        with self.platform.client() as client:
            response = client.post(f"/api/v1/workflows/{workflow}/runs", json={"inputs": inputs or {}})
            response.raise_for_status()
            return str(response.json()["id"])


@contextmanager
def lab(workdir: Path) -> Iterator[Lab]:
    """The manager with the examples and the lab's workflows, and one agent per pool, connected."""
    folders = [EXAMPLES / name for name in EXAMPLE_FOLDERS]
    python_path = os.pathsep.join([*map(str, folders), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    platform = Platform(workdir, env={"PYTHONPATH": python_path})
    try:
        platform.start_manager()
        flag = workdir / "broken"
        flag.write_text("remove me to fix the fragile step")
        documents: list[dict[str, Any]] = []
        for folder in folders:
            for file in ("agents.yaml", "workflow.yaml"):
                documents += [doc for doc in yaml.safe_load_all((folder / file).read_text()) if doc]
        documents += lab_documents(flag)
        platform.apply(*documents)
        pools = [doc["metadata"]["name"] for doc in documents if doc["kind"] == "AgentPool"]
        for pool in pools:
            platform.start_agent(pool)
        platform.wait_for_agents(len(pools), timeout=90)
        yield Lab(platform, flag)
    finally:
        platform.stop()


def chromium() -> str | None:
    return next((found for name in ("chromium", "chromium-browser") if (found := shutil.which(name))), None)


BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
VIEWPORT = {"width": 1280, "height": 900}
