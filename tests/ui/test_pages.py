"""The web UI in a real browser against a real manager: what a person does on its pages, and what
they must not be able to do. Each test waits for what the page shows (Playwright's waits are
bounded by the context's timeout), never for a fixed time."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from benchmarks.ui_lab import HOSTILE_OUTPUT, Lab

from pweza.testing import eventually
from tests.ui.conftest import expect, open_run, sign_in

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page, Request

pytestmark = [pytest.mark.ui, pytest.mark.timeout(120)]

TRIAGE_STEPS = ("classify", "route", "escalate", "summarize", "report")


def node(step: str) -> str:
    return f'.dag .node[data-step="{step}"]'


def step_reaching(page: Page, lab: Lab, workflow: str, step: str, state: str, token: str = "") -> tuple[str, Locator]:
    """Start a run of `workflow`, sign in, open the run's page and wait for `step` to show `state`."""
    run_id = lab.start_run(workflow)
    sign_in(page, lab, token or lab.platform.admin_token)
    open_run(page, run_id)
    found = page.locator(node(step))
    expect(found).to_have_class(f"node state-{state}", timeout=60_000)
    return run_id, found


def test_support_triage_started_from_its_form_reaches_succeeded_on_its_graph_without_a_reload(
    page: Page, ui_lab: Lab
) -> None:
    requests: list[str] = []

    def seen(request: Request) -> None:
        requests.append(request.url)

    page.on("request", seen)
    sign_in(page, ui_lab, ui_lab.platform.admin_token)
    page.click("nav >> text=Workflows")
    page.click("a:text-is('support-triage')")
    expect(page.locator(".dag .node")).to_have_count(len(TRIAGE_STEPS))  # the definition's DAG, from its spec
    edges = page.locator(".dag .edges path")
    expect(edges).to_have_count(5)
    assert sorted(f"{e.get_attribute('data-from')}>{e.get_attribute('data-to')}" for e in edges.all()) == [
        "classify>route", "escalate>report", "route>escalate", "route>summarize", "summarize>report"
    ]  # fmt: skip
    expect(page.locator("#input-tickets")).to_have_value(re.compile("T-1001"))
    page.evaluate("window.notReloaded = true")
    page.click("#start-run button[type=submit]")

    page.wait_for_url("**/ui/#/runs/*")
    for step in TRIAGE_STEPS:
        expect(page.locator(node(step))).to_have_class("node state-succeeded", timeout=60_000)
    expect(page.locator("#run-state .badge")).to_have_text("succeeded")
    expect(page.locator(node("classify") + " .detail")).to_have_text("12/12 done")
    assert page.evaluate("window.notReloaded") is True

    token = ui_lab.platform.admin_token
    assert requests and all(token not in url for url in requests)
    assert page.evaluate("sessionStorage.getItem('pweza.token')") == token
    assert token not in ui_lab.platform.manager_log()


def test_the_runs_list_filters_by_workflow_and_state_and_shows_a_new_run_without_a_reload(
    page: Page, ui_lab: Lab
) -> None:
    sign_in(page, ui_lab, ui_lab.platform.admin_token)
    page.select_option("#filter-workflow", "hostile-output")
    page.select_option("#filter-state", "succeeded")
    page.evaluate("window.notReloaded = true")
    run_id = ui_lab.start_run("hostile-output")
    row = page.locator(f'#runs tr[data-run="{run_id}"]')
    expect(row).to_contain_text("succeeded", timeout=30_000)
    workflows = page.locator("#runs tbody tr td:nth-child(2)").all_inner_texts()
    assert workflows and set(workflows) == {"hostile-output"}
    assert page.evaluate("window.notReloaded") is True

    page.select_option("#filter-state", "failed")
    expect(row).to_have_count(0)


def test_the_research_gate_is_approved_from_its_page_with_a_comment(page: Page, ui_lab: Lab) -> None:
    run_id, review = step_reaching(page, ui_lab, "research-pipeline", "review", "waiting_approval")
    review.focus()
    page.keyboard.press("Enter")  # the graph's steps are reachable by keyboard
    page.fill("#decision-comment", "reads well, ship it")
    page.click("#approve")

    expect(page.locator(node("publish"))).to_have_class("node state-succeeded", timeout=60_000)
    expect(page.locator("#run-state .badge")).to_have_text("succeeded")
    with ui_lab.platform.client() as client:
        steps = {s["name"]: s for s in client.get(f"/api/v1/runs/{run_id}").json()["steps"]}
    assert steps["review"]["approval"]["decision"] == "approved"
    assert steps["review"]["approval"]["comment"] == "reads well, ship it"


def test_a_failed_steps_error_is_shown_and_retrying_the_step_finishes_the_run(
    page: Page, ui_lab: Lab, tmp_flag: object
) -> None:
    _, broken = step_reaching(page, ui_lab, "fragile", "fix_me", "failed")
    broken.click()
    expect(page.locator("#step-error")).to_contain_text("Broken: ")
    expect(page.locator(".attempts .error").first).to_contain_text("is present")

    ui_lab.flag.unlink()
    page.click("#retry-step")
    expect(broken).to_have_class("node state-succeeded selected", timeout=60_000)
    expect(page.locator("#run-state .badge")).to_have_text("succeeded")


def test_a_viewer_sees_no_approve_button_and_the_api_refuses_their_approval(page: Page, ui_lab: Lab) -> None:
    viewer = ui_lab.token("viewer")
    run_id, review = step_reaching(page, ui_lab, "research-pipeline", "review", "waiting_approval", viewer)
    expect(page.locator("#who")).to_contain_text("(viewer)")
    review.click()
    expect(page.locator("#approval")).to_contain_text("approve it for publishing")  # the gate's message
    expect(page.locator("#approve")).to_have_count(0)
    expect(page.locator("#cancel-run")).to_have_count(0)

    status = page.evaluate(
        """async ([id, token]) => (await fetch(`/api/v1/runs/${id}/steps/review/approve`, {
            method: 'POST', headers: {Authorization: `Bearer ${token}`, 'Content-Type': 'application/json'},
            body: '{}'})).status""",
        [run_id, viewer],
    )
    assert status == 403
    with ui_lab.platform.client() as client:
        assert client.post(f"/api/v1/runs/{run_id}/cancel").status_code == 200  # tidy: it waits an hour


def test_a_step_output_holding_html_is_shown_as_text_and_runs_nothing(page: Page, ui_lab: Lab) -> None:
    _, shout = step_reaching(page, ui_lab, "hostile-output", "shout", "succeeded")
    shout.click()
    output = page.locator('#step-panel pre[aria-label="output"]')
    expect(output).to_contain_text("<script>window.pwned = 1</script>")
    assert HOSTILE_OUTPUT.replace('"', '\\"') in output.inner_text()
    assert page.locator("#step-panel script, #step-panel img, #step-panel b").count() == 0
    assert page.evaluate("window.pwned") is None


def test_the_page_forbids_inline_script_and_data_needs_the_token(ui_lab: Lab) -> None:
    with httpx.Client(base_url=ui_lab.url, verify=ui_lab.platform.verify) as anonymous:
        page = anonymous.get("/ui/")
        assert page.status_code == 200
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        assert anonymous.get("/", follow_redirects=True).url.path == "/ui/"
        assert anonymous.get("/ui/static/app.js").status_code == 200
        assert anonymous.get("/api/v1/runs").status_code == 401
        assert anonymous.get("/api/v1/whoami").status_code == 401


def test_a_runs_view_carries_its_spec_and_its_fan_outs_item_counts(ui_lab: Lab) -> None:
    run_id = ui_lab.start_run("support-triage")
    with ui_lab.platform.client() as client:

        def finished() -> dict[str, Any] | None:
            found: dict[str, Any] = client.get(f"/api/v1/runs/{run_id}").json()
            return None if found["state"] == "running" else found

        run = eventually(finished, timeout=60, what="the triage run to finish")
    assert run["state"] == "succeeded"
    assert [step["name"] for step in run["spec"]["steps"]] == list(TRIAGE_STEPS)
    steps = {step["name"]: step for step in run["steps"]}
    assert steps["classify"]["itemStates"] == {"succeeded": 12}
    assert "itemStates" not in steps["route"]


LAYOUT_OF = """async (steps) => {
  const { layout } = await import("./static/dag.js");
  const graph = layout(steps);
  const at = Object.fromEntries([...graph.nodes].map(([name, p]) => [name, [p.layer, p.y]]));
  return { at, crossings: graph.crossings };
}"""


def test_the_graph_puts_each_step_one_layer_past_its_longest_path_and_uncrosses_edges(page: Page, ui_lab: Lab) -> None:
    sign_in(page, ui_lab, ui_lab.platform.admin_token)
    # Listed so that drawn in this order a->d and b->c would cross; e waits on a and on d.
    steps = [
        {"name": "a"},
        {"name": "b"},
        {"name": "c", "depends": ["b"]},
        {"name": "d", "depends": ["a"]},
        {"name": "e", "depends": ["a", "d"]},
    ]
    found = page.evaluate(LAYOUT_OF, steps)
    layers = {name: layer for name, (layer, _) in found["at"].items()}
    assert layers == {"a": 0, "b": 0, "c": 1, "d": 1, "e": 2}
    assert found["crossings"] == 0
    y = {name: top for name, (_, top) in found["at"].items()}
    assert (y["a"] < y["b"]) == (y["d"] < y["c"]), "d sits on a's side, c on b's"


def test_the_agents_page_shows_pools_with_their_agents_templates_and_a_recent_failure(page: Page, ui_lab: Lab) -> None:
    with ui_lab.platform.client() as client:
        submitted = client.post("/api/v1/tasks", json={"pool": "lab-fragile", "input": {"flag": str(ui_lab.flag)}})
        assert submitted.status_code == 201, submitted.text
    failed = ui_lab.platform.wait_task(submitted.json()["id"])
    assert failed["state"] == "failed"

    sign_in(page, ui_lab, ui_lab.platform.admin_token)
    page.click("nav >> text=Agents and pools")
    classifiers = page.locator('#pools tr[data-pool="classifiers"] td')
    expect(classifiers.nth(1)).to_have_text("ticket-classifier")
    expect(classifiers.nth(2)).to_have_text("1")  # one agent connected
    expect(classifiers.nth(3)).to_have_text(re.compile(r"^\d+ of 8$"))
    expect(page.locator("#templates")).to_contain_text("triage_agents:classify")
    failure = page.locator("#failures tr", has_text=failed["id"])
    expect(failure).to_contain_text("Broken: ")


def test_cancelling_a_run_from_its_page_cancels_its_waiting_step(page: Page, ui_lab: Lab) -> None:
    _, review = step_reaching(page, ui_lab, "research-pipeline", "review", "waiting_approval")
    page.click("#cancel-run")
    expect(page.locator("#run-state .badge")).to_have_text("cancelled")
    expect(review).to_have_class("node state-cancelled")
    expect(page.locator("#cancel-run")).to_have_count(0)
    expect(page.locator("#retry-run")).to_have_count(1)


# WCAG's contrast ratio of every element's text against the background it sits on.
LOW_CONTRAST = """() => {
  const rgb = (text) => text.match(/[\\d.]+/g).map(Number);
  const luminance = ([r, g, b]) => {
    const [R, G, B] = [r, g, b].map((c) => (c /= 255) <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4);
    return 0.2126 * R + 0.7152 * G + 0.0722 * B;
  };
  const background = (element) => {
    for (let at = element; at; at = at.parentElement) {
      const colour = rgb(getComputedStyle(at).backgroundColor);
      if (colour.length < 4 || colour[3] > 0) return colour;
    }
    return [255, 255, 255];
  };
  const low = [];
  for (const element of document.querySelectorAll("body *:not(svg *)")) {
    const own = [...element.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own || !element.checkVisibility()) continue;
    const [a, b] = [luminance(rgb(getComputedStyle(element).color)), luminance(background(element))];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < 4.5) low.push(`${element.tagName}.${element.className}: ${element.textContent.trim().slice(0, 30)} (${ratio.toFixed(2)})`);
  }
  return low;
}"""


def test_a_run_page_has_readable_contrast_and_its_steps_are_reached_with_the_tab_key(page: Page, ui_lab: Lab) -> None:
    _, broken = step_reaching(page, ui_lab, "fragile", "fix_me", "failed")
    broken.click()
    expect(page.locator("#step-error")).to_be_visible()
    assert page.evaluate(LOW_CONTRAST) == []

    page.locator(".brand").focus()
    for _ in range(40):  # bounded: the header's links and buttons come first
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.dataset.step") == "prepare":
            break
    else:
        pytest.fail("Tab never reached the graph's first step")
    page.keyboard.press("Enter")
    expect(page.locator("#step-panel h2")).to_contain_text("prepare")
