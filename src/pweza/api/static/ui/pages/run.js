// One run: its graph coloured by step state, live from the run's event stream; its timeline; the
// chosen step's details; cancel and retry. An event repaints its step at once; the run view is
// then read again (at most every REFRESH_MS) for what events do not carry, such as item counts.
// A reply piece (`model.delta`) changes no state: it goes to the tail of what its step's model is
// writing (pages/reply.js), shown in the chosen step's panel, or, with none chosen, in the panel
// for the step that is speaking.

import { api } from "../api.js";
import { draw, layout, paint } from "../dag.js";
import { badge, duration, h, pretty, problem, when } from "../dom.js";
import { follow } from "../sse.js";
import { liveReplies } from "./reply.js";
import { stepPanel } from "./step.js";
import { timeline } from "./timeline.js";

const REFRESH_MS = 500;
const POLL_MS = 2000; // while running: item tasks finish without a run event
const EVENT_STATES = {
  StepStarted: "running",
  ApprovalRequested: "waiting_approval",
  StepReset: "pending",
  StepSucceeded: "succeeded",
  StepFailed: "failed",
  StepSkipped: "skipped",
  StepCancelled: "cancelled",
  StepTimedOut: "timed_out",
};
const FINISHED = new Set(["succeeded", "failed", "skipped", "cancelled", "timed_out"]);

export function detail(step, spec) {
  if (step.itemStates && step.items) {
    const done = step.itemStates.succeeded || 0;
    const failed = (step.itemStates.failed || 0) + (step.itemStates.timed_out || 0);
    return `${done}/${step.items} done${failed ? `, ${failed} failed` : ""}`;
  }
  if (step.state === "waiting_approval") return "waiting for approval";
  if (step.startedAt) return duration(step.startedAt, step.finishedAt);
  return spec.approval ? "approval" : spec.foreach ? "foreach" : "";
}

export async function render(main, [runId], session) {
  let run = await api(`runs/${encodeURIComponent(runId)}`);
  const specs = run.spec.steps || [];
  const byName = new Map(specs.map((spec) => [spec.name, spec]));
  let selected = null;
  let shownSignature = "";
  let panelTicket = 0;
  let shownStep = null; // the step the panel shows now (null: none chosen yet)
  const panel = h("div", { class: "panel" }, h("p", { class: "muted" }, "Choose a step in the graph."), h("div", { class: "live-slot" }));
  const live = liveReplies((step) => (step === shownStep || shownStep === null) && placeLive());
  const header = h("div", { class: "run-header" });
  const times = h("div", {});
  const status = h("div", { "aria-live": "polite" });
  const { svg, groups } = draw(layout(specs), specs, (name) => choose(name));

  const act = (verb) => async () => {
    try {
      show(await api(`runs/${encodeURIComponent(run.id)}/${verb}`, { method: "POST", body: verb === "retry" ? {} : undefined }));
      status.replaceChildren();
    } catch (error) {
      status.replaceChildren(problem(error));
    }
  };

  // The header is built once and updated in place, so a focused button keeps its focus.
  const state = h("span", { id: "run-state" });
  const took = h("span", {});
  const failure = h("p", { class: "error" });
  const actions = h("div", { class: "actions" });
  const workflowLink = `#/workflows/${encodeURIComponent(run.namespace)}/${encodeURIComponent(run.workflow)}`;
  header.append(
    h("h1", {}, `Run ${run.id} `, state),
    h("p", { class: "muted" }, h("a", { href: workflowLink }, run.workflow), ` · started ${when(run.createdAt)} · `, took),
    failure,
    actions,
    status,
  );
  let headerState = null;

  function drawHeader() {
    took.textContent = duration(run.createdAt, run.finishedAt);
    failure.textContent = run.error || "";
    failure.hidden = !run.error;
    if (headerState === run.state) return;
    headerState = run.state;
    state.replaceChildren(badge(run.state));
    const buttons = [];
    if (session.canWrite && run.state === "running") {
      buttons.push(h("button", { type: "button", id: "cancel-run", class: "danger", onclick: act("cancel") }, "Cancel run"));
    }
    if (session.canWrite && run.state !== "running" && run.state !== "succeeded") {
      buttons.push(h("button", { type: "button", id: "retry-run", onclick: act("retry") }, "Retry run"));
    }
    actions.replaceChildren(...buttons);
  }

  async function showPanel(force) {
    const step = run.steps.find((s) => s.name === selected);
    const signature = step ? JSON.stringify([step.state, step.attempts, step.retries, step.finishedAt, step.itemStates]) : "absent";
    if (!force && signature === shownSignature) return;
    shownSignature = signature;
    if (!step) {
      panelTicket++;
      panel.replaceChildren(h("h2", {}, selected), h("p", { class: "muted" }, "Not started yet."), h("div", { class: "live-slot" }));
      shownStep = selected;
      placeLive();
      return;
    }
    const ticket = ++panelTicket;
    const content = await stepPanel(run, step, session, refreshNow);
    if (ticket !== panelTicket) return;
    panel.replaceChildren(content);
    shownStep = step.name;
    placeLive();
  }

  // The shown step's live reply into the panel's slot; with no step chosen, the speaking step's.
  function placeLive() {
    const slot = panel.querySelector(".live-slot");
    if (!slot) return;
    const step = shownStep === null ? live.speaking() : shownStep;
    const element = live.element(step);
    if (!element) slot.replaceChildren();
    else if (shownStep === null) slot.replaceChildren(h("h2", {}, step), element);
    else slot.replaceChildren(element);
  }

  function choose(name) {
    for (const [other, group] of groups) group.classList.toggle("selected", other === name);
    selected = name;
    showPanel(true);
  }

  function repaint() {
    const steps = new Map(run.steps.map((step) => [step.name, step]));
    for (const [name, group] of groups) {
      const step = steps.get(name);
      paint(group, step ? step.state : "pending", step ? detail(step, byName.get(name)) : undefined);
    }
    drawHeader();
    times.replaceChildren(timeline(run));
    if (run.outputs !== null && run.outputs !== undefined) times.append(h("h3", {}, "Outputs"), h("pre", { class: "value", id: "run-outputs" }, pretty(run.outputs)));
    if (selected) showPanel(false);
  }

  // A finished run's stream has ended: once a retry makes it run again, follow it again.
  function show(next) {
    const resumed = run.state !== "running" && next.state === "running";
    run = next;
    repaint();
    if (resumed && !stopped) watch();
  }

  let pending = null;
  let stopped = false;
  async function refreshNow() {
    clearTimeout(pending);
    pending = null;
    try {
      show(await api(`runs/${encodeURIComponent(run.id)}`));
    } catch (error) {
      status.replaceChildren(problem(error));
    }
  }
  const refreshSoon = () => {
    if (pending === null && !stopped) pending = setTimeout(refreshNow, REFRESH_MS);
  };

  let controller = null;
  function watch() {
    if (controller) controller.abort();
    controller = new AbortController();
    follow(
      `runs/${encodeURIComponent(run.id)}/events`,
      (type, event) => {
        if (type === "model.delta") return live.add(event); // no state changes: nothing to fetch again
        const group = event.step && groups.get(event.step);
        if (group && EVENT_STATES[type]) paint(group, EVENT_STATES[type]);
        if (event.step && FINISHED.has(EVENT_STATES[type])) live.end(event.step);
        else if (event.step && EVENT_STATES[type]) live.begin(event.step);
        refreshSoon();
      },
      controller.signal,
    ).then(() => {
      live.clear(); // the run has ended (or the stream could not be resumed): no one is writing
      if (!stopped) refreshNow();
    });
  }
  const poll = setInterval(() => run.state === "running" && refreshSoon(), POLL_MS);

  main.replaceChildren(
    header,
    h("div", { class: "run-body" }, h("div", { class: "graph", tabindex: -1 }, svg), panel),
    h("h2", {}, "Timeline"),
    times,
  );
  repaint();
  performance.mark("pweza:run-drawn"); // what benchmarks/ui_render.py reads
  watch();
  return () => {
    stopped = true;
    clearTimeout(pending);
    clearInterval(poll);
    controller.abort();
  };
}
