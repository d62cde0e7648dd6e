"""A run's page shows what a running step's model is writing, from real reply pieces: a raw agent
(tests/integration/hostile_agent.py) connected to the lab's manager holds the step's task and
streams `ModelStream` pieces up the agent channel, as an agent runtime's loop does; the manager
hands them to the page's event stream as `model.delta`; the page shows their tail under the step
as text, and the stored output once the step has finished."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
from benchmarks.ui_lab import Lab

from pweza.v1 import agent_pb2 as pb
from tests.integration.hostile_agent import HostileAgent
from tests.ui.conftest import expect, open_run, sign_in
from tests.ui.test_pages import LOW_CONTRAST

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

pytestmark = [pytest.mark.ui, pytest.mark.timeout(120)]

POOL = "lab-live"
WORKFLOW = "live-reply"
STEP = "think"
TAIL_CHARS = 2000  # what the page keeps of a step's reply (pages/reply.js)
WAIT = 15_000  # ms: what the page must show, through a manager and a browser on a busy machine
T = TypeVar("T")
HOSTILE_PIECE = '<img src=x onerror="window.pwned = 3"><b>bold</b>'


class RawAgent:
    """A HostileAgent on an event loop of its own, in a thread: Playwright's sync API keeps the
    test thread's loop busy. Messages are sent in order, as the agent's stream carries them.
    While it holds an attempt it heartbeats it, as an agent does, so its lease does not expire."""

    def __init__(self, address: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="raw-agent", daemon=True)
        self._thread.start()
        self.agent: HostileAgent = self.call(self._open(address))
        self._heartbeats: concurrent.futures.Future[None] | None = None

    @staticmethod
    async def _open(address: str) -> HostileAgent:
        return HostileAgent(address)  # its channel made on the loop that uses it

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def send(self, message: pb.AgentMessage) -> None:
        self._loop.call_soon_threadsafe(self.agent.send, message)

    def take(self, timeout: float = 30.0) -> pb.Assignment:
        """The one attempt assigned next: started, and heartbeated until its result is sent."""
        [item] = self.call(self.agent.assignments(timeout), timeout + 5)
        self._loop.call_soon_threadsafe(self.agent.started, item.task_id, item.attempt)
        self._heartbeats = asyncio.run_coroutine_threadsafe(self._heartbeat(item), self._loop)
        return item

    async def _heartbeat(self, item: pb.Assignment) -> None:
        while True:
            self.agent.heartbeat([(item.task_id, item.attempt)])
            await asyncio.sleep(0.2)  # the lab's leases last 2 s

    def result(self, item: pb.Assignment, output: Any) -> None:
        self._stop_heartbeats()
        self._loop.call_soon_threadsafe(lambda: self.agent.result(item.task_id, item.attempt, output))

    def _stop_heartbeats(self) -> None:
        if self._heartbeats is not None:
            self._heartbeats.cancel()
            self._heartbeats = None

    def close(self) -> None:
        try:
            self._stop_heartbeats()
            self.call(self.agent.close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()


@pytest.fixture
def raw_agent(ui_lab: Lab) -> Iterator[RawAgent]:
    """A raw agent serving the pool `lab-live`, which has no other agent, with one slot."""
    ui_lab.platform.apply(
        {"apiVersion": "pweza.ai/v1", "kind": "AgentTemplate", "metadata": {"name": POOL},
         "spec": {"runtime": {"kind": "python", "handler": "pweza.testing.handlers:echo"}, "timeout": "60s"}},
        {"apiVersion": "pweza.ai/v1", "kind": "AgentPool", "metadata": {"name": POOL}, "spec": {"templateRef": POOL}},
        {"apiVersion": "pweza.ai/v1", "kind": "Workflow", "metadata": {"name": WORKFLOW},
         "spec": {"steps": [{"name": STEP, "agent": {"pool": POOL}, "input": "why is the sky blue?"}]}},
    )  # fmt: skip
    with ui_lab.platform.client() as client:
        made = client.post("/api/v1/tokens", json={"name": "ui-live", "role": "agent", "pool": f"default/{POOL}"})
        assert made.status_code == 201, made.text
    agent = RawAgent(ui_lab.platform.grpc_address)
    try:
        agent.call(agent.agent.hello(token=made.json()["token"], pool=POOL, agent_id="raw-live", free_slots=1))
        yield agent
    finally:
        agent.close()


def piece(item: pb.Assignment, call: int = 0, **fields: str) -> pb.AgentMessage:
    stream = pb.ModelStream(task_id=item.task_id, attempt=item.attempt, call=call, **fields)
    return pb.AgentMessage(model_stream=stream)


def first_piece_shown(agent: RawAgent, item: pb.Assignment, live: Locator, text: str) -> None:
    """Pieces are not stored: one sent before the page's event stream reached the manager is
    lost. Send `text` until the page shows it (bounded), so the page is known to be following."""
    for _ in range(30):
        agent.send(piece(item, text=text))
        try:
            expect(live).to_contain_text(text.strip(), timeout=1_000)
            return
        except AssertionError:
            continue
    pytest.fail(f"the run page never showed the reply piece {text!r}")


def test_a_running_steps_reply_is_shown_live_as_text_and_replaced_by_its_output(
    page: Page, ui_lab: Lab, raw_agent: RawAgent
) -> None:
    run_id = ui_lab.start_run(WORKFLOW)
    item = raw_agent.take()
    sign_in(page, ui_lab, ui_lab.platform.admin_token)
    open_run(page, run_id)
    node = page.locator(f'.dag .node[data-step="{STEP}"]')
    expect(node).to_have_class("node state-running", timeout=WAIT)

    # No step chosen: the panel shows the step that is speaking.
    speaking = page.locator(f'.panel .live-reply[data-step="{STEP}"]')
    live = speaking.locator(".live-text")
    first_piece_shown(raw_agent, item, live, "Thinking. ")
    for text, shown in [("The sky is ", "Thinking. The sky is"), ("blue because ", "The sky is blue because")]:
        raw_agent.send(piece(item, text=text))
        expect(live).to_contain_text(shown, timeout=WAIT)
    expect(page.locator(".panel h2")).to_have_text(STEP)

    # Chosen: the same reply under the step's own panel, still live; markup in a piece stays text.
    node.click()
    expect(page.locator("#step-panel .live-reply .live-text")).to_contain_text("The sky is blue because", timeout=WAIT)
    raw_agent.send(piece(item, text=HOSTILE_PIECE))
    live = page.locator("#step-panel .live-reply .live-text")
    expect(live).to_contain_text(HOSTILE_PIECE, timeout=WAIT)
    assert page.locator("#step-panel img, #step-panel b").count() == 0
    assert page.evaluate("window.pwned") is None

    # The next model call writes a tool call: its name, then its arguments as they come.
    raw_agent.send(piece(item, call=1, tool="search"))
    expect(page.locator("#step-panel .live-tool")).to_have_text("Calling tool search", timeout=WAIT)
    raw_agent.send(piece(item, call=1, arguments='{"query": '))
    raw_agent.send(piece(item, call=1, arguments='"rayleigh scattering"}'))
    expect(live).to_have_text('{"query": "rayleigh scattering"}', timeout=WAIT)  # the new call replaced the old text
    assert page.evaluate(LOW_CONTRAST) == []

    # A long answer: only its tail is kept.
    for number in range(30):
        raw_agent.send(piece(item, call=2, text=f"{number:02d}" + "x" * 98))
    raw_agent.send(piece(item, call=2, text="THE END"))
    expect(live).to_contain_text("THE END", timeout=WAIT)
    expect(page.locator("#step-panel .live-tool")).to_be_hidden()
    kept = live.evaluate("element => element.textContent")
    assert len(kept) == TAIL_CHARS and kept.endswith("x" * 98 + "THE END"), len(kept)

    # The step finishes: the live reply goes, the stored output shows.
    raw_agent.result(item, {"answer": "Rayleigh scattering"})
    expect(node).to_have_class("node state-succeeded selected", timeout=30_000)
    expect(page.locator('#step-panel pre[aria-label="output"]')).to_contain_text("Rayleigh scattering", timeout=WAIT)
    expect(page.locator(".live-reply")).to_have_count(0)
    expect(page.locator("#run-state .badge")).to_have_text("succeeded")
    with ui_lab.platform.client() as client:
        [step] = client.get(f"/api/v1/runs/{run_id}").json()["steps"]
    assert step["attempts"] == 1, step  # every piece was the one attempt's, held all along
