// Building elements. Every piece of data goes in as text (a text node), never as markup: a step
// output holding "<script>" is shown as those characters, and the page's CSP forbids inline
// script besides.

const SVG = "http://www.w3.org/2000/svg";

function build(element, attrs, children) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

/** h("a", {href: "#/runs"}, "Runs"): an HTML element with attributes and text or element children. */
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** The same for SVG elements. */
export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG, tag), attrs, children);
}

/** A value as readable text: strings as they are, anything else as indented JSON. */
export function pretty(value) {
  if (value === undefined || value === null) return "—";
  return typeof value === "string" ? value : JSON.stringify(value, null, 2);
}

export function when(seconds) {
  return seconds ? new Date(seconds * 1000).toLocaleString() : "—";
}

export function duration(start, end) {
  if (!start) return "—";
  const seconds = (end || Date.now() / 1000) - start;
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 120) return `${seconds.toFixed(1)} s`;
  return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
}

export function badge(state) {
  return h("span", { class: `badge state-${state}` }, state);
}

/** A problem (an API error) shown as text where the page would be. */
export function problem(error) {
  return h("p", { class: "error", role: "alert" }, error && error.message ? error.message : String(error));
}
