// Server-sent events read with fetch(): EventSource cannot send an Authorization header.
// The stream is parsed as it arrives; after a dropped connection it resumes after the last id,
// a bounded number of times, until the server's "end" event or the caller aborts.

import { failure, headers, url } from "./api.js";

const RETRIES = 20;
const RETRY_MS = 1000;

function parse(block) {
  const event = { type: "message", data: "", id: null };
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") event.type = value;
    else if (field === "data") event.data += (event.data ? "\n" : "") + value;
    else if (field === "id") event.id = Number(value);
  }
  return event;
}

async function once(path, position, onEvent, signal) {
  const response = await fetch(url(path, { follow: "true", after: position.after }), {
    headers: headers({ Accept: "text/event-stream" }),
    signal,
  });
  if (!response.ok) throw await failure(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return false;
    buffer += value.replaceAll("\r\n", "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const event = parse(buffer.slice(0, cut));
      buffer = buffer.slice(cut + 2);
      if (event.type === "end") return true;
      if (event.id !== null) position.after = event.id;
      if (event.data) onEvent(event.type, JSON.parse(event.data));
    }
  }
}

/** Follow `path` (an events route) until it ends or `signal` aborts; onEvent(type, data) for each. */
export async function follow(path, onEvent, signal) {
  const position = { after: 0 };
  for (let attempt = 0; attempt <= RETRIES && !signal.aborted; attempt++) {
    try {
      if (await once(path, position, onEvent, signal)) return;
    } catch (error) {
      if (signal.aborted || (error.status && error.status < 500)) return;
    }
    await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
  }
}
