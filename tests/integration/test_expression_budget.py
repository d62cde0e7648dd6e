"""A costly expression is stopped at its deadline: its step fails, the manager keeps answering."""

from __future__ import annotations

import threading

import httpx
import pytest

from pweza.testing.platform import Platform
from tests.integration.test_workflows import setup_pool, start, steps_of, wait_run, workflow

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
# Four nested comprehensions over 64 elements: 16.7 million iterations, tens of seconds of CPU
# for the CEL library, and no value big enough for the size limit to say anything.
_ROW = "[" + ", ".join(["1"] * 64) + "]"
COSTLY = f"{_ROW}.map(a, {_ROW}.map(b, {_ROW}.map(c, {_ROW}.filter(d, a + b + c + d < 0))))"


class LivenessProbe:
    """Asks /health/live over and over from a thread; a frozen event loop answers nothing, so a
    probe that waited this long for an answer has lost it."""

    def __init__(self, platform: Platform, patience: float = 10.0) -> None:
        self._client = httpx.Client(base_url=platform.url, verify=platform.verify, timeout=patience)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._probe, daemon=True)
        self.answers = 0
        self.failures: list[str] = []

    def __enter__(self) -> LivenessProbe:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(30)
        self._client.close()

    def _probe(self) -> None:
        while not self._stop.wait(0.2):
            try:
                status = self._client.get("/health/live").status_code
            except httpx.HTTPError as error:
                self.failures.append(repr(error))
                continue
            if status == 200:
                self.answers += 1
            else:
                self.failures.append(f"status {status}")


def test_a_costly_step_input_fails_its_step_while_the_manager_keeps_answering(platform: Platform) -> None:
    setup_pool(platform, "echo")
    platform.wait_for_agents(1)
    platform.apply(
        workflow("costly", [{"name": "grid", "agent": {"pool": "work"}, "input": {"grid": f"${{{{ {COSTLY} }}}}"}}]),
        workflow("cheap", [{"name": "echo", "agent": {"pool": "work"}, "input": {"n": "${{ [1, 2].map(x, x * 2) }}"}}]),
    )
    with LivenessProbe(platform) as probe:
        with platform.client(timeout=120) as api:  # a run's first step is prepared before it answers
            costly = api.post("/api/v1/workflows/costly/runs", json={}).json()["id"]
        cheap = start(platform, "cheap")
        run = wait_run(platform, costly, timeout=120)
    assert probe.answers > 0 and probe.failures == [], "/health/live answered all along"
    assert run["state"] == "failed"
    error = steps_of(run)["grid"]["error"]
    assert error["type"] == "StepConfigurationError"
    assert "was stopped: it ran longer than the limit of 2 s an expression may take" in error["message"]
    assert ".filter(d, a + b + c + d < 0)" in error["message"], "the message names the expression"
    done = wait_run(platform, cheap)
    assert done["state"] == "succeeded" and steps_of(done)["echo"]["output"] == {"n": [2, 4]}
