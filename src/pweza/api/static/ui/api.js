// The REST API client. The token lives in sessionStorage (this tab only, gone when it closes),
// goes out as an Authorization header, and never into a URL, where logs and history would keep it.

const KEY = "pweza.token";
const BASE = new URL("../api/v1/", document.baseURI);

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export const token = {
  get: () => sessionStorage.getItem(KEY),
  set: (value) => sessionStorage.setItem(KEY, value),
  clear: () => sessionStorage.removeItem(KEY),
};

export function url(path, params) {
  const target = new URL(path.replace(/^\//, ""), BASE);
  for (const [name, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== "") target.searchParams.set(name, value);
  }
  return target;
}

export function headers(extra) {
  return { Authorization: `Bearer ${token.get()}`, ...extra };
}

async function failure(response) {
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    message = body.detail || body.title || message;
  } catch {
    // not a problem document: the status says enough
  }
  if (response.status === 401) window.dispatchEvent(new CustomEvent("pweza:signed-out"));
  return new ApiError(response.status, message);
}

/** GET (or another method, with a JSON body) and the JSON answer; an ApiError on a problem. */
export async function api(path, { method = "GET", body, params, signal } = {}) {
  const init = { method, signal, headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }) };
  if (body !== undefined) init.body = JSON.stringify(body);
  const response = await fetch(url(path, params), init);
  if (!response.ok) throw await failure(response);
  return response.status === 204 ? null : response.json();
}

/** Plain text (the log routes). */
export async function text(path, params) {
  const response = await fetch(url(path, params), { headers: headers() });
  if (!response.ok) throw await failure(response);
  return response.text();
}

export { failure };
