// The batch list, newest first. Read whole once (GET /batches); then each change event's
// batch is read alone (GET /batches/{id}) and its row replaced, added or dropped, the other
// rows left as they are.

import { ApiError, api } from "../api.js";
import { el, progressBar, stateLabel } from "../dom.js";
import { fraction, priorityLabel, span, when } from "../format.js";
import * as bulk from "./bulk.js";
import { batchCell, refreshLatest } from "./thumbs.js";

// More batches than this named in one round of changes, and the list read whole is cheaper.
const ONE_BY_ONE = 8;

const rows = new Map(); // batch id -> its row

export async function load() {
  const batches = await api("/batches");
  rows.clear();
  const body = document.querySelector("#batches-table tbody");
  body.replaceChildren(...batches.slice().reverse().map((batch) => keep(batch)));
  showEmpty();
  bulk.applyFilters();
  refreshLatest(); // the "last rendered" pictures: not awaited, they come when they come
}

// The list's bar of actions on many batches and its filters (views/bulk.js).
export function init(run) {
  bulk.init(run, load);
}

export async function apply(changes) {
  const removed = new Set();
  const named = new Set();
  for (const change of changes) {
    if (change.kind === "batch" && change.state === "removed") removed.add(change.batch_id);
    else named.add(change.batch_id);
  }
  for (const id of removed) drop(id);
  const ids = [...named].filter((id) => !removed.has(id));
  if (ids.length > ONE_BY_ONE) return load();
  const batches = await Promise.all(ids.map((id) => readBatch(id)));
  ids.forEach((id, i) => (batches[i] ? put(batches[i]) : drop(id)));
  showEmpty();
  // New pictures come with segments done; a removed batch takes its own away.
  if (changes.some((c) => (c.kind === "segment" && c.state === "done") || c.state === "removed")) refreshLatest();
}

// One batch; null if it is gone already (removed since its event was sent).
async function readBatch(id) {
  try {
    return await api(`/batches/${id}`);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) return null;
    throw error;
  }
}

function put(batch) {
  const old = rows.get(batch.id);
  const row = keep(batch);
  if (old) return old.replaceWith(row);
  // A new batch: before the first row of a lower id (ids grow with submission).
  const body = document.querySelector("#batches-table tbody");
  const after = [...rows.entries()].filter(([id]) => id < batch.id).sort((a, b) => b[0] - a[0])[0];
  body.insertBefore(row, after ? after[1] : null);
}

function drop(id) {
  rows.get(id)?.remove();
  rows.delete(id);
  bulk.forget(id);
}

function showEmpty() {
  document.getElementById("batches-empty").hidden = rows.size > 0;
}

function keep(batch) {
  const row = batchRow(batch);
  rows.set(batch.id, row);
  bulk.filterRow(batch, row);
  return row;
}

function batchRow(batch) {
  const done = fraction(batch.segments);
  // The controller's estimate (its jobs' rates and the queue ahead); none: not known yet.
  const eta = batch.eta == null ? null : Math.max(0, batch.eta - Date.now() / 1000);
  const open = () => (location.hash = `#/batch/${batch.id}`);
  const link = el("a", { href: `#/batch/${batch.id}`, text: String(batch.id) });
  return el(
    "tr",
    { className: "clickable", "data-batch": String(batch.id), onclick: open },
    bulk.checkCell(batch),
    el("td", {}, link),
    el("td", { className: "wrap", text: batch.name || "–" }),
    el("td", {}, stateLabel(batch.state)),
    // At phone width the bar alone (its title says the percentage): room for the tick column.
    el("td", {}, progressBar(done, `batch ${batch.id} progress`),
       el("span", { className: "wide-only", text: ` ${Math.round(done * 100)}%` })),
    batchCell(batch.id), // its newest picture (wide screens; the panel above shows the farm's)
    el("td", { className: "wide-only", text: priorityLabel(batch.priority) }),
    el("td", { className: "wide-only", text: batch.owner || "–" }),
    el("td", { className: "wide-only", text: when(batch.submitted_at) }),
    el("td", { className: "wide-only", text: when(batch.started_at) }),
    el("td", { text: batch.finished_at ? "–" : span(eta) }),
  );
}
