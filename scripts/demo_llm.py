"""`make demo-llm`: examples/llm-research end to end on a real language model.

Starts the local model (SmolLM2-135M on llama.cpp's server, installed by `make model`) unless
`--base-url` names a running OpenAI-compatible server, then `pweza up` with the example in a
throwaway data directory on free loopback ports, runs the workflow with the CLI as a person
would, shows the answer and the journal of calls, and checks their structure: the answer follows
the researcher's outputSchema, the researcher delegated to the writers pool, the writer called
the notes server. Exits 0 when all of that holds, 1 naming what did not. Everything is bounded
in time, and every process it started is stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import yaml
from demo import wait_ready  # scripts/demo.py, next to this file
from jsonschema import Draft202012Validator

from pweza.testing.child_processes import log_tail
from pweza.testing.local_model import ENSURE_COMMAND, LocalModel, local_model_dir
from pweza.testing.processes import free_port, stop_processes

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "llm-research"
RUN_TIMEOUT = 240.0  # the whole run; one takes well under a minute on a quiet 2-core machine


class DemoFailed(Exception):
    """What went wrong, for the person who ran the demo."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", help="an OpenAI-compatible server (…/v1) to use instead of the local model")
    parser.add_argument("--model", default=LocalModel.model, help="the model name to ask --base-url for")
    parser.add_argument("--report", type=Path, help="also write the run and the writer's tasks here, as JSON")
    args = parser.parse_args()
    started = time.monotonic()
    try:
        with ExitStack() as stack:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pweza-demo-llm-")))
            base_url = args.base_url or stack.enter_context(start_model(tmp)).base_url
            report = demo(tmp, base_url, args.model, stack)
    except DemoFailed as failure:
        print(f"\ndemo-llm failed: {failure}", file=sys.stderr, flush=True)
        return 1
    if args.report:
        args.report.write_text(json.dumps(report, indent=2))
    print(f"\ndemo-llm finished in {time.monotonic() - started:.0f}s", flush=True)
    return 0


def start_model(tmp: Path) -> LocalModel:
    if local_model_dir() is None:
        raise DemoFailed(f"the local model is not installed; run {ENSURE_COMMAND}")
    print("starting the local model (SmolLM2-135M on llama.cpp's server)", flush=True)
    return LocalModel(log_path=tmp / "local-model.log")


def demo(tmp: Path, base_url: str, model: str, stack: ExitStack) -> dict[str, Any]:
    model_file = tmp / "model.yaml"
    config = yaml.safe_load((EXAMPLE / "model.yaml").read_text())
    config["spec"].update(baseUrl=base_url, model=model)
    model_file.write_text(yaml.safe_dump(config))
    data_dir = tmp / "data"
    http, grpc, metrics = free_port(), free_port(), free_port()
    # The notes ToolServer's command is `python`: this interpreter, which has the mcp package.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {**os.environ, "PWEZA_DATA_DIR": str(data_dir), "PATH": path}
    files = [model_file, *(EXAMPLE / name for name in ("toolservers.yaml", "agents.yaml", "workflow.yaml"))]
    print("$ pweza up -f <the local model's ModelConfig> -f examples/llm-research/...   (in the background)")
    up = subprocess.Popen(
        [sys.executable, "-m", "pweza", "up", *(arg for file in files for arg in ("-f", str(file))),
         "--http-port", str(http), "--grpc-port", str(grpc), "--metrics-port", str(metrics)],
        env=env, cwd=ROOT, stdout=(tmp / "up.log").open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    stack.callback(stop_processes, [up], 60.0)
    url = f"http://127.0.0.1:{http}"
    try:
        wait_ready(url, up, data_dir)
    except SystemExit as failure:
        raise DemoFailed(f"{failure}:\n{log_tail(tmp / 'up.log')}") from None
    token = (data_dir / "admin-token").read_text()
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=10) as api:
        wait_idle(api, ["researchers", "writers"], data_dir / "logs")
        pweza("get", "agentpools", env=env)
        pweza("get", "toolservers", env=env)
        print("\n$ pweza run examples/llm-research/workflow.yaml", flush=True)
        done = subprocess.run(
            [sys.executable, "-m", "pweza", "run", str(EXAMPLE / "workflow.yaml"), "-o", "json"],
            env=env, text=True, stdout=subprocess.PIPE, timeout=RUN_TIMEOUT + 30,
        )  # fmt: skip
        run = api.get("/api/v1/runs", params={"limit": 1}).json()["items"][0]
        run = api.get(f"/api/v1/runs/{run['id']}").json()
        step = next(s for s in run["steps"] if s["name"] == "research")
        children = [api.get(f"/api/v1/tasks/{t['id']}").json() for t in children_of(api, step.get("taskId"))]
        if done.returncode != 0:
            pweza("runs", "get", run["id"], env=env, check=False)
            raise DemoFailed(f"the run {run['id']} did not succeed: {run.get('error') or step.get('error')}")
        outputs = json.loads(done.stdout)
        print("\nthe answer (the researcher's, following its outputSchema):")
        print(json.dumps(outputs["answer"], indent=2))
        pweza("runs", "get", run["id"], env=env)
        for child in children:
            pweza("describe", "task", child["id"], env=env)
    check(outputs, step, children)
    usage = outputs["usage"]
    child_usage = [child["output"]["usage"] for child in children]
    paid = sum(u["promptTokens"] + u["completionTokens"] for u in [usage, *child_usage])
    print(f"\nchecked: the answer follows the schema, the researcher delegated to {len(children)} writer task(s),")
    print(f"the writer searched the notes; {paid} tokens in all (researcher and writers)", flush=True)
    return {"run": run, "outputs": outputs, "writerTasks": children}


def check(outputs: dict[str, Any], step: dict[str, Any], children: list[dict[str, Any]]) -> None:
    """The structure the example promises; a 135M model's wisdom is not checked."""
    documents = yaml.safe_load_all((EXAMPLE / "agents.yaml").read_text())
    researcher = next(d for d in documents if d["kind"] == "AgentTemplate" and d["metadata"]["name"] == "researcher")
    schema = researcher["spec"]["runtime"]["outputSchema"]
    problem = next(Draft202012Validator(schema).iter_errors(outputs["answer"]), None)
    if problem is not None:
        raise DemoFailed(f"the answer does not follow the researcher's outputSchema: {problem.message}")
    delegated = [c for c in step.get("journal") or [] if c["kind"] == "tool" and c.get("tool") == "writers"]
    if not delegated or not children or any(c["pool"] != "writers" for c in children):
        raise DemoFailed("the researcher did not delegate the draft to the writers pool (no `writers` tool call)")
    searched = [c for child in children for c in child.get("journal") or [] if c.get("tool") == "search_notes"]
    if not searched or any(c["isError"] for c in searched):
        raise DemoFailed(f"the writer did not search the notes over MCP: {searched or 'no search_notes call'}")


def children_of(api: httpx.Client, task_id: str | None) -> list[dict[str, Any]]:
    if task_id is None:
        return []
    items: list[dict[str, Any]] = api.get("/api/v1/tasks", params={"parent": task_id}).json()["items"]
    return items


def pweza(*args: str, env: dict[str, str], check: bool = True) -> None:
    print(f"\n$ pweza {' '.join(args)}", flush=True)
    done = subprocess.run([sys.executable, "-m", "pweza", *args], env=env, text=True, timeout=60)
    if check and done.returncode != 0:
        raise DemoFailed(f"pweza {' '.join(args)} exited with {done.returncode}")


def wait_idle(api: httpx.Client, pools: list[str], logs: Path) -> None:
    """Until each pool has an idle agent; an unhealthy one (a missing model or tool server) says why."""
    deadline = time.monotonic() + 90
    agents: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        agents = api.get("/api/v1/agents").json()["items"]
        if sorted(a["pool"] for a in agents if a["state"] == "idle") == sorted(pools):
            return
        time.sleep(0.2)
    states = {a["pool"]: (a["state"], a.get("error")) for a in agents}
    raise DemoFailed(f"the agents were not idle within 90s: {states} (their logs are in {logs})")


if __name__ == "__main__":
    sys.exit(main())
