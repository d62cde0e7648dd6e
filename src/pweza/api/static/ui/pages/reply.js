// What a running step's model is writing now, from the run's `model.delta` events: the tail of the
// current call's text, or of the tool call it is generating (its name, then its arguments). Only a
// tail is kept (TAIL_CHARS a step), and a step's reply goes when the step finishes: its stored
// output is what the step panel then shows. Every piece is untrusted text, and is put in as text.

import { h } from "../dom.js";

export const TAIL_CHARS = 2000;
const QUIET_MS = 1000; // another task of the step (a foreach item) takes over after this silence

function tail(text) {
  if (text.length <= TAIL_CHARS) return text;
  const cut = text.slice(-TAIL_CHARS);
  const first = cut.charCodeAt(0);
  return first >= 0xdc00 && first <= 0xdfff ? cut.slice(1) : cut; // not half a surrogate pair
}

// One step's reply: the call it follows, its tail, and the element showing them, updated in place.
function reply(step) {
  let key = "";
  let taskId = "";
  let at = 0;
  let text = "";
  let tool = "";
  const about = h("p", { class: "muted live-about" });
  const calling = h("p", { class: "live-tool", hidden: true });
  const body = h("pre", { class: "value live-text", "aria-label": "live reply" });
  const element = h("section", { class: "live-reply", "data-step": step }, h("h3", {}, "Writing now"), about, calling, body);

  function add(piece) {
    const task = String(piece.taskId || "");
    const now = Date.now();
    if (taskId && task !== taskId && now - at < QUIET_MS) return; // the followed task is still speaking
    const call = `${task} ${piece.attempt} ${piece.call}`;
    if (call !== key) [key, taskId, text, tool] = [call, task, "", ""];
    at = now;
    if (piece.tool) [tool, text] = [String(piece.tool), ""];
    text = tail(text + String(piece.text || piece.arguments || ""));
    about.textContent = `${task}, attempt ${piece.attempt}, model call ${piece.call}`;
    calling.replaceChildren(...(tool ? ["Calling tool ", h("code", { class: "live-tool-name" }, tool)] : []));
    calling.hidden = !tool;
    body.textContent = text;
    body.scrollTop = body.scrollHeight; // a tail: its end is what is new
  }
  return { add, element };
}

/** A run's live replies: add(piece) for each `model.delta`; onChange(step) when a step's reply
 * begins or goes, or the step shown with none chosen changes (the panel showing it is redrawn). */
export function liveReplies(onChange) {
  const replies = new Map();
  const ended = new Set(); // finished steps: a piece of theirs still on its way is dropped
  let speaking = null; // shown when no step is chosen: the first to speak, until its reply goes

  return {
    add(piece) {
      const step = String(piece.step || "");
      if (!step || ended.has(step)) return;
      const fresh = !replies.has(step);
      if (fresh) replies.set(step, reply(step));
      replies.get(step).add(piece);
      if (speaking === null) speaking = step;
      if (fresh) onChange(step);
    },
    /** `step` starts (again, after a retry): its pieces are welcome. */
    begin(step) {
      ended.delete(step);
    },
    /** `step` finished: its reply goes, and so does any piece of it that comes late. */
    end(step) {
      ended.add(step);
      if (!replies.delete(step)) return;
      if (speaking === step) speaking = replies.keys().next().value ?? null;
      onChange(step);
    },
    clear() {
      const steps = [...replies.keys()];
      replies.clear();
      speaking = null;
      for (const step of steps) onChange(step);
    },
    /** The element showing `step`'s reply (moved, not copied, into the panel showing it), or null. */
    element(step) {
      return (step && replies.has(step) && replies.get(step).element) || null;
    },
    /** The step to show when none is chosen, or null. */
    speaking: () => speaking,
  };
}
