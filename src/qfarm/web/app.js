// qfarm Batch Monitor: batches, jobs, segments and nodes of one controller, kept current by
// its server-sent-event stream. Plain JavaScript, no build step; every value from the API is
// put into the page as text, never as HTML.
"use strict";

const API = "/api/v1";
const TOKEN_KEY = "qfarm-token";
const RECONNECT_MS = 2000;

const state = {
  view: "batches",
  batchId: null,
  segmentId: null,
  attempt: null,
  events: null,
  follow: null,
  refreshTimer: null,
  presetsLoaded: false,
};

// ------------------------------------------------------------------ the API

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

async function api(path, options = {}) {
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
    return api(path, options);
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
  return body;
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
      connectEvents();
      resolve();
    };
    if (!dialog.open) dialog.showModal();
    input.focus();
  });
  return tokenPrompt;
}

function streamUrl(path) {
  const query = token() ? `?token=${encodeURIComponent(token())}` : "";
  return API + path + query;
}

// ------------------------------------------------------------------ helpers

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "className") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function when(epoch) {
  if (!epoch) return "–";
  const date = new Date(epoch * 1000);
  return date.toLocaleString([], { dateStyle: "short", timeStyle: "medium" });
}

function span(seconds) {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) return "–";
  seconds = Math.max(0, Math.round(seconds));
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  return h ? `${h}h ${m}m` : m ? `${m}m ${s}s` : `${s}s`;
}

function bytes(n) {
  if (!n) return "–";
  const gib = n / 2 ** 30;
  return gib >= 1 ? `${gib.toFixed(1)} GiB` : `${Math.round(n / 2 ** 20)} MiB`;
}

function fraction(segments) {
  if (segments.work_total > 0) return segments.work_done / segments.work_total;
  return segments.total ? (segments.done + segments.failed + segments.canceled) / segments.total : 0;
}

function progressBar(value, label) {
  const percent = Math.round(value * 100);
  return el("progress", { max: "100", value: String(percent), "aria-label": label, title: `${percent}%` });
}

function stateLabel(value) {
  return el("span", { className: `state ${value}`, text: value });
}

function showMessage(text) {
  const box = document.getElementById("message");
  box.textContent = text;
  box.hidden = !text;
}

// ------------------------------------------------------------------ live updates

function setConnection(text, cls) {
  const status = document.getElementById("connection");
  status.textContent = text;
  status.className = `connection ${cls}`;
}

function connectEvents() {
  if (state.events) state.events.close();
  const source = new EventSource(streamUrl("/events"));
  state.events = source;
  source.onopen = () => {
    setConnection("live", "live");
    refresh();
  };
  source.addEventListener("change", () => scheduleRefresh());
  source.onerror = () => {
    setConnection("reconnecting to the controller…", "reconnecting");
    if (source.readyState === EventSource.CLOSED) {
      // The browser gave up (the controller answered with an error): try again ourselves.
      setTimeout(() => {
        if (state.events === source) connectEvents();
      }, RECONNECT_MS);
    }
  };
}

function scheduleRefresh() {
  if (state.refreshTimer) return;
  state.refreshTimer = setTimeout(() => {
    state.refreshTimer = null;
    refresh();
  }, 150);
}

async function refresh() {
  try {
    if (state.view === "batches") await renderBatches();
    else if (state.view === "batch") await renderBatch();
    else if (state.view === "nodes") await renderNodes();
  } catch (error) {
    if (error instanceof ApiError) showMessage(error.message);
    else setConnection("reconnecting to the controller…", "reconnecting");
  }
}

// ------------------------------------------------------------------ routing

function route() {
  const parts = (location.hash || "#/batches").slice(2).split("/");
  let view = parts[0] || "batches";
  if (view === "batch" && parts[1]) {
    if (state.batchId !== Number(parts[1])) {
      state.segmentId = null;
      stopFollowing();
    }
    state.batchId = Number(parts[1]);
  } else if (!["batches", "nodes", "submit"].includes(view)) {
    view = "batches";
  }
  if (view !== "batch") stopFollowing();
  state.view = view;
  for (const section of document.querySelectorAll("main > section")) {
    section.hidden = section.id !== `view-${view}`;
  }
  for (const link of document.querySelectorAll("nav a")) {
    const current = link.dataset.view === view || (view === "batch" && link.dataset.view === "batches");
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  showMessage("");
  if (view === "submit") loadPresets();
  refresh();
}

// ------------------------------------------------------------------ batches

async function renderBatches() {
  const batches = await api("/batches");
  const body = document.querySelector("#batches-table tbody");
  body.replaceChildren();
  const now = Date.now() / 1000;
  for (const batch of batches.slice().reverse()) {
    const done = fraction(batch.segments);
    let eta = null;
    if (batch.started_at && !batch.finished_at && done > 0) {
      eta = ((now - batch.started_at) * (1 - done)) / done;
    }
    const open = () => (location.hash = `#/batch/${batch.id}`);
    const link = el("a", { href: `#/batch/${batch.id}`, text: String(batch.id) });
    body.append(
      el(
        "tr",
        { className: "clickable", "data-batch": String(batch.id), onclick: open },
        el("td", {}, link),
        el("td", { className: "wrap", text: batch.name || "–" }),
        el("td", {}, stateLabel(batch.state)),
        el("td", {}, progressBar(done, `batch ${batch.id} progress`), ` ${Math.round(done * 100)}%`),
        el("td", { className: "wide-only", text: priorityLabel(batch.priority) }),
        el("td", { className: "wide-only", text: batch.owner || "–" }),
        el("td", { className: "wide-only", text: when(batch.submitted_at) }),
        el("td", { className: "wide-only", text: when(batch.started_at) }),
        el("td", { text: batch.finished_at ? "–" : span(eta) }),
      ),
    );
  }
  document.getElementById("batches-empty").hidden = batches.length > 0;
}

// A priority reads as its name where it is one of the named levels (as in the CLI).
const PRIORITY_NAMES = { 75: "high", 50: "medium", 25: "low" };
function priorityLabel(value) {
  return PRIORITY_NAMES[value] || String(value);
}

// ------------------------------------------------------------------ one batch

async function renderBatch() {
  const id = state.batchId;
  const [batch, segments, attempts] = await Promise.all([
    api(`/batches/${id}`),
    api(`/batches/${id}/segments`),
    api(`/batches/${id}/attempts`),
  ]);
  document.getElementById("batch-title").textContent = `Batch ${batch.id}: ${batch.name || "(no name)"}`;
  const summary = document.getElementById("batch-summary");
  const counts = batch.segments;
  summary.replaceChildren(
    el("span", {}, "state ", stateLabel(batch.state)),
    el("span", {}, "progress ", el("b", { text: `${Math.round(fraction(counts) * 100)}%` })),
    el("span", {}, "segments ", el("b", { text: `${counts.done} done, ${counts.running} running, ${counts.failed} failed, ${counts.canceled} canceled of ${counts.total}` })),
    el("span", {}, "priority ", el("b", { text: priorityLabel(batch.priority) })),
    el("span", {}, "submitted ", el("b", { text: when(batch.submitted_at) })),
  );
  const priority = document.getElementById("batch-priority");
  if (document.activeElement !== priority) {
    priority.value = batch.priority >= 75 ? "high" : batch.priority <= 25 ? "low" : "medium";
  }
  const ended = ["done", "failed", "canceled"].includes(batch.state);
  const enabled = {
    pause: ["queued", "running"].includes(batch.state),
    resume: ["paused", "held"].includes(batch.state),
    cancel: !ended,
    resubmit: ["failed", "canceled"].includes(batch.state),
    remove: ended,
  };
  for (const button of document.querySelectorAll("#view-batch [data-action]")) {
    button.disabled = !enabled[button.dataset.action];
  }

  const jobs = document.querySelector("#jobs-table tbody");
  jobs.replaceChildren();
  for (const job of batch.jobs) {
    jobs.append(
      el(
        "tr",
        {},
        el("td", { text: job.name }),
        el("td", { text: job.type }),
        el("td", {}, stateLabel(job.state)),
        el("td", {}, progressBar(job.progress, `job ${job.name} progress`), ` ${Math.round(job.progress * 100)}%`),
        job.error || !job.waiting
          ? el("td", { className: "wrap", text: job.error || "" })
          : el("td", { className: "wrap waiting", text: `waiting: ${job.waiting}` }),
      ),
    );
  }

  const grid = document.getElementById("segment-grid");
  grid.replaceChildren();
  for (const segment of segments) {
    const label = `segment ${segment.index} (${segment.label}): ${segment.state}` + (segment.node ? ` on ${segment.node}` : "");
    grid.append(
      el(
        "button",
        {
          type: "button",
          className: `cell ${segment.state}` + (segment.id === state.segmentId ? " selected" : ""),
          title: label,
          "aria-label": label,
          "data-segment": String(segment.id),
          "data-state": segment.state,
          onclick: () => selectSegment(segment),
        },
        String(segment.index),
      ),
    );
  }
  if (state.segmentId !== null) {
    const selected = segments.find((s) => s.id === state.segmentId);
    if (selected) await renderSegment(selected);
  }
  drawTimeline(attempts, segments);
}

async function selectSegment(segment) {
  state.segmentId = segment.id;
  state.attempt = null;
  stopFollowing();
  for (const cell of document.querySelectorAll(".cell")) {
    cell.classList.toggle("selected", Number(cell.dataset.segment) === segment.id);
  }
  await renderSegment(segment);
}

async function renderSegment(segment) {
  const detail = document.getElementById("segment-detail");
  detail.hidden = false;
  document.getElementById("segment-title").textContent =
    `Segment ${segment.index}: ${segment.label} (${segment.state})`;
  const attempts = await api(`/batches/${state.batchId}/segments/${segment.id}/attempts`);
  const body = document.querySelector("#attempts-table tbody");
  body.replaceChildren();
  for (const attempt of attempts) {
    const took = attempt.started_at && attempt.ended_at ? span(attempt.ended_at - attempt.started_at) : "–";
    body.append(
      el(
        "tr",
        {},
        el("td", { text: String(attempt.number) }),
        el("td", { text: attempt.node }),
        el("td", { text: attempt.outcome || "running" }),
        el("td", { text: attempt.exit_code === null ? "–" : String(attempt.exit_code) }),
        el("td", { text: when(attempt.started_at) }),
        el("td", { text: took }),
        el("td", { className: "wrap", text: attempt.error || "" }),
        el("td", {}, el("button", { type: "button", text: "Show", onclick: () => showLog(segment, attempt) })),
      ),
    );
  }
  const last = attempts[attempts.length - 1];
  if (last && state.attempt === null) showLog(segment, last);
}

function stopFollowing() {
  if (state.follow) {
    state.follow.close();
    state.follow = null;
  }
}

async function showLog(segment, attempt) {
  stopFollowing();
  state.attempt = attempt.number;
  const log = document.getElementById("log");
  const title = document.getElementById("log-title");
  title.textContent = `Log of attempt ${attempt.number} on ${attempt.node}`;
  log.textContent = "";
  if (attempt.ended_at) {
    log.textContent = await api(`/batches/${state.batchId}/segments/${segment.id}/attempts/${attempt.number}/log`);
    return;
  }
  // A running attempt: follow its log as it grows.
  title.textContent += " (following)";
  const path = `/batches/${state.batchId}/segments/${segment.id}/attempts/${attempt.number}/follow`;
  const source = new EventSource(streamUrl(path));
  state.follow = source;
  source.addEventListener("log", (event) => {
    const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    log.append(JSON.parse(event.data));
    if (atBottom) log.scrollTop = log.scrollHeight;
  });
  source.addEventListener("end", () => {
    title.textContent = `Log of attempt ${attempt.number} on ${attempt.node}`;
    stopFollowing();
  });
  source.onerror = () => {
    // The stream would start again from the top: stop, and say so.
    title.textContent = `Log of attempt ${attempt.number} on ${attempt.node} (stopped following: connection lost)`;
    stopFollowing();
  };
}

// Tick steps for the timeline's time scale, in seconds: the first that gives at most six.
const TICK_STEPS = [0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400];

function svgEl(tag, attrs, text) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

function drawTimeline(attempts, segments) {
  const box = document.getElementById("timeline");
  box.replaceChildren();
  const started = attempts.filter((a) => a.started_at || a.dispatched_at);
  if (!started.length) {
    box.append(el("p", { className: "empty", text: "Nothing has run yet." }));
    return;
  }
  const indexOf = new Map(segments.map((s) => [s.id, s.index]));
  const now = Date.now() / 1000;
  const nodes = [...new Set(started.map((a) => a.node))].sort();
  const t0 = started.reduce((low, a) => Math.min(low, a.started_at || a.dispatched_at), Infinity);
  const t1 = started.reduce((high, a) => Math.max(high, a.ended_at || now), -Infinity);
  const width = Math.max(box.clientWidth || 600, 320);
  const left = 110;
  const row = 22;
  const rowsHeight = nodes.length * row;
  const height = rowsHeight + 40;
  const scale = (width - left - 10) / Math.max(t1 - t0, 0.001);
  const svg = svgEl("svg", { width, height, role: "img", "aria-label": "attempts per node over time" });
  const style = getComputedStyle(document.documentElement);
  // The time scale: a line and a label every `step` seconds from the first start.
  const step = TICK_STEPS.find((s) => (t1 - t0) / s <= 6) || TICK_STEPS[TICK_STEPS.length - 1];
  for (let n = 0; n * step <= t1 - t0 + 1e-9; n += 1) {
    const t = n * step;
    const x = left + t * scale;
    svg.append(svgEl("line", { x1: x, x2: x, y1: 0, y2: rowsHeight + 4, stroke: "#d8dde6", class: "tick" }));
    svg.append(svgEl("text", { x, y: rowsHeight + 18, "text-anchor": "middle", class: "tick-label" }, step < 1 ? `+${t.toFixed(1)}s` : `+${span(t)}`));
  }
  nodes.forEach((node, i) => svg.append(svgEl("text", { x: 4, y: i * row + 15 }, node)));
  const colours = { done: "--done", failed: "--failed", canceled: "--canceled", lost: "--queued" };
  for (const attempt of started) {
    const begin = attempt.started_at || attempt.dispatched_at;
    const end = attempt.ended_at || now;
    const x = left + (begin - t0) * scale;
    const y = nodes.indexOf(attempt.node) * row + 4;
    const barWidth = Math.max(2, (end - begin) * scale);
    const fill = style.getPropertyValue(colours[attempt.outcome] || "--running");
    const rect = svgEl("rect", { x, y, width: barWidth, height: row - 8, fill });
    const index = indexOf.get(attempt.segment_id) ?? attempt.segment_id;
    rect.append(svgEl("title", {}, `segment ${index} attempt ${attempt.number}: ${attempt.outcome || "running"}, ${span(end - begin)}`));
    svg.append(rect);
    // Each bar says which segment it is, where there is room for the number.
    const label = String(index);
    if (barWidth >= 8 * label.length + 6) {
      svg.append(svgEl("text", { x: x + 3, y: y + row - 11, class: "bar-label" }, label));
    }
  }
  svg.append(svgEl("text", { x: left, y: height - 4, class: "tick-label" }, `${span(t1 - t0)} from ${when(t0)}`));
  box.append(svg);
}

async function act(action) {
  const id = state.batchId;
  const verbs = {
    pause: "Pause",
    resume: "Resume",
    cancel: "Cancel",
    resubmit: "Resubmit the failed segments of",
    remove: "Remove, with its logs and stored files,",
  };
  if (!confirm(`${verbs[action]} batch ${id}?`)) return;
  try {
    if (action === "remove") {
      await api(`/batches/${id}`, { method: "DELETE" });
      showMessage("");
      location.hash = "#/batches";
      return;
    }
    await api(`/batches/${id}/${action}`, { method: "POST" });
    showMessage("");
  } catch (error) {
    showMessage(error.message);
  }
  refresh();
}

async function setPriority() {
  const id = state.batchId;
  const level = document.getElementById("batch-priority").value;
  if (!confirm(`Set the priority of batch ${id} to ${level}?`)) return;
  try {
    await api(`/batches/${id}/priority`, { method: "PUT", body: { priority: level } });
    showMessage("");
  } catch (error) {
    showMessage(error.message);
  }
  refresh();
}

// ------------------------------------------------------------------ nodes

async function renderNodes() {
  const nodes = await api("/nodes");
  const body = document.querySelector("#nodes-table tbody");
  body.replaceChildren();
  for (const node of nodes) {
    const services = Object.entries(node.services)
      .map(([name, count]) => `${name} ${node.busy[name] || 0}/${count}`)
      .join(", ");
    const running = node.running.map((r) => `batch ${r.batch_id} segment ${r.segment_id}`).join(", ");
    const tools = Object.entries(node.fingerprint)
      .filter(([name]) => name !== "python")
      .map(([name, version]) => `${name} ${version}`)
      .join(", ");
    const enabled = node.state !== "disabled";
    const action = el("button", {
      type: "button",
      text: enabled ? "Drain" : "Enable",
      "data-node": node.name,
      "aria-label": `${enabled ? "Drain" : "Enable"} node ${node.name}`,
      disabled: node.state === "offline",
      onclick: () => setNode(node.name, !enabled),
    });
    body.append(
      el(
        "tr",
        { "data-node": node.name },
        el("td", { text: node.name }),
        el("td", {}, stateLabel(node.state), node.refused ? ` (${node.refused})` : ""),
        el("td", { text: services || "–" }),
        el("td", { className: "wrap", text: running || "idle" }),
        el("td", { text: `${node.cores || "–"}` + (node.load.cpu_percent !== undefined ? ` (${Math.round(node.load.cpu_percent)}% busy)` : "") }),
        el("td", { text: node.load.memory_used ? `${bytes(node.load.memory_used)} of ${bytes(node.memory)}` : bytes(node.memory) }),
        el("td", { className: "wrap", text: tools }),
        el("td", {}, action),
      ),
    );
  }
  document.getElementById("nodes-empty").hidden = nodes.length > 0;
}

async function setNode(name, enable) {
  const question = enable
    ? `Give node ${name} work again?`
    : `Drain node ${name}? Its running segments finish; it gets no new ones.`;
  if (!confirm(question)) return;
  try {
    await api(`/nodes/${encodeURIComponent(name)}/${enable ? "enable" : "disable"}`, { method: "POST" });
  } catch (error) {
    showMessage(error.message);
  }
  refresh();
}

// ------------------------------------------------------------------ submit

async function loadPresets() {
  if (state.presetsLoaded) return;
  try {
    const presets = await api("/presets");
    const select = document.getElementById("preset-select");
    select.replaceChildren(
      ...presets.map((p) =>
        el("option", { value: p.name, disabled: !p.available }, `${p.name}: ${p.description}`),
      ),
    );
    state.presetsLoaded = true;
  } catch (error) {
    showMessage(error.message);
  }
}

// Split a command line into arguments as a POSIX shell would for quotes and backslashes
// (no expansion): the API takes the command as a list, like the CLI sends it.
function splitCommand(text) {
  const args = [];
  let current = "";
  let started = false;
  let quote = null;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quote === "'") {
      if (ch === "'") quote = null;
      else current += ch;
    } else if (quote === '"') {
      if (ch === '"') quote = null;
      else if (ch === "\\" && i + 1 < text.length && '"\\$`'.includes(text[i + 1])) current += text[++i];
      else current += ch;
    } else if (ch === "'" || ch === '"') {
      quote = ch;
      started = true;
    } else if (ch === "\\" && i + 1 < text.length) {
      current += text[++i];
      started = true;
    } else if (/\s/.test(ch)) {
      if (started) args.push(current);
      current = "";
      started = false;
    } else {
      current += ch;
      started = true;
    }
  }
  if (quote) throw new Error("the command has an unclosed quote");
  if (started) args.push(current);
  return args;
}

function jobFromForm(form) {
  const value = (name) => form.elements[name].value.trim();
  const number = (name) => (value(name) === "" ? undefined : Number(value(name)));
  const type = value("type");
  const spec = {};
  const put = (key, v) => {
    if (v !== undefined && v !== "") spec[key] = v;
  };
  if (type === "command") {
    spec.command = splitCommand(value("command"));
    put("frames", value("frames"));
    put("segment_size", number("segment_size"));
    put("output", value("output"));
    put("cwd", value("cwd"));
  } else if (type === "transcode") {
    put("input", value("input"));
    put("preset", value("preset"));
    put("output_dir", value("output_dir"));
    put("segment_seconds", number("segment_seconds"));
  } else {
    put("scene", value("scene"));
    put("frames", value("render_frames"));
    put("segment_size", number("render_segment_size"));
    put("output", value("render_output"));
    put("width", number("width"));
    put("height", number("height"));
  }
  return { type, spec, retries: number("retries") ?? 2 };
}

async function submitForm(event) {
  event.preventDefault();
  const form = event.target;
  const error = document.getElementById("submit-error");
  error.hidden = true;
  try {
    const job = jobFromForm(form);
    const batch = await api("/batches", {
      method: "POST",
      body: { name: form.elements.name.value.trim(), priority: form.elements.priority.value, jobs: [job] },
    });
    location.hash = `#/batch/${batch.id}`;
  } catch (failure) {
    error.textContent = failure.message;
    error.hidden = false;
    error.focus?.();
  }
}

function showJobFields() {
  const type = document.getElementById("job-type").value;
  for (const fieldset of document.querySelectorAll("fieldset[data-for]")) {
    fieldset.hidden = fieldset.dataset.for !== type;
  }
}

// ------------------------------------------------------------------ start

window.addEventListener("hashchange", route);
document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("#view-batch [data-action]")) {
    button.addEventListener("click", () => act(button.dataset.action));
  }
  document.getElementById("set-priority").addEventListener("click", setPriority);
  document.getElementById("submit-form").addEventListener("submit", submitForm);
  document.getElementById("job-type").addEventListener("change", showJobFields);
  showJobFields();
  route();
  connectEvents();
});
