"""The web UI's tests: one manager running the examples and the UI lab's workflows
(benchmarks/ui_lab.py), shared by every test here, and a headless Chromium (Debian's) driven by
Playwright for Python. Each browser test gets a fresh browser context: its own sessionStorage."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from benchmarks.ui_lab import BROWSER_ARGS, VIEWPORT, Lab, chromium, lab

from tests.conftest import missing

try:
    from playwright.sync_api import Browser, Page, sync_playwright
    from playwright.sync_api import expect as _expect
except ImportError:  # the `browser` fixture says so, and how to get it
    sync_playwright = _expect = None


def expect(target: Any) -> Any:
    """Playwright's assertions, which wait (bounded) for the page to show what they expect."""
    return _expect(target)


@pytest.fixture(scope="package")
def ui_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with lab(tmp_path_factory.mktemp("ui-lab")) as running:
        yield running


@pytest.fixture(scope="package")
def browser(ui_lab: Lab) -> Iterator[Browser]:
    """Started after the lab: Playwright's sync API keeps an event loop running in this thread,
    and the lab's set-up runs one of its own. Closed when this package's tests are done, before
    the async tests of other packages run their loops."""
    path = chromium()
    if path is None:
        missing("no Chromium for the UI tests: run hack/ensure-chromium.sh (Debian's chromium)")
    if sync_playwright is None:
        missing("no Playwright for the UI tests: pip install -e '.[dev]' (playwright)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=path, args=BROWSER_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A page at 1280 px; the test fails if the page threw, or its CSP refused anything."""
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(30_000)
    opened = context.new_page()
    troubles: list[str] = []
    opened.on("pageerror", lambda error: troubles.append(f"uncaught: {error}"))
    opened.on(
        "console",
        lambda message: troubles.append(message.text) if "Content Security Policy" in message.text else None,
    )
    yield opened
    context.close()
    assert troubles == []


def sign_in(page: Page, lab: Lab, token: str) -> None:
    page.goto(f"{lab.url}/ui/")
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_selector("#runs")


def open_run(page: Page, run_id: str) -> None:
    page.evaluate("id => { location.hash = '#/runs/' + id }", run_id)
    page.wait_for_selector(".dag .node")


@pytest.fixture
def tmp_flag(ui_lab: Lab) -> Iterator[Path]:
    """The fragile step's flag, put back after a test removed it."""
    yield ui_lab.flag
    ui_lab.flag.write_text("remove me to fix the fragile step")
