"""benchmarks/compare.py's choice of systems (`make bench`; the runs themselves are benchmarks,
not tests): a quick run names its systems with commas, and a wrong name stops it before it
installs or starts anything."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

COMPARE = Path(__file__).resolve().parents[2] / "benchmarks" / "compare.py"


def compare(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(COMPARE), *args],
        capture_output=True,
        text=True,
        timeout=25,
        check=False,
        env={**os.environ, "COLUMNS": "500"},  # argparse wraps help at hyphens otherwise
    )


def test_an_unknown_system_is_refused_with_the_names_compare_knows() -> None:
    done = compare("--systems", "dbos-sqlite,langgraph,temporall", "--rounds", "1")
    assert done.returncode == 2
    assert "unknown system(s) temporall" in done.stderr
    for known in ("pweza", "pweza-postgres", "dbos-sqlite-queue", "dbos-postgres", "langgraph", "temporal-shipped"):
        assert known in done.stderr


def test_the_help_lists_every_durable_peer_and_the_quick_run_options() -> None:
    done = compare("--help")
    assert done.returncode == 0, done.stderr
    text = done.stdout
    for option in ("--rounds", "--scenarios", "--systems"):
        assert option in text
    for system in ("dbos-sqlite", "dbos-sqlite-shipped", "dbos-postgres-queue", "langgraph-shipped", "temporal"):
        assert system in text
