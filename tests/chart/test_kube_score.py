"""kube-score (v1.20.0, hack/build-kube-score.sh) over every values file and the bundled database
mode: no finding but those tests/chart/kube-score-accepted.yaml lists with a reason, and no
entry there that no longer matches a finding."""

from __future__ import annotations

import json
import os
import subprocess
from functools import cache
from pathlib import Path

import pytest
import yaml

from tests.chart.conftest import VALUES_FILES, render
from tests.conftest import missing

pytestmark = [pytest.mark.chart, pytest.mark.timeout(600)]
VERSION = "v1.20.0"
ACCEPTED = Path(__file__).with_name("kube-score-accepted.yaml")
RENDERS = {**{name: (name, ()) for name in VALUES_FILES}, "bundled": ("values.yaml", ("database.mode=bundled",))}
# kube-score's grades: 1 critical, 5 warning, 7 almost OK, 10 OK.
ALMOST_OK = 7


def kube_score() -> Path:
    path = (
        Path(os.environ.get("PWEZA_K8S_CACHE", Path.home() / ".cache" / "pweza"))
        / f"kube-score-{VERSION}"
        / "kube-score"
    )
    if not os.access(path, os.X_OK):
        missing("kube-score is not built: run hack/build-kube-score.sh (make test does)")
    return path


@cache
def findings(render_name: str) -> frozenset[tuple[str, str]]:
    """(check id, Kind/name) of every finding below "almost OK" in one render."""
    values, sets = RENDERS[render_name]
    result = subprocess.run(
        [str(kube_score()), "score", "--output-format", "json", "-"],
        input=render(values, sets=sets).text, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode in (0, 1), result.stderr  # 1: it found something
    found = set()
    for scored in json.loads(result.stdout):
        name = f"{scored['type_meta']['kind']}/{scored['object_meta']['name']}"
        for check in scored["checks"]:
            if not check["skipped"] and check["grade"] < ALMOST_OK:
                found.add((check["check"]["id"], name))
    return frozenset(found)


def accepted() -> list[dict[str, object]]:
    entries: list[dict[str, object]] = yaml.safe_load(ACCEPTED.read_text())
    for entry in entries:
        assert str(entry.get("why", "")).strip(), f"{entry['check']}: an accepted finding needs its reason"
    return entries


def _covers(pattern: object, value: str) -> bool:
    return pattern == "*" or (isinstance(pattern, list) and value in pattern)


@pytest.mark.parametrize("render_name", RENDERS)
def test_kube_score_finds_nothing_the_chart_does_not_accept(render_name: str) -> None:
    entries = [entry for entry in accepted() if _covers(entry["renders"], render_name)]
    unaccepted = sorted(
        (check, name)
        for check, name in findings(render_name)
        if not any(entry["check"] == check and _covers(entry["objects"], name) for entry in entries)
    )
    assert not unaccepted, f"{render_name}: kube-score findings neither fixed nor in {ACCEPTED.name}: {unaccepted}"


def test_every_accepted_finding_still_occurs() -> None:
    for entry in accepted():
        renders = list(RENDERS) if entry["renders"] == "*" else entry["renders"]
        assert isinstance(renders, list)
        hits = [
            (check, name)
            for render_name in renders
            for check, name in findings(render_name)
            if check == entry["check"] and _covers(entry["objects"], name)
        ]
        assert hits, f"{ACCEPTED.name}: {entry['check']} {entry['objects']} no longer occurs: drop the entry"
