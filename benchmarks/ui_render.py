"""Web UI benchmark: how long a run page takes to draw in headless Chromium, for a 300-step DAG
and for a 1,000-item foreach while it runs, and how responsive the page stays while it follows
the live run (JSON on stdout).

The budget the issue sets is one second for each page; the figures are printed, not asserted.
`drawn_ms` is measured in the page, from the navigation's start (fetching the page and its
modules, signing in with the stored token, reading the run, laying out and drawing the graph)
to the graph being in the DOM (the browser paints it next); `layout_ms` is the layout alone; while live, the
longest stall of the page's event loop (a 50 ms probe timer's worst lateness) and the long tasks
(over 50 ms) Chromium reports are the responsiveness.

    python benchmarks/ui_render.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, sync_playwright
from ui_lab import BROWSER_ARGS, FAN_OUT_ITEMS, VIEWPORT, WIDE_DAG_STEPS, Lab, chromium, lab

PROBE_SECONDS = 5.0
# Runs in the page: the worst lateness of a 50 ms timer and the long tasks, over `seconds`.
RESPONSIVENESS = """async (seconds) => {
  const long = [];
  const observer = new PerformanceObserver((list) => long.push(...list.getEntries().map((e) => e.duration)));
  observer.observe({ type: "longtask", buffered: false });
  let worst = 0;
  let last = performance.now();
  const probe = setInterval(() => {
    const now = performance.now();
    worst = Math.max(worst, now - last - 50);
    last = now;
  }, 50);
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  clearInterval(probe);
  observer.disconnect();
  const longest = Math.round(Math.max(0, ...long));
  return { worst_stall_ms: Math.round(worst), long_tasks: long.length, longest_task_ms: longest };
}"""
LAYOUT = """async (runId) => {
  const { layout } = await import("./static/dag.js");
  const run = await (await fetch(`../api/v1/runs/${runId}`, {
    headers: { Authorization: `Bearer ${sessionStorage.getItem("pweza.token")}` } })).json();
  const started = performance.now();
  const graph = layout(run.spec.steps);
  return { layout_ms: Math.round((performance.now() - started) * 10) / 10, crossings: graph.crossings };
}"""


def drawn_ms(page: Page, base: str, run_id: str, nodes: int) -> float:
    """A fresh load of the run's page, until its graph is drawn."""
    page.goto(f"{base}#/runs/{run_id}")
    page.reload()
    page.wait_for_function("n => document.querySelectorAll('.dag .node').length === n", arg=nodes)
    page.wait_for_function("() => performance.getEntriesByName('pweza:run-drawn').length > 0")
    return float(page.evaluate("performance.getEntriesByName('pweza:run-drawn')[0].startTime"))


def wait_state(running: Lab, run_id: str, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    with running.platform.client() as client:
        while time.monotonic() < deadline:
            state = str(client.get(f"/api/v1/runs/{run_id}").json()["state"])
            if state != "running":
                return state
            time.sleep(0.2)
    raise TimeoutError(f"run {run_id} still running after {timeout}s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    browser_path = chromium()
    if browser_path is None:
        sys.exit("no Chromium: run hack/ensure-chromium.sh")
    result: dict[str, Any] = {"benchmark": "ui_render", "budget_ms": 1000, "viewport": VIEWPORT}
    with tempfile.TemporaryDirectory(prefix="pweza-ui-") as tmp, lab(Path(tmp)) as running:
        wide = running.start_run("wide-dag")
        wait_state(running, wide)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=browser_path, args=BROWSER_ARGS)
            page = browser.new_page(viewport=VIEWPORT)
            base = f"{running.url}/ui/"
            page.goto(base)
            page.fill("#token", running.platform.admin_token)
            page.click("button[type=submit]")
            page.wait_for_selector("#runs")

            times = [drawn_ms(page, base, wide, WIDE_DAG_STEPS) for _ in range(args.repeat)]
            layout = page.evaluate(LAYOUT, wide)
            live_wide = running.start_run("wide-dag")
            drawn_live = drawn_ms(page, base, live_wide, WIDE_DAG_STEPS)
            wide_live = page.evaluate(RESPONSIVENESS, PROBE_SECONDS)
            result["dag_300_steps"] = {
                "steps": WIDE_DAG_STEPS,
                "drawn_ms": [round(t) for t in times],
                "drawn_ms_median": round(statistics.median(times)),
                **layout,
                "drawn_ms_while_running": round(drawn_live),
                "while_live": {"probe_seconds": PROBE_SECONDS, **wide_live},
                "run_state": wait_state(running, live_wide),
            }

            fan_out = running.start_run("fan-out")
            live_times = [drawn_ms(page, base, fan_out, 2) for _ in range(args.repeat)]
            live = page.evaluate(RESPONSIVENESS, PROBE_SECONDS)
            state = wait_state(running, fan_out)
            page.wait_for_function(
                "n => document.querySelector('.dag .node[data-step=\"each\"] .detail').textContent.startsWith(n + '/')",
                arg=FAN_OUT_ITEMS,
            )
            result["foreach_1000_items"] = {
                "items": FAN_OUT_ITEMS,
                "drawn_ms_while_running": [round(t) for t in live_times],
                "drawn_ms_median": round(statistics.median(live_times)),
                "while_live": {"probe_seconds": PROBE_SECONDS, **live},
                "run_state": state,
                "shown": page.text_content('.dag .node[data-step="each"] .detail'),
            }
            browser.close()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
