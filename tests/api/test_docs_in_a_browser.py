"""/docs and /redoc render in a real browser under their Content-Security-Policy, with nothing but
the manager to load from: headless Chromium runs the pages' scripts and the test reads the DOM
they built. Needs Chromium (`make test` installs Debian's)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pweza.testing.platform import Platform
from tests.conftest import missing

pytestmark = pytest.mark.timeout(300)

BROWSER = next((found for name in ("chromium", "chromium-browser") if (found := shutil.which(name))), None)


@pytest.fixture(autouse=True)
def _needs_chromium() -> None:
    if BROWSER is None:
        missing("no Chromium to render the pages: run hack/ensure-chromium.sh (Debian's chromium)")


# ReDoc shows Redocly's logo from its CDN, and hides it when it cannot load: the one refusal expected.
EXPECTED_REFUSALS = re.compile(r"https://cdn\.redoc\.ly/redoc/logo-mini\.svg")


def rendered(url: str, profile: Path) -> tuple[str, list[str]]:
    """The page's DOM once its scripts have run, and what the page's policy refused."""
    assert BROWSER is not None
    command = [
        BROWSER, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
        f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
        # Virtual time runs on while the page is busy and stops when it is idle, so the DOM is
        # read once the UI has fetched the OpenAPI document and drawn it, however slow the machine.
        "--virtual-time-budget=30000", "--dump-dom", url,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    refused = [line for line in done.stderr.splitlines() if "Content Security Policy" in line]
    return done.stdout, [line for line in refused if not EXPECTED_REFUSALS.search(line)]


def test_swagger_ui_draws_every_operation_and_the_authorize_button(live: Platform, tmp_path: Path) -> None:
    dom, refused = rendered(f"{live.url}/docs", tmp_path)
    assert refused == []
    operations = re.findall(r'class="opblock opblock-(?:get|post|put|delete)', dom)
    assert len(operations) > 20, dom[-2000:]
    assert "Authorize" in dom
    assert "/api/v1/runs/{run_id}/cancel" in dom


def test_redoc_draws_the_operations_and_their_bearer_scheme(live: Platform, tmp_path: Path) -> None:
    dom, refused = rendered(f"{live.url}/redoc", tmp_path)
    assert refused == []
    assert "Submit Task" in dom and "Cancel Run" in dom, dom[-2000:]
    assert "HTTPBearer" in dom
