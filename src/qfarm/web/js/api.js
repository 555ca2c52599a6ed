// The controller's REST API, as the page uses it: one place that adds the client token,
// parses answers and turns error answers into ApiError carrying the API's own one-line
// message (the API answers every error as {"error": "..."}).

export const API = "/api/v1";
const TOKEN_KEY = "qfarm-token";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// The token lives for the browser tab only (sessionStorage): a shared screen in a machine
// room should not keep a client token for the next person.
export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

const newTokenListeners = [];

// Called after the user typed a token: the event stream, refused before, must start again.
export function onNewToken(listener) {
  newTokenListeners.push(listener);
}

export async function api(path, options = {}) {
  return (await apiAnswer(path, options)).body;
}

// The answer's body and its headers (a paged listing's X-Total-Count, the controller's
// clock in X-Qfarm-Time).
export async function apiAnswer(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  if (token()) headers.Authorization = `Bearer ${token()}`;
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(API + path, {
    method: options.method || "GET",
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  if (response.status === 401) {
    await askForToken();
    return apiAnswer(path, options);
  }
  const text = await response.text();
  let body = text;
  try {
    body = text ? JSON.parse(text) : null;
  } catch (_) {
    // plain text (a log)
  }
  if (!response.ok) {
    const message = body && body.error ? body.error : `HTTP ${response.status}`;
    throw new ApiError(response.status, message);
  }
  return { body, headers: response.headers };
}

let tokenPrompt = null; // one prompt, however many requests were refused at once

function askForToken() {
  if (tokenPrompt) return tokenPrompt;
  const dialog = document.getElementById("token-dialog");
  const input = document.getElementById("token-input");
  tokenPrompt = new Promise((resolve) => {
    const form = document.getElementById("token-form");
    form.onsubmit = () => {
      sessionStorage.setItem(TOKEN_KEY, input.value.trim());
      input.value = "";
      tokenPrompt = null;
      for (const listener of newTokenListeners) listener();
      resolve();
    };
    if (!dialog.open) dialog.showModal();
    input.focus();
  });
  return tokenPrompt;
}

// A browser's EventSource sends no headers: streams take the token in the query instead.
export function streamUrl(path) {
  const query = token() ? `?token=${encodeURIComponent(token())}` : "";
  return API + path + query;
}
