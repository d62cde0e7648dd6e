"""README.md's commands, run in order as written, on a fresh data directory (issue #14)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import missing
from tests.docs.scripts import REPO, commands, run_documented, shell_blocks, skip_reason, to_script

pytestmark = pytest.mark.timeout(900)
README = REPO / "README.md"


@pytest.fixture(autouse=True)
def _needs_namespaces() -> None:
    reason = skip_reason()
    if reason:
        missing(reason)


def test_the_tour_works_as_written(tmp_path: Path) -> None:
    blocks = shell_blocks(README, "## A short tour")
    transcript = run_documented(blocks[:2], tmp_path)
    assert transcript.returncode == 0, transcript.explain()
    out = transcript.output
    assert "classifiers" in out and "planners" in out, transcript.explain()  # `get agentpools` lists both examples
    assert '"report"' in out, transcript.explain()  # the triage run printed its outputs
    assert "approved" in out and "succeeded" in out, transcript.explain()
    assert "run_succeeded" in out or "succeeded" in out.split("$ pweza runs logs")[-1], transcript.explain()


def test_running_the_pieces_separately_works_as_written(tmp_path: Path) -> None:
    (block,) = shell_blocks(README, "### Run pieces separately")
    transcript = run_documented([block], tmp_path)
    assert transcript.returncode == 0, transcript.explain()
    assert '"state": "succeeded"' in transcript.output or "succeeded" in transcript.output, transcript.explain()
    assert (tmp_path / "pweza.db").exists()  # the store is where DATABASE_URL said


@pytest.mark.parametrize("example", ["support-triage", "research-pipeline", "data-pipeline"])
def test_each_example_runs_as_its_readme_says(example: str, tmp_path: Path) -> None:
    blocks = shell_blocks(REPO / "examples" / example / "README.md", "## Run it")
    transcript = run_documented(blocks, tmp_path)
    assert transcript.returncode == 0, transcript.explain()
    (up_log,) = (text for name, text in transcript.logs.items() if name.endswith("-up.log"))
    assert "pweza is up" in up_log
    assert "fork" not in up_log, up_log  # gRPC's fork-handler notices are noise a reader cannot act on


def test_the_script_keeps_every_documented_command() -> None:
    """Only set-up lines are left out; servers go to the background and are waited for."""
    blocks = shell_blocks(README, "## A short tour")[:2]
    script = to_script(blocks, Path("/logs"))
    for command in commands("\n".join(blocks)):
        if command.startswith("pip install"):
            assert command not in script
        else:
            assert command in script
    assert "__ready up" in script
