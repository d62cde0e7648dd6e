// The page's shell: sign-in, the navigation, and the hash router (#/runs, #/runs/ID, ...).
// Each page is a module whose render(main, params, session) draws it and returns a function
// that stops whatever it keeps running (a live stream, a timer) when the user leaves.

import { api, token } from "./api.js";
import { h, problem } from "./dom.js";
import * as agents from "./pages/agents.js";
import * as run from "./pages/run.js";
import * as runs from "./pages/runs.js";
import * as workflow from "./pages/workflow.js";
import * as workflows from "./pages/workflows.js";

const ROUTES = [
  [/^#\/runs\/([^/]+)$/, run],
  [/^#\/runs$/, runs],
  [/^#\/workflows\/([^/]+)\/([^/]+)$/, workflow],
  [/^#\/workflows$/, workflows],
  [/^#\/agents$/, agents],
];

const main = document.getElementById("main");
let session = null;
let leave = () => {};

function signInForm(message) {
  const input = h("input", { id: "token", type: "password", autocomplete: "off", required: true, size: 48 });
  const form = h(
    "form",
    { class: "sign-in", "aria-labelledby": "sign-in-title" },
    h("h1", { id: "sign-in-title" }, "Sign in"),
    h("p", {}, "Paste a token from ", h("code", {}, "pweza token create"), ". It stays in this tab only."),
    h("label", { for: "token" }, "Token"),
    input,
    h("button", { type: "submit" }, "Sign in"),
    message ? problem(message) : null,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    token.set(input.value.trim());
    await start();
  });
  main.replaceChildren(form);
  input.focus();
}

function showSession() {
  const signedIn = session !== null;
  document.getElementById("nav").hidden = !signedIn;
  document.getElementById("sign-out").hidden = !signedIn;
  document.getElementById("who").textContent = signedIn ? `${session.name} (${session.role})` : "";
}

async function route() {
  leave();
  leave = () => {};
  if (session === null) return;
  const hash = location.hash || "#/runs";
  for (const [pattern, page] of ROUTES) {
    const found = hash.match(pattern);
    if (!found) continue;
    for (const link of document.querySelectorAll("#nav a")) {
      link.toggleAttribute("aria-current", hash.startsWith(link.getAttribute("href")));
    }
    main.replaceChildren(h("p", { class: "muted" }, "Loading…"));
    try {
      leave = (await page.render(main, found.slice(1).map(decodeURIComponent), session)) || (() => {});
    } catch (error) {
      main.replaceChildren(problem(error));
    }
    return;
  }
  location.hash = "#/runs";
}

async function start() {
  if (!token.get()) {
    signInForm();
    return;
  }
  try {
    const who = await api("whoami");
    session = { ...who, canWrite: who.permissions.includes("write") };
  } catch (error) {
    token.clear();
    session = null;
    showSession();
    signInForm(error.status === 401 || error.status === 403 ? "That token was refused." : error);
    return;
  }
  showSession();
  await route();
}

function signOut() {
  leave();
  token.clear();
  session = null;
  showSession();
  signInForm();
}

document.getElementById("sign-out").addEventListener("click", signOut);
window.addEventListener("hashchange", route);
window.addEventListener("pweza:signed-out", () => session && signOut());
start();
