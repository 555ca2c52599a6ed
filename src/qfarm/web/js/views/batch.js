// One batch: its summary, actions, jobs, segment grid, the chosen segment's attempts and log,
// and the timeline.
//
// The view is read whole once (load: the batch, its segments, its attempts) and then kept
// current from the change events that name this batch (apply). A segment's new state is in
// its event and is shown at once; then only what the events named is read again: the batch
// (its counts, job progress and allowed actions change with every segment) and the attempts
// of each named segment, which give the timeline its bars and the grid the segment's node.

import { api } from "../api.js";
import { el, progressBar, showMessage, stateLabel } from "../dom.js";
import { fraction, priorityLabel, priorityLevel, span, when } from "../format.js";
import { clearLog, showLog, shownAttempt } from "./log.js";
import { drawTimeline } from "./timeline.js";

// Up to this many segments named in one round of changes are read one by one; more (a
// cancel, a resubmit, a tick that dispatches many) and reading the batch's segments and
// attempts whole is the cheaper way: two requests however many changed.
const ONE_BY_ONE = 8;

// How the page shows the batch actions the API lists in a batch's `actions` (see
// qfarm.domain.actions). The page never works out itself what a batch in some state allows:
// it shows a button for each verb listed, in the API's order, and no other. "priority" is
// the priority control beside them. A verb this page does not know yet still gets a button,
// a POST to the route of that name, as every listed verb but remove and priority is.
const ACTIONS = {
  pause: { label: "Pause", ask: "Pause" },
  // Pause, and stop the running processes where they are until Resume (SIGSTOP, SIGCONT).
  suspend: { label: "Suspend", ask: "Suspend (pause, and stop its running processes where they are)" },
  resume: { label: "Resume", ask: "Resume" },
  cancel: { label: "Cancel", ask: "Cancel", danger: true },
  resubmit: { label: "Resubmit failed", ask: "Resubmit the failed segments of" },
  remove: { label: "Remove", ask: "Remove, with its logs and stored files,", danger: true },
};

const view = {
  id: null,
  segments: new Map(), // segment id -> segment, as GET .../segments gives it, kept current
  cells: new Map(), // segment id -> its button in the grid
  attempts: new Map(), // segment id -> its attempts, oldest first
  selected: null, // the segment whose attempts are shown
};

let run = (task) => task(); // main's queue: updates of the page happen one at a time

export function init(serialize) {
  run = serialize;
  for (const id of ["grid-state", "grid-node"]) {
    document.getElementById(id).addEventListener("input", refreshGridFilters);
  }
  document.getElementById("set-priority").addEventListener("click", () => {
    const level = document.getElementById("batch-priority").value;
    if (confirm(`Set the priority of batch ${view.id} to ${level}?`)) run(() => setPriority(level));
  });
}

// Leaving the view: a followed log is let go, and chosen again on coming back.
export function leave() {
  clearLog();
}

export async function load(id) {
  if (id !== view.id) {
    view.selected = null;
    clearLog();
    document.getElementById("segment-detail").hidden = true;
  }
  view.id = id;
  const [batch, segments, attempts] = await Promise.all([
    api(`/batches/${id}`),
    api(`/batches/${id}/segments`),
    api(`/batches/${id}/attempts`),
  ]);
  renderBatch(batch);
  view.segments = new Map(segments.map((s) => [s.id, s]));
  keepAttempts(attempts);
  renderGrid();
  if (await openLinkedAttempt()) return redrawTimeline();
  if (view.segments.has(view.selected)) await renderDetail();
  redrawTimeline();
}

// A link to one attempt's log (#/batch/ID/segment/SID/attempt/N, as the Failures view
// makes them) chooses that segment and shows that log, once: the address then becomes the
// batch's own, so a later read of the view (a reconnect) leaves the user's choice alone.
async function openLinkedAttempt() {
  const found = location.hash.match(/^#\/batch\/(\d+)\/segment\/(\d+)\/attempt\/(\d+)$/);
  if (!found || Number(found[1]) !== view.id) return false;
  history.replaceState(null, "", `#/batch/${view.id}`);
  const [segmentId, number] = [Number(found[2]), Number(found[3])];
  const segment = view.segments.get(segmentId);
  const attempt = (view.attempts.get(segmentId) || []).find((a) => a.number === number);
  if (!segment || !attempt) {
    showMessage(`Batch ${view.id} has no attempt ${number} of segment ${segmentId}.`);
    return false;
  }
  view.selected = segmentId;
  clearLog();
  for (const [id, cell] of view.cells) cell.classList.toggle("selected", id === segmentId);
  await showLog(view.id, segment, attempt);
  await renderDetail();
  document.getElementById("segment-detail").scrollIntoView();
  document.getElementById("log").focus();
  return true;
}

// Changes from the event stream (all of them: those of other batches are skipped). Returns
// "removed" when this batch was removed, for the page to leave the view.
export async function apply(changes) {
  const mine = changes.filter((c) => c.batch_id === view.id);
  if (!mine.length) return null;
  if (mine.some((c) => c.kind === "batch" && c.state === "removed")) return "removed";
  const named = mine.filter((c) => c.kind === "segment");
  if (named.some((c) => !view.segments.has(c.id))) {
    // A segment the page never saw: its picture of the batch is off; read it whole.
    await load(view.id);
    return null;
  }
  for (const change of named) {
    const segment = view.segments.get(change.id);
    segment.state = change.state;
    updateCell(segment);
  }
  const base = `/batches/${view.id}`;
  const whole = named.length > ONE_BY_ONE;
  const reads = whole
    ? [api(`${base}/segments`), api(`${base}/attempts`)]
    : named.map((c) => api(`${base}/segments/${c.id}/attempts`));
  const [batch, ...answers] = await Promise.all([api(base), ...reads]);
  renderBatch(batch);
  if (!named.length) return null;
  if (whole) {
    const [segments, attempts] = answers;
    keepSegments(segments);
    keepAttempts(attempts);
  } else {
    named.forEach((change, i) => {
      const attempts = answers[i];
      const segment = view.segments.get(change.id);
      view.attempts.set(change.id, attempts);
      // The node of its latest attempt, as GET .../segments would say.
      if (attempts.length) segment.node = attempts[attempts.length - 1].node;
      updateCell(segment);
    });
  }
  if (view.segments.has(view.selected) && (whole || named.some((c) => c.id === view.selected))) {
    await renderDetail();
  }
  redrawTimeline();
  return null;
}

// ------------------------------------------------------------------ summary and actions

function renderBatch(batch) {
  document.getElementById("batch-title").textContent = `Batch ${batch.id}: ${batch.name || "(no name)"}`;
  const counts = batch.segments;
  document.getElementById("batch-summary").replaceChildren(
    el("span", {}, "state ", stateLabel(batch.state)),
    el("span", {}, "progress ", el("b", { text: `${Math.round(fraction(counts) * 100)}%` })),
    el("span", {}, "segments ", el("b", { text: segmentsText(counts) })),
    el("span", {}, "priority ", el("b", { text: priorityLabel(batch.priority) })),
    el("span", {}, "submitted ", el("b", { text: when(batch.submitted_at) })),
  );
  const priority = document.getElementById("batch-priority");
  if (document.activeElement !== priority) priority.value = priorityLevel(batch.priority);
  renderActions(batch.actions || []);
  // The answers of actions carry no jobs: the table stays as it is until the next read.
  if (Array.isArray(batch.jobs)) renderJobs(batch.jobs);
}

// "3 done, 1 running, 2 suspended, 0 failed, 0 canceled of 6": suspended only when some are.
function segmentsText(counts) {
  const suspended = counts.suspended ? `, ${counts.suspended} suspended` : "";
  return `${counts.done} done, ${counts.running} running${suspended}, ${counts.failed} failed, ${counts.canceled} canceled of ${counts.total}`;
}

function renderActions(allowed) {
  const box = document.getElementById("batch-actions");
  const hadFocus = box.contains(document.activeElement);
  const buttons = allowed
    .filter((verb) => verb !== "priority")
    .map((verb) => {
      // The same element from one update to the next: a focused button stays focused.
      const kept = box.querySelector(`button[data-action="${CSS.escape(verb)}"]`);
      if (kept) return kept;
      const known = ACTIONS[verb] || { label: verb[0].toUpperCase() + verb.slice(1), ask: verb };
      return el("button", {
        type: "button",
        "data-action": verb,
        className: known.danger ? "danger" : undefined,
        text: known.label,
        onclick: () => {
          if (confirm(`${known.ask} batch ${view.id}?`)) run(() => act(verb));
        },
      });
    });
  box.replaceChildren(...buttons);
  // The button just used may be gone (a paused batch offers resume, not pause): keep the
  // keyboard in the group rather than back at the top of the page.
  if (hadFocus && !box.contains(document.activeElement)) buttons[0]?.focus();
  document.getElementById("batch-priority-control").hidden = !allowed.includes("priority");
}

async function act(verb) {
  const id = view.id;
  try {
    if (verb === "remove") {
      await api(`/batches/${id}`, { method: "DELETE" });
      showMessage("");
      location.hash = "#/batches";
      return;
    }
    // The answer is the batch after the action: shown as it is, with what it allows now;
    // what the action moved arrives as events.
    renderBatch(await api(`/batches/${id}/${verb}`, { method: "POST" }));
    showMessage("");
    // Except for a cancel's queued segments, which the controller cancels without an event
    // (Store.cancel_batch keeps those changes to itself): read the batch again.
    if (verb === "cancel") await load(id);
  } catch (error) {
    showMessage(error.message);
  }
}

async function setPriority(level) {
  try {
    // No event tells of a new priority: the answer is the batch as it is now.
    renderBatch(await api(`/batches/${view.id}/priority`, { method: "PUT", body: { priority: level } }));
    showMessage("");
  } catch (error) {
    showMessage(error.message);
  }
}

function renderJobs(jobs) {
  document.querySelector("#jobs-table tbody").replaceChildren(
    ...jobs.map((job) =>
      el(
        "tr",
        { "data-job": String(job.id) },
        el("td", { text: job.name }),
        el("td", { text: job.type }),
        el("td", {}, stateLabel(job.state)),
        el("td", {}, progressBar(job.progress, `job ${job.name} progress`), ` ${Math.round(job.progress * 100)}%`),
        job.error || !job.waiting
          ? el("td", { className: "wrap", text: job.error || "" })
          : el("td", { className: "wrap waiting", text: `waiting: ${job.waiting}` }),
      ),
    ),
  );
}

// ------------------------------------------------------------------ segments

function keepAttempts(attempts) {
  view.attempts = new Map();
  for (const attempt of attempts) {
    if (!view.attempts.has(attempt.segment_id)) view.attempts.set(attempt.segment_id, []);
    view.attempts.get(attempt.segment_id).push(attempt);
  }
}

// The batch's segments read whole: kept, and the grid updated cell by cell where it has the
// same segments (a cell with the focus keeps it), drawn anew where not.
function keepSegments(segments) {
  const same = segments.length === view.segments.size && segments.every((s) => view.segments.has(s.id));
  view.segments = new Map(segments.map((s) => [s.id, s]));
  if (!same) renderGrid();
  refreshGridFilters();
}

function cellLabel(segment) {
  return `segment ${segment.index} (${segment.label}): ${segment.state}` + (segment.node ? ` on ${segment.node}` : "");
}

function renderGrid() {
  view.cells = new Map();
  const cells = [];
  for (const segment of view.segments.values()) {
    const cell = el(
      "button",
      { type: "button", "data-segment": String(segment.id), onclick: () => run(() => select(segment.id)) },
      String(segment.index),
    );
    view.cells.set(segment.id, cell);
    updateCell(segment);
    cells.push(cell);
  }
  document.getElementById("segment-grid").replaceChildren(...cells);
}

function updateCell(segment) {
  const cell = view.cells.get(segment.id);
  if (!cell) return;
  const label = cellLabel(segment);
  cell.className = `cell ${segment.state}` + (segment.id === view.selected ? " selected" : "");
  cell.dataset.state = segment.state;
  cell.title = label;
  cell.setAttribute("aria-label", label);
  // The grid's filters (state, node): a cell they leave out is hidden, not dropped.
  const state = document.getElementById("grid-state").value;
  const node = document.getElementById("grid-node").value;
  cell.hidden = Boolean((state && segment.state !== state) || (node && segment.node !== node));
}

// The node filter offers the nodes the batch's segments ran on; a change of either filter
// shows or hides cells, reading nothing.
function refreshGridFilters() {
  const select = document.getElementById("grid-node");
  const nodes = [...new Set([...view.segments.values()].map((s) => s.node).filter(Boolean))].sort();
  const have = [...select.options].slice(1).map((o) => o.value);
  if (nodes.join("\n") !== have.join("\n")) {
    const chosen = select.value;
    select.replaceChildren(el("option", { value: "", text: "any node" }), ...nodes.map((n) => el("option", { text: n })));
    select.value = nodes.includes(chosen) ? chosen : "";
  }
  for (const segment of view.segments.values()) updateCell(segment);
}

async function select(segmentId) {
  view.selected = segmentId;
  clearLog();
  for (const [id, cell] of view.cells) cell.classList.toggle("selected", id === segmentId);
  await renderDetail();
}

// The chosen segment's attempts, from those the view keeps (no request); the log of its
// latest attempt unless one of its attempts' logs is on the page already.
async function renderDetail() {
  const segment = view.segments.get(view.selected);
  const attempts = view.attempts.get(view.selected) || [];
  document.getElementById("segment-detail").hidden = false;
  document.getElementById("segment-title").textContent =
    `Segment ${segment.index}: ${segment.label} (${segment.state})`;
  document.querySelector("#attempts-table tbody").replaceChildren(
    ...attempts.map((attempt) => {
      const took = attempt.started_at && attempt.ended_at ? span(attempt.ended_at - attempt.started_at) : "–";
      return el(
        "tr",
        {},
        el("td", { text: String(attempt.number) }),
        el("td", { text: attempt.node }),
        el("td", { text: attempt.outcome || "running" }),
        el("td", { text: attempt.exit_code === null ? "–" : String(attempt.exit_code) }),
        el("td", { text: when(attempt.started_at) }),
        el("td", { text: took }),
        el("td", { className: "wrap", text: attempt.error || "" }),
        el("td", {}, el("button", { type: "button", text: "Show", onclick: () => run(() => showLog(view.id, segment, attempt)) })),
      );
    }),
  );
  const last = attempts[attempts.length - 1];
  const shown = shownAttempt();
  if (last && (!shown || shown.segmentId !== segment.id)) await showLog(view.id, segment, last);
}

function redrawTimeline() {
  const attempts = [...view.attempts.values()].flat();
  attempts.sort((a, b) => a.dispatched_at - b.dispatched_at || a.number - b.number);
  const indexOf = new Map([...view.segments.values()].map((s) => [s.id, s.index]));
  drawTimeline(attempts, indexOf);
}
