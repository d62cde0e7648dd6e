// Agents and pools: per pool its connected agents and free slots, its pending tasks and recent
// failures; the templates with their runtimes. Refreshed every few seconds.

import { api } from "../api.js";
import { badge, h, problem, when } from "../dom.js";

const REFRESH_MS = 3000;

async function pending(pool) {
  const [queued, running] = await Promise.all(
    ["pending", "running"].map((state) => api("tasks", { params: { pool: pool.metadata.name, namespace: pool.metadata.namespace, state, limit: 1000 } })),
  );
  return { queued: queued.items.length, running: running.items.length };
}

function table(headings, rows, id) {
  return h("table", { class: "list", id }, h("thead", {}, h("tr", {}, headings.map((t) => h("th", { scope: "col" }, t)))), h("tbody", {}, rows));
}

async function draw() {
  const [pools, templates, agents, failed] = await Promise.all([
    api("agentpools", { params: { limit: 1000 } }),
    api("agenttemplates", { params: { limit: 1000 } }),
    api("agents"),
    api("tasks", { params: { state: "failed", limit: 20 } }),
  ]);
  const counts = await Promise.all(pools.items.map(pending));
  const poolRows = pools.items.map((pool, i) => {
    const mine = agents.items.filter((a) => a.pool === pool.metadata.name && a.namespace === (pool.metadata.namespace || "default"));
    const free = mine.reduce((sum, a) => sum + a.freeSlots, 0);
    const slots = mine.reduce((sum, a) => sum + a.slots, 0);
    return h(
      "tr",
      { "data-pool": pool.metadata.name },
      h("td", {}, pool.metadata.name),
      h("td", {}, pool.spec.templateRef),
      h("td", {}, String(mine.length)),
      h("td", {}, `${free} of ${slots}`),
      h("td", {}, String(counts[i].queued)),
      h("td", {}, String(counts[i].running)),
    );
  });
  const agentRows = agents.items.map((a) =>
    h("tr", {}, h("td", {}, a.id), h("td", {}, a.pool), h("td", {}, badge(a.state)), h("td", {}, `${a.freeSlots}/${a.slots}`), h("td", {}, `${a.hostname}:${a.pid}`), h("td", {}, when(a.connectedAt))),
  );
  const failureRows = failed.items.map((t) =>
    h("tr", {}, h("td", {}, t.id), h("td", {}, t.pool), h("td", {}, when(t.finishedAt)), h("td", { class: "error" }, t.error ? `${t.error.type}: ${t.error.message}` : "")),
  );
  const templateRows = templates.items.map((t) =>
    h("tr", {}, h("td", {}, t.metadata.name), h("td", {}, t.spec.runtime.kind), h("td", {}, t.spec.runtime.handler || t.spec.runtime.model || t.spec.runtime.image || "—"), h("td", {}, String(t.spec.concurrency ?? 1))),
  );
  return [
    h("h1", {}, "Agents and pools"),
    h("h2", {}, "Pools"),
    table(["Pool", "Template", "Agents", "Free slots", "Pending tasks", "Running tasks"], poolRows, "pools"),
    h("h2", {}, "Connected agents"),
    agentRows.length ? table(["Agent", "Pool", "State", "Free slots", "Process", "Connected"], agentRows, "agents") : h("p", { class: "muted" }, "No agent is connected."),
    h("h2", {}, "Recent failures"),
    failureRows.length ? table(["Task", "Pool", "Failed", "Error"], failureRows, "failures") : h("p", { class: "muted" }, "No failed tasks."),
    h("h2", {}, "Templates"),
    table(["Template", "Runtime", "Handler or model", "Slots per agent"], templateRows, "templates"),
  ];
}

export async function render(main) {
  main.replaceChildren(...(await draw()));
  let stopped = false;
  let timer = null;
  const again = async () => {
    try {
      const content = await draw();
      // Only when something changed: a refresh would otherwise take the keyboard's focus away.
      const text = content.map((element) => element.textContent).join("");
      if (!stopped && text !== main.textContent) main.replaceChildren(...content);
    } catch (error) {
      if (!stopped) main.replaceChildren(problem(error));
    }
    if (!stopped) timer = setTimeout(again, REFRESH_MS);
  };
  timer = setTimeout(again, REFRESH_MS);
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
