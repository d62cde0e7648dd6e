// One step of a run: its state and timings, its task's input and attempts with their errors,
// what its model is writing now (a slot the run page fills), its output, the tasks it delegated,
// its log, and what may be done with it (approve or reject, retry). Everything shown from the run
// is text.

import { api, text } from "../api.js";
import { badge, duration, h, pretty, problem, when } from "../dom.js";

const RETRYABLE = new Set(["failed", "cancelled", "timed_out"]); // what the API retries

function section(title, ...content) {
  return h("section", {}, h("h3", {}, title), ...content);
}

function block(value, label) {
  return h("pre", { class: "value", "aria-label": label }, pretty(value));
}

function errorText(error) {
  return error ? `${error.type || "Error"}: ${error.message}` : "";
}

function children(tree) {
  if (!tree || !tree.length) return h("p", { class: "muted" }, "None.");
  return h(
    "ul",
    { class: "tree" },
    tree.map((child) =>
      h(
        "li",
        {},
        badge(child.state),
        ` ${child.taskId} on ${child.pool}, ${child.attempts} attempt(s)`,
        child.error ? h("div", { class: "error" }, errorText(child.error)) : null,
        child.children.length ? children(child.children) : null,
      ),
    ),
  );
}

function approval(facts) {
  const rows = [
    ["Asks", facts.message],
    ["Asked", when(facts.requestedAt)],
    ["Deadline", when(facts.deadline)],
    ["Decision", facts.decision],
    ["By", facts.by],
    ["Comment", facts.comment],
  ].filter(([, value]) => value !== undefined && value !== null && value !== "");
  return h("dl", { class: "facts", id: "approval" }, rows.map(([name, value]) => [h("dt", {}, name), h("dd", {}, value)]));
}

function decision(runId, step, onDone) {
  const comment = h("textarea", { id: "decision-comment", rows: 2, maxlength: 2000, placeholder: "a comment (optional)" });
  const message = h("div", { "aria-live": "polite" });
  const decide = (verb) => async () => {
    try {
      await api(`runs/${encodeURIComponent(runId)}/steps/${encodeURIComponent(step.name)}/${verb}`, {
        method: "POST",
        body: { comment: comment.value },
      });
      onDone();
    } catch (error) {
      message.replaceChildren(problem(error));
    }
  };
  return h(
    "div",
    { class: "decision" },
    h("label", { for: "decision-comment" }, "Comment"),
    comment,
    h("div", { class: "actions" },
      h("button", { type: "button", id: "approve", class: "primary", onclick: decide("approve") }, "Approve"),
      h("button", { type: "button", id: "reject", class: "danger", onclick: decide("reject") }, "Reject"),
    ),
    message,
  );
}

async function taskDetails(taskId) {
  const [task, log] = await Promise.all([
    api(`tasks/${encodeURIComponent(taskId)}`),
    text(`tasks/${encodeURIComponent(taskId)}/logs`, { tail: 200 }).catch((error) => `(no log: ${error.message})`),
  ]);
  const attempts = (task.attemptHistory || []).map((attempt) =>
    h(
      "li",
      {},
      badge(attempt.state),
      ` #${attempt.number} on ${attempt.agentId}, ${duration(attempt.startedAt, attempt.finishedAt)}`,
      attempt.error ? h("div", { class: "error" }, errorText(attempt.error)) : null,
    ),
  );
  return [
    section("Input", block(task.input, "input")),
    section("Attempts", attempts.length ? h("ol", { class: "attempts" }, attempts) : h("p", { class: "muted" }, "None yet.")),
    section("Log", h("pre", { class: "log", "aria-label": "log" }, log || "(empty)")),
  ];
}

/** The panel for `step` of `run`; onChange() after the user changed something. */
export async function stepPanel(run, step, session, onChange) {
  const spec = (run.spec.steps || []).find((s) => s.name === step.name) || {};
  const status = h("div", { "aria-live": "polite" });
  const retry = async () => {
    try {
      await api(`runs/${encodeURIComponent(run.id)}/retry`, { method: "POST", body: { step: step.name } });
      onChange();
    } catch (error) {
      status.replaceChildren(problem(error));
    }
  };
  const parts = [
    h("h2", {}, step.name, " ", badge(step.state)),
    h("dl", { class: "facts" },
      h("dt", {}, "Started"), h("dd", {}, when(step.startedAt)),
      h("dt", {}, "Took"), h("dd", {}, duration(step.startedAt, step.finishedAt)),
      h("dt", {}, "Attempts"), h("dd", {}, String(step.attempts)),
      h("dt", {}, "Retries"), h("dd", {}, String(step.retries)),
      spec.agent ? [h("dt", {}, "Pool"), h("dd", {}, spec.agent.pool)] : null,
      step.items !== null && step.items !== undefined ? [h("dt", {}, "Items"), h("dd", {}, String(step.items))] : null,
    ),
  ];
  if (step.itemStates) {
    const counts = Object.entries(step.itemStates).map(([state, count]) => h("li", {}, badge(state), ` ${count}`));
    parts.push(section("Items by state", h("ul", { class: "counts" }, counts)));
  }
  if (step.error) parts.push(section("Error", h("pre", { class: "error value", id: "step-error" }, errorText(step.error))));
  if (step.approval) parts.push(section("Approval", approval(step.approval)));
  if (step.state === "waiting_approval" && session.canWrite) parts.push(decision(run.id, step, onChange));
  if (RETRYABLE.has(step.state) && session.canWrite) {
    parts.push(h("div", { class: "actions" }, h("button", { type: "button", id: "retry-step", onclick: retry }, "Retry this step"), status));
  }
  parts.push(h("div", { class: "live-slot" })); // what its model is writing now (pages/reply.js), while it runs
  parts.push(section("Output", block(step.output, "output")));
  if (step.taskId) {
    parts.push(section("Delegated tasks", children(step.children)));
    try {
      parts.push(...(await taskDetails(step.taskId)));
    } catch (error) {
      parts.push(problem(error));
    }
  } else {
    // A fan-out (one task per item) or an approval has no one task to show: its spec says what it does.
    parts.push(section("Spec", block(spec, "spec")));
  }
  return h("aside", { class: "step", id: "step-panel", "aria-label": `step ${step.name}` }, parts);
}
