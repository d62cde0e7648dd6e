// The steps' timings as bars on one time axis, from the run's start to its end (or now).

import { duration, h } from "../dom.js";

export function timeline(run) {
  const start = run.createdAt;
  const end = run.finishedAt || Date.now() / 1000;
  const span = Math.max(end - start, 0.001);
  const rows = run.steps
    .filter((step) => step.startedAt)
    .map((step) => {
      const bar = h("span", { class: `bar-fill state-${step.state}` });
      bar.style.marginLeft = `${(100 * (step.startedAt - start)) / span}%`;
      bar.style.width = `${Math.max(0.5, (100 * ((step.finishedAt || end) - step.startedAt)) / span)}%`;
      return h(
        "li",
        { "data-step": step.name },
        h("span", { class: "bar-name" }, step.name),
        h("span", { class: "bar-track" }, bar),
        h("span", { class: "bar-time" }, duration(step.startedAt, step.finishedAt)),
      );
    });
  return h("ol", { class: "timeline", "aria-label": "step timings" }, rows.length ? rows : h("li", { class: "muted" }, "No step has started."));
}
