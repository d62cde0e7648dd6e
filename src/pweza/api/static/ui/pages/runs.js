// The runs: newest first, filtered by workflow, state and age, refreshed every few seconds.

import { api } from "../api.js";
import { badge, duration, h, problem, when } from "../dom.js";

const STATES = ["", "running", "succeeded", "failed", "cancelled", "timed_out"];
const AGES = [
  ["", "any time"],
  ["3600", "last hour"],
  ["86400", "last day"],
  ["604800", "last week"],
];
const REFRESH_MS = 2000;
const LIMIT = 200;

function select(id, label, options, value) {
  const element = h(
    "select",
    { id },
    options.map(([optionValue, text]) => h("option", { value: optionValue, selected: optionValue === value }, text)),
  );
  return [h("label", { for: id }, label), element];
}

function row(run) {
  return h(
    "tr",
    { "data-run": run.id },
    h("td", {}, h("a", { href: `#/runs/${encodeURIComponent(run.id)}` }, run.id)),
    h("td", {}, run.workflow),
    h("td", {}, badge(run.state)),
    h("td", {}, when(run.createdAt)),
    h("td", {}, duration(run.createdAt, run.finishedAt)),
  );
}

export async function render(main) {
  const filters = JSON.parse(sessionStorage.getItem("pweza.runFilters") || "{}");
  const workflows = (await api("workflows", { params: { limit: 1000 } })).items.map((w) => w.metadata.name);
  const [workflowLabel, workflow] = select("filter-workflow", "Workflow", [["", "all"], ...workflows.map((n) => [n, n])], filters.workflow || "");
  const [stateLabel, state] = select("filter-state", "State", STATES.map((v) => [v, v || "any"]), filters.state || "");
  const [ageLabel, age] = select("filter-age", "Started", AGES, filters.age || "");
  const body = h("tbody", {});
  const status = h("p", { class: "muted", "aria-live": "polite" });
  main.replaceChildren(
    h("h1", {}, "Runs"),
    h("div", { class: "filters" }, workflowLabel, workflow, stateLabel, state, ageLabel, age),
    h(
      "table",
      { class: "list", id: "runs" },
      h("thead", {}, h("tr", {}, ["Run", "Workflow", "State", "Started", "Duration"].map((t) => h("th", { scope: "col" }, t)))),
      body,
    ),
    status,
  );

  let timer = null;
  let stopped = false;
  const load = async () => {
    clearTimeout(timer);
    const wanted = { workflow: workflow.value, state: state.value, age: age.value };
    sessionStorage.setItem("pweza.runFilters", JSON.stringify(wanted));
    try {
      const page = await api("runs", { params: { workflow: wanted.workflow, state: wanted.state, limit: LIMIT } });
      const since = wanted.age ? Date.now() / 1000 - Number(wanted.age) : 0;
      const shown = page.items.filter((run) => run.createdAt >= since);
      // Rows whose text is unchanged stay as they are (and keep the keyboard's focus).
      const current = new Map([...body.rows].map((tr) => [tr.dataset.run, tr]));
      body.replaceChildren(
        ...shown.map((run) => {
          const fresh = row(run);
          const old = current.get(run.id);
          return old && old.textContent === fresh.textContent ? old : fresh;
        }),
      );
      status.textContent = shown.length ? `${shown.length} run(s)${page.continue ? `, newest ${LIMIT} read` : ""}` : "No runs match.";
    } catch (error) {
      status.replaceChildren(problem(error));
    }
    if (!stopped) timer = setTimeout(load, REFRESH_MS);
  };
  for (const control of [workflow, state, age]) control.addEventListener("change", load);
  await load();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
