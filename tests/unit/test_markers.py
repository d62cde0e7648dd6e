"""Markers select by directory: `-m node` runs only the node tests, `-m "not node and not k8s
and not chart"` none of them (a `pytestmark` in a conftest.py would mark nothing)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]
HEAVY = ("tests/node", "tests/images", "tests/k8s", "tests/chart")
MARKED = {"node": ("tests/node", "tests/images"), "k8s": ("tests/k8s",), "chart": ("tests/chart",)}
pytestmark = pytest.mark.timeout(120)  # a collection of the heavy directories, in a subprocess


def collected(*args: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert done.returncode in (0, 5), done.stdout + done.stderr  # 5: nothing collected
    return [line for line in done.stdout.splitlines() if "::" in line]


@pytest.mark.parametrize(
    ("marker", "directories"),
    [("node", HEAVY), ("k8s", ("tests/k8s", "tests/chart")), ("chart", ("tests/k8s", "tests/chart"))],
)
def test_a_marker_selects_the_tests_of_its_directories_and_only_those(
    marker: str, directories: tuple[str, ...]
) -> None:
    selected = collected("-m", marker, *directories)
    assert selected, f"-m {marker} selects something"
    assert [i for i in selected if not i.startswith(MARKED[marker])] == []


def test_deselecting_the_heavy_markers_leaves_none_of_their_tests() -> None:
    assert collected("-m", "not node and not k8s and not chart", *HEAVY) == []


def test_the_llm_marker_selects_the_real_model_tests_and_only_those() -> None:
    selected = collected("-m", "llm", "tests/llm", "tests/unit/agent")
    assert selected and all(item.startswith("tests/llm/") for item in selected)
    assert collected("-m", "not llm", "tests/llm") == []
