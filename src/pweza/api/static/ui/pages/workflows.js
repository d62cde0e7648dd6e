// The workflow definitions, each with its steps, linking to its page.

import { api } from "../api.js";
import { h } from "../dom.js";

export async function render(main) {
  const { items } = await api("workflows", { params: { limit: 1000 } });
  const rows = items.map((w) =>
    h(
      "tr",
      {},
      h("td", {}, h("a", { href: `#/workflows/${encodeURIComponent(w.metadata.namespace || "default")}/${encodeURIComponent(w.metadata.name)}` }, w.metadata.name)),
      h("td", {}, w.metadata.namespace || "default"),
      h("td", {}, String((w.spec.steps || []).length)),
      h("td", {}, Object.keys(w.spec.inputs || {}).join(", ") || "—"),
    ),
  );
  main.replaceChildren(
    h("h1", {}, "Workflows"),
    items.length
      ? h("table", { class: "list" }, h("thead", {}, h("tr", {}, ["Workflow", "Namespace", "Steps", "Inputs"].map((t) => h("th", { scope: "col" }, t)))), h("tbody", {}, rows))
      : h("p", { class: "muted" }, "No workflows: apply one with pweza apply -f."),
  );
}
