// One batch: its summary, actions, jobs, segment grid, the chosen segment's attempts and log,
// and the timeline.
//
// The view is read whole once (load: the batch, its segments, its attempts) and then kept
// current from the change events that name this batch. A segment's new state, and on
// dispatch its node, are in its event: paint shows them at once, reading nothing. What the
// events cannot say is then read in one catch-up (refresh), however many events came: the
// batch (its counts, job progress and allowed actions), the attempts that moved since the
// last read (GET .../attempts?since, for the timeline), and the chosen segment's attempts.
// Catch-ups never overlap and come at most every few hundred milliseconds, spaced further
// when they take long (a batch of 10,000 segments), so a busy farm cannot flood the page.
// What ended segments add, the durations chart (a figure per segment) and the pictures
// nodes made of their outputs, is read in a slower lane of its own: after the view is read,
// and then every few seconds while segments end.

import { api, apiAnswer } from "../api.js";
import { el, progressBar, showMessage, stateLabel } from "../dom.js";
import { fraction, priorityLabel, priorityLevel, span, when } from "../format.js";
import { drawDurations } from "./durations.js";
import { SegmentGrid } from "./grid.js";
import { clearLog, showLog, shownAttempt } from "./log.js";
import { refreshThumbnails, showJobThumbnails } from "./thumbs.js";
import { drawTimeline } from "./timeline.js";

// The least time between two catch-up reads, and how many times its own duration a
// catch-up waits before the next (so reading never takes more than a third of the time).
const REFRESH_GAP_MS = 250;
const REFRESH_SPACING = 2;
// A catch-up read of attempts starts this long before the controller's clock of the last
// read: an attempt whose report was written while that read ran is read again, not missed.
const SINCE_SLACK_S = 5;
// The least time between two reads of the per-segment figures, and their spacing.
const FIGURES_GAP_MS = 3000;
const FIGURES_SPACING = 4;
const ENDED = new Set(["done", "failed", "canceled"]);

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
  grid: null, // the SegmentGrid
  attempts: new Map(), // segment id -> its attempts, oldest first
  clock: null, // the controller's clock at the last read of attempts (X-Qfarm-Time)
  selected: null, // the segment whose attempts are shown
  actions: [], // what the batch allows now, as the API last said
  shown: false, // the view is on the page (reads due after it was left are not made)
  loading: 0, // whole reads of the batch under way
};

// The catch-up read (see the top): the segments named since the last one, whether one is
// due (timer) and when the last one ended.
const catchUp = { named: new Set(), timer: null, gap: REFRESH_GAP_MS };
const figures = { timer: null, gap: FIGURES_GAP_MS };

let run = (task) => task(); // main's queue: updates of the page happen one at a time

export function init(serialize) {
  run = serialize;
  view.grid = new SegmentGrid(document.getElementById("segment-grid"), {
    onChoose: (id) => (view.grid.picking ? pick(id) : run(() => select(id))),
    describe: cellLabel,
  });
  document.getElementById("grid-pick").addEventListener("change", (event) => {
    view.grid.setPicking(event.target.checked);
    if (!event.target.checked) view.grid.tick([...view.grid.ticked], false);
    showPicked();
  });
  document.getElementById("pick-shown").addEventListener("click", () => {
    view.grid.tick(view.grid.items.map((s) => s.id), true);
    showPicked();
  });
  document.getElementById("pick-clear").addEventListener("click", () => {
    view.grid.tick([...view.grid.ticked], false);
    showPicked();
  });
  for (const [id, verb, ask] of [
    ["pick-resubmit", "resubmit", "Resubmit"],
    ["pick-cancel", "cancel", "Cancel"],
  ]) {
    document.getElementById(id).addEventListener("click", () => {
      const count = view.grid.ticked.size;
      if (confirm(`${ask} the ${count} chosen segment(s) of batch ${view.id}?`)) run(() => actOnPicked(verb));
    });
  }
  for (const id of ["grid-state", "grid-node"]) {
    document.getElementById(id).addEventListener("input", refreshGridFilters);
  }
  document.getElementById("set-priority").addEventListener("click", () => {
    const level = document.getElementById("batch-priority").value;
    if (confirm(`Set the priority of batch ${view.id} to ${level}?`)) run(() => setPriority(level));
  });
}

// Leaving the view: a followed log is let go, and chosen again on coming back; reads
// due for it are not made.
export function leave() {
  clearLog();
  view.shown = false;
  for (const lane of [catchUp, figures]) {
    clearTimeout(lane.timer);
    lane.timer = null;
  }
}

export async function load(id) {
  if (id !== view.id) {
    view.selected = null;
    view.grid.select(null);
    view.grid.tick([...view.grid.ticked], false); // ticks are of one batch
    clearLog();
    document.getElementById("segment-detail").hidden = true;
  }
  view.id = id;
  view.shown = true;
  view.loading += 1; // what events say meanwhile is painted after this read, not before
  catchUp.named.clear(); // this read covers them
  let batch, segments, attempts;
  try {
    [batch, segments, attempts] = await Promise.all([
      api(`/batches/${id}`),
      api(`/batches/${id}/segments`),
      apiAnswer(`/batches/${id}/attempts`),
    ]);
  } finally {
    view.loading -= 1;
  }
  renderBatch(batch);
  view.segments = new Map(segments.map((s) => [s.id, s]));
  keepAttempts(attempts.body);
  view.clock = Number(attempts.headers.get("X-Qfarm-Time")) || null;
  refreshGridFilters();
  scheduleFigures(0);
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
  view.grid.select(segmentId);
  await showLog(view.id, segment, attempt);
  await renderDetail();
  document.getElementById("segment-detail").scrollIntoView();
  document.getElementById("log").focus();
  return true;
}

// Whether the changes say this batch was removed.
export function removedIn(changes) {
  return changes.some((c) => c.batch_id === view.id && c.kind === "batch" && c.state === "removed");
}

// Changes from the event stream, shown at once: each segment's new state (and node) in the
// grid. Returns whether all of them could be (false: a segment the page never saw, or a
// removed batch, which apply deals with). Reads nothing; main calls it as the events come,
// unless a whole read of the view is under way, whose answer would be older.
export function paint(changes) {
  if (view.loading || removedIn(changes)) return false;
  const mine = changes.filter((c) => c.batch_id === view.id);
  const named = mine.filter((c) => c.kind === "segment");
  if (named.some((c) => !view.segments.has(c.id))) return false;
  const filtered = gridFiltered();
  for (const change of named) {
    const segment = view.segments.get(change.id);
    segment.state = change.state;
    if (change.node) segment.node = change.node;
    if (!filtered) view.grid.update(segment);
  }
  if (filtered && named.length) refreshGridFilters();
  if (view.grid.picking && named.length) showPicked();
  return true;
}

// Changes from the event stream (all of them: those of other batches are skipped), after
// paint (`painted`) or instead of it. Returns "removed" when this batch was removed, for the
// page to leave the view.
export async function apply(changes, painted = false) {
  const mine = changes.filter((c) => c.batch_id === view.id);
  if (!mine.length) return null;
  if (removedIn(changes)) return "removed";
  if (!painted && !paint(changes)) {
    // A segment the page never saw: its picture of the batch is off; read it whole.
    await load(view.id);
    return null;
  }
  for (const change of mine) if (change.kind === "segment") catchUp.named.add(change.id);
  scheduleCatchUp();
  if (mine.some((c) => c.kind === "segment" && ENDED.has(c.state))) scheduleFigures(figures.gap);
  return null;
}

function scheduleFigures(delay) {
  if (figures.timer) return;
  figures.timer = setTimeout(() => run(refreshFigures), delay);
}

// The per-segment figures (see the top), in main's queue.
async function refreshFigures() {
  figures.timer = null;
  if (!view.shown) return;
  const began = performance.now();
  await Promise.all([drawDurations(document.getElementById("batch-durations"), view.id), refreshThumbnails(view.id)]);
  figures.gap = Math.max(FIGURES_GAP_MS, FIGURES_SPACING * (performance.now() - began));
}

function scheduleCatchUp() {
  if (catchUp.timer) return;
  catchUp.timer = setTimeout(() => run(refresh), catchUp.gap);
}

// The catch-up read (see the top of this file), in main's queue like every update.
async function refresh() {
  catchUp.timer = null;
  if (!view.shown) return;
  const id = view.id;
  const began = performance.now();
  const named = catchUp.named;
  catchUp.named = new Set();
  const since = view.clock === null ? "" : `?since=${Math.max(0, view.clock - SINCE_SLACK_S)}`;
  const [batch, moved] = await Promise.all([api(`/batches/${id}`), apiAnswer(`/batches/${id}/attempts${since}`)]);
  if (id !== view.id) return;
  renderBatch(batch);
  mergeAttempts(moved.body);
  view.clock = Number(moved.headers.get("X-Qfarm-Time")) || view.clock;
  if (view.segments.has(view.selected) && named.has(view.selected)) await renderDetail();
  redrawTimeline();
  catchUp.gap = Math.max(REFRESH_GAP_MS, REFRESH_SPACING * (performance.now() - began));
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
  view.actions = batch.actions || [];
  renderActions(view.actions);
  showPicked();
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

// ------------------------------------------------------------------ several segments

// Tick a cell, or untick a ticked one.
function pick(id) {
  view.grid.tick([id], !view.grid.ticked.has(id));
  showPicked();
}

// What each action on chosen segments needs: the batch to allow the batch action of that
// name, and every chosen segment to be in one of these states (the API says the same).
const ON_CHOSEN = {
  resubmit: { button: "pick-resubmit", states: ["failed", "canceled"], why: "neither failed nor were canceled" },
  cancel: { button: "pick-cancel", states: ["queued", "dispatched", "running", "suspended"], why: "have ended" },
};

// The bar of actions on the chosen segments: how many, and which actions they allow.
function showPicked() {
  document.getElementById("pick-bar").hidden = !view.grid.picking;
  const chosen = [...view.grid.ticked].map((id) => view.segments.get(id)).filter(Boolean);
  document.getElementById("pick-count").textContent = chosen.length ? `${chosen.length} chosen` : "none chosen";
  for (const [verb, rule] of Object.entries(ON_CHOSEN)) {
    const button = document.getElementById(rule.button);
    const allowed = view.actions.includes(verb);
    const off = chosen.filter((s) => !rule.states.includes(s.state)).length;
    button.disabled = !chosen.length || !allowed || off > 0;
    button.title = !allowed ? `Batch ${view.id} cannot be ${verb === "cancel" ? "canceled" : "resubmitted"} now` : off ? `${off} chosen segment(s) ${rule.why}` : "";
  }
}

async function actOnPicked(verb) {
  const ids = [...view.grid.ticked].filter((id) => view.segments.has(id));
  try {
    renderBatch(await api(`/batches/${view.id}/segments/${verb}`, { method: "POST", body: { segments: ids } }));
    view.grid.tick(ids, false);
    showPicked();
    showMessage("");
  } catch (error) {
    showMessage(error.message);
  }
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
        // Its newest picture (views/thumbs.js fills it).
        el("td", { className: "thumb-cell", "data-thumb-job": String(job.id) }),
      ),
    ),
  );
  showJobThumbnails(view.id);
}

// ------------------------------------------------------------------ segments

function keepAttempts(attempts) {
  view.attempts = new Map();
  mergeAttempts(attempts);
}

// Attempts read again (a catch-up): each replaces the one of its segment and number, or
// comes after the segment's others; a segment's node is that of its latest attempt.
function mergeAttempts(attempts) {
  for (const attempt of attempts) {
    const list = view.attempts.get(attempt.segment_id) || [];
    const at = list.findIndex((a) => a.number === attempt.number);
    if (at >= 0) list[at] = attempt;
    else {
      list.push(attempt);
      list.sort((a, b) => a.number - b.number);
    }
    view.attempts.set(attempt.segment_id, list);
    const segment = view.segments.get(attempt.segment_id);
    if (segment && list[list.length - 1] === attempt && segment.node !== attempt.node) {
      segment.node = attempt.node;
      view.grid.update(segment);
    }
  }
}

function cellLabel(segment) {
  return `segment ${segment.index} (${segment.label}): ${segment.state}` + (segment.node ? ` on ${segment.node}` : "");
}

// The grid's filters (state, node): the grid shows the segments they let through.
function gridFiltered() {
  return Boolean(document.getElementById("grid-state").value || document.getElementById("grid-node").value);
}

// The node filter offers the nodes the batch's segments ran on; the grid is drawn again
// with what the filters let through, reading nothing.
function refreshGridFilters() {
  const select = document.getElementById("grid-node");
  const nodes = [...new Set([...view.segments.values()].map((s) => s.node).filter(Boolean))].sort();
  const have = [...select.options].slice(1).map((o) => o.value);
  if (nodes.join("\n") !== have.join("\n")) {
    const chosen = select.value;
    select.replaceChildren(el("option", { value: "", text: "any node" }), ...nodes.map((n) => el("option", { text: n })));
    select.value = nodes.includes(chosen) ? chosen : "";
  }
  const state = document.getElementById("grid-state").value;
  const node = select.value;
  const shown = [...view.segments.values()].filter(
    (s) => (!state || s.state === state) && (!node || s.node === node),
  );
  view.grid.show(shown);
}

async function select(segmentId) {
  view.selected = segmentId;
  clearLog();
  view.grid.select(segmentId);
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
