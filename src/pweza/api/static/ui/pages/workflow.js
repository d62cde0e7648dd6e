// One workflow definition: its graph drawn from the spec, the step's spec when chosen, and a
// form from its inputs schema that starts a run.

import { api } from "../api.js";
import { draw, layout } from "../dag.js";
import { h, pretty, problem } from "../dom.js";
import { inputsForm } from "./form.js";

export async function render(main, [namespace, name], session) {
  const workflow = await api(`workflows/${encodeURIComponent(name)}`, { params: { namespace } });
  const steps = workflow.spec.steps || [];
  const chosen = h("pre", { class: "value", "aria-label": "step spec" }, "Choose a step to see its spec.");
  const { svg, groups } = draw(layout(steps), steps, (step) => {
    for (const [other, group] of groups) group.classList.toggle("selected", other === step);
    chosen.textContent = pretty(steps.find((s) => s.name === step));
  });
  const status = h("div", { "aria-live": "polite" });
  const start = async (inputs) => {
    if (inputs instanceof Error) {
      status.replaceChildren(problem(inputs));
      return;
    }
    try {
      const run = await api(`workflows/${encodeURIComponent(name)}/runs`, { method: "POST", params: { namespace }, body: { inputs } });
      location.hash = `#/runs/${encodeURIComponent(run.id)}`;
    } catch (error) {
      status.replaceChildren(problem(error));
    }
  };
  main.replaceChildren(
    h("h1", {}, `Workflow ${name}`),
    h("p", { class: "muted" }, `namespace ${namespace} · generation ${workflow.metadata.generation ?? "—"} · ${steps.length} steps`),
    h("div", { class: "run-body" }, h("div", { class: "graph" }, svg), h("div", { class: "panel" }, h("h2", {}, "Step"), chosen)),
    h("h2", {}, "Start a run"),
    session.canWrite ? inputsForm(workflow.spec.inputs, start) : h("p", { class: "muted" }, "Your role may not start runs."),
    status,
  );
}
