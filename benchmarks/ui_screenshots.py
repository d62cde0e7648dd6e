"""Screenshots of the web UI's pages (PNG, 1280 px wide) for README and docs/ui.md, taken from a real
manager running the examples: `make screenshots` (writes docs/ui-*.png).

    python benchmarks/ui_screenshots.py [--out docs]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import Page, sync_playwright
from ui_lab import BROWSER_ARGS, VIEWPORT, Lab, chromium, lab


def wait_run(lab: Lab, run_id: str, states: set[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    with lab.platform.client() as client:
        while time.monotonic() < deadline:
            run = client.get(f"/api/v1/runs/{run_id}").json()
            if run["state"] in states or any(step["state"] in states for step in run["steps"]):
                return
            time.sleep(0.2)
    raise TimeoutError(f"run {run_id} reached none of {states}")


def shoot(page: Page, hash_: str, ready: str, path: Path, click: str | None = None) -> None:
    page.goto(f"{page.url.split('#')[0]}{hash_}")
    page.wait_for_selector(ready)
    if click:
        page.click(click)
        page.wait_for_selector("#step-panel")
    page.wait_for_timeout(600)  # let the last refresh paint
    page.screenshot(path=str(path), full_page=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("docs"))
    args = parser.parse_args()
    browser_path = chromium()
    if browser_path is None:
        sys.exit("no Chromium: run hack/ensure-chromium.sh")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pweza-ui-") as tmp, lab(Path(tmp)) as running:
        triage = running.start_run("support-triage")
        research = running.start_run("research-pipeline")
        fragile = running.start_run("fragile")
        wide = running.start_run("wide-dag")
        wait_run(running, triage, {"succeeded", "failed"})
        wait_run(running, research, {"waiting_approval"})
        wait_run(running, fragile, {"failed"})
        wait_run(running, wide, {"succeeded", "failed"})
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=browser_path, args=BROWSER_ARGS)
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(f"{running.url}/ui/")
            page.fill("#token", running.platform.admin_token)
            page.click("button[type=submit]")
            page.wait_for_selector("#runs tbody tr")
            written = []
            for name, hash_, ready, click in [
                ("runs", "#/runs", "#runs tbody tr", None),
                ("run", f"#/runs/{triage}", ".dag .node.state-succeeded", '[data-step="summarize"]'),
                ("approval", f"#/runs/{research}", ".dag .node.state-waiting_approval", '[data-step="review"]'),
                ("failed-step", f"#/runs/{fragile}", ".dag .node.state-failed", '[data-step="fix_me"]'),
                ("dag-300", f"#/runs/{wide}", ".dag .node.state-succeeded", None),
                ("workflow", "#/workflows/default/support-triage", "#start-run", None),
                ("agents", "#/agents", "#pools tbody tr", None),
            ]:
                path = args.out / f"ui-{name}.png"
                shoot(page, hash_, ready, path, click)
                written.append(str(path))
            browser.close()
    print(json.dumps({"screenshots": written}))


if __name__ == "__main__":
    main()
