// A workflow's steps as a layered graph, drawn in SVG. The layout is the classic one in three
// passes: each step's layer is the longest path to it from a step with no dependencies; an edge
// that spans several layers gets a virtual point in each layer it crosses; then the steps of each
// layer are ordered by the mean position of their neighbours (barycentres), sweeping down and up,
// keeping the order with the fewest crossings.

import { s } from "./dom.js";

export const NODE_W = 150;
export const NODE_H = 46;
const GAP_X = 44;
const GAP_Y = 18;
const SWEEPS = 8;
const FIT_WIDTH = 1100;

function layers(steps) {
  const index = new Map(steps.map((step, i) => [step.name, i]));
  const depth = new Map();
  const visit = (name, path) => {
    if (depth.has(name)) return depth.get(name);
    if (path.has(name)) return 0; // a cycle: the manager refuses them, but never loop
    path.add(name);
    const step = steps[index.get(name)];
    const deps = (step.depends || []).filter((dep) => index.has(dep));
    const layer = deps.length ? 1 + Math.max(...deps.map((dep) => visit(dep, path))) : 0;
    path.delete(name);
    depth.set(name, layer);
    return layer;
  };
  for (const step of steps) visit(step.name, new Set());
  return depth;
}

function crossings(upper, lower, edgesBetween) {
  const position = new Map(lower.map((id, i) => [id, i]));
  const pairs = [];
  upper.forEach((id, i) => {
    for (const to of edgesBetween.get(id) || []) pairs.push([i, position.get(to)]);
  });
  let count = 0;
  for (let a = 0; a < pairs.length; a++) {
    for (let b = a + 1; b < pairs.length; b++) {
      if ((pairs[a][0] - pairs[b][0]) * (pairs[a][1] - pairs[b][1]) < 0) count++;
    }
  }
  return count;
}

function order(rows, down, up) {
  const total = () => rows.slice(1).reduce((sum, row, i) => sum + crossings(rows[i], row, down), 0);
  let best = rows.map((row) => [...row]);
  let fewest = total();
  const reorder = (row, neighbours, reference) => {
    const position = new Map(reference.map((id, i) => [id, i]));
    const centre = new Map();
    row.forEach((id, i) => {
      const near = (neighbours.get(id) || []).map((other) => position.get(other));
      centre.set(id, near.length ? near.reduce((a, b) => a + b, 0) / near.length : i);
    });
    row.sort((a, b) => centre.get(a) - centre.get(b));
  };
  for (let sweep = 0; sweep < SWEEPS && fewest > 0; sweep++) {
    if (sweep % 2 === 0) for (let i = 1; i < rows.length; i++) reorder(rows[i], up, rows[i - 1]);
    else for (let i = rows.length - 2; i >= 0; i--) reorder(rows[i], down, rows[i + 1]);
    const count = total();
    if (count < fewest) {
      fewest = count;
      best = rows.map((row) => [...row]);
    }
  }
  return { rows: best, crossings: fewest };
}

/** Positions for `steps` ([{name, depends}]): nodes by name, edges as point lists, the size. */
export function layout(steps) {
  const depth = layers(steps);
  const rows = [];
  const place = (id, layer) => (rows[layer] ||= []).push(id);
  const down = new Map();
  const up = new Map();
  const link = (from, to) => {
    (down.get(from) || down.set(from, []).get(from)).push(to);
    (up.get(to) || up.set(to, []).get(to)).push(from);
  };
  for (const step of steps) place(step.name, depth.get(step.name));
  const chains = [];
  for (const step of steps) {
    for (const dep of step.depends || []) {
      if (!depth.has(dep)) continue;
      const chain = [dep];
      for (let layer = depth.get(dep) + 1; layer < depth.get(step.name); layer++) {
        const virtual = `\u0000${dep}\u0000${step.name}\u0000${layer}`;
        place(virtual, layer);
        chain.push(virtual);
      }
      chain.push(step.name);
      chain.slice(1).forEach((id, i) => link(chain[i], id));
      chains.push(chain);
    }
  }
  const ordered = order(rows, down, up);
  const tallest = Math.max(1, ...ordered.rows.map((row) => row.length));
  const height = tallest * (NODE_H + GAP_Y) + GAP_Y;
  const nodes = new Map();
  const points = new Map();
  ordered.rows.forEach((row, layer) => {
    const top = (height - row.length * (NODE_H + GAP_Y) + GAP_Y) / 2;
    row.forEach((id, i) => {
      const at = { x: GAP_X / 2 + layer * (NODE_W + GAP_X), y: top + i * (NODE_H + GAP_Y), layer };
      if (id.startsWith("\u0000")) points.set(id, at);
      else nodes.set(id, at);
    });
  });
  const edges = chains.map((chain) => ({
    from: chain[0],
    to: chain[chain.length - 1],
    points: chain.map((id) => nodes.get(id) || points.get(id)),
  }));
  return { nodes, edges, crossings: ordered.crossings, width: rows.length * (NODE_W + GAP_X), height };
}

function path(points) {
  const [first, ...rest] = points;
  let d = `M${first.x + NODE_W},${first.y + NODE_H / 2}`;
  let from = { x: first.x + NODE_W, y: first.y + NODE_H / 2 };
  // A curve into each point's left side; through a virtual point (a layer the edge crosses), a
  // straight line across the slot to where the next curve starts.
  for (const [i, point] of rest.entries()) {
    const to = { x: point.x, y: point.y + NODE_H / 2 };
    const bend = (to.x - from.x) / 2;
    d += ` C${from.x + bend},${from.y} ${to.x - bend},${to.y} ${to.x},${to.y}`;
    from = { x: point.x + NODE_W, y: to.y };
    if (i < rest.length - 1) d += ` L${from.x},${from.y}`;
  }
  return d;
}

/** Draw the layout into a new <svg>; onSelect(name) when a step is clicked or chosen by keyboard.
 * Returns the svg and each step's group, for paint(). */
export function draw(graph, steps, onSelect) {
  const svg = s("svg", {
    // A graph a little wider than its box is scaled down to fit; a bigger one scrolls.
    class: graph.width <= FIT_WIDTH ? "dag fit" : "dag",
    width: graph.width,
    height: graph.height,
    viewBox: `0 0 ${graph.width} ${graph.height}`,
    role: "group",
    "aria-label": "the workflow's steps and their dependencies",
  });
  svg.style.maxWidth = `${graph.width}px`;
  const edges = s("g", { class: "edges" });
  for (const edge of graph.edges) edges.append(s("path", { d: path(edge.points), "data-from": edge.from, "data-to": edge.to }));
  svg.append(edges);
  const groups = new Map();
  for (const step of steps) {
    const at = graph.nodes.get(step.name);
    const group = s(
      "g",
      { class: "node state-pending", transform: `translate(${at.x},${at.y})`, tabindex: 0, role: "button", "data-step": step.name },
      s("rect", { width: NODE_W, height: NODE_H, rx: 6 }),
      step.foreach ? s("rect", { class: "stack", x: 4, y: -4, width: NODE_W, height: NODE_H, rx: 6 }) : null,
      s("text", { class: "name", x: 10, y: 19 }, step.name.length > 19 ? `${step.name.slice(0, 18)}…` : step.name),
      s("text", { class: "detail", x: 10, y: 36 }, step.approval ? "approval" : step.foreach ? "foreach" : ""),
      s("title", {}, step.name),
    );
    if (step.foreach) group.insertBefore(group.querySelector(".stack"), group.firstChild);
    group.addEventListener("click", () => onSelect(step.name));
    group.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        onSelect(step.name);
      }
    });
    groups.set(step.name, group);
    svg.append(group);
  }
  return { svg, groups };
}

/** Colour a step's node by its state, and write its detail line (a fan-out's counts). */
export function paint(group, state, detail) {
  const wanted = `node state-${state}${group.classList.contains("selected") ? " selected" : ""}`;
  if (group.getAttribute("class") !== wanted) group.setAttribute("class", wanted);
  const line = group.querySelector(".detail");
  if (detail !== undefined && line.textContent !== detail) line.textContent = detail;
  group.setAttribute("aria-label", `${group.dataset.step}: ${state}${detail ? `, ${detail}` : ""}`);
}
