// Many batches at once, on the batch list: the rows the filters let through (search by name
// or owner, state, submitted since) and the selection of those rows, which the bar's
// actions apply to. Each action goes to the batches that allow it now (their "actions",
// as the controller says); the others are skipped and counted, never sent a request the
// controller would refuse.

import { api } from "../api.js";
import { el, showMessage } from "../dom.js";

const selected = new Set(); // batch ids ticked, of rows still on the list
const known = new Map(); // batch id -> the batch as last read, for its actions and filters

const VERBS = {
  pause: { done: "paused" },
  resume: { done: "resumed" },
  cancel: { done: "canceled", danger: true },
  resubmit: { done: "resubmitted" },
  remove: { done: "removed", danger: true },
  priority: { done: "reprioritised" },
};

let run = (task) => task(); // the page's update queue (main.js), given by init
let reload = async () => {}; // reads the list whole (views/batches.js)

export function init(serialize, readWhole) {
  run = serialize;
  reload = readWhole;
  // Filtering is as you type: the form has nothing to send.
  document.getElementById("batches-filter").addEventListener("submit", (e) => e.preventDefault());
  for (const id of ["filter-text", "filter-state", "filter-since"]) {
    document.getElementById(id).addEventListener("input", applyFilters);
  }
  document.getElementById("select-all").addEventListener("change", (event) => {
    for (const [id, row] of rowsShown()) tick(id, row, event.target.checked);
    showCount();
  });
  for (const button of document.querySelectorAll("#bulk-bar button[data-verb]")) {
    button.addEventListener("click", () => ask(button.dataset.verb));
  }
  showCount();
}

// The checkbox cell of a batch's row (views/batches.js puts it first).
export function checkCell(batch) {
  known.set(batch.id, batch);
  const box = el("input", {
    type: "checkbox",
    "aria-label": `select batch ${batch.id}`,
    "data-select": String(batch.id),
    onclick: (event) => event.stopPropagation(), // a tick is not a click on the row
    onchange: (event) => {
      tick(batch.id, null, event.target.checked);
      showCount();
    },
  });
  box.checked = selected.has(batch.id);
  return el("td", { onclick: (event) => event.stopPropagation() }, box);
}

export function forget(id) {
  known.delete(id);
  selected.delete(id);
  showCount();
}

// Whether a row passes the filters, and hides it if not (a hidden row is also unticked:
// an action never reaches a batch the user cannot see).
export function filterRow(batch, row) {
  const text = document.getElementById("filter-text").value.trim().toLowerCase();
  const state = document.getElementById("filter-state").value;
  const since = Number(document.getElementById("filter-since").value || 0);
  const words = `${batch.name || ""} ${batch.owner || ""} ${batch.id}`.toLowerCase();
  const shown =
    (!text || words.includes(text)) &&
    (!state || batch.state === state) &&
    (!since || batch.submitted_at >= Date.now() / 1000 - since);
  row.hidden = !shown;
  if (!shown) tick(batch.id, row, false);
  return shown;
}

export function applyFilters() {
  let shown = 0;
  for (const row of document.querySelectorAll("#batches-table tbody tr")) {
    const batch = known.get(Number(row.dataset.batch));
    if (batch && filterRow(batch, row)) shown += 1;
  }
  document.getElementById("batches-filtered").hidden = shown > 0 || known.size === 0;
  showCount();
}

function rowsShown() {
  return [...document.querySelectorAll("#batches-table tbody tr")]
    .filter((row) => !row.hidden)
    .map((row) => [Number(row.dataset.batch), row]);
}

function tick(id, row, on) {
  if (on) selected.add(id);
  else selected.delete(id);
  const box = (row || document).querySelector(`input[data-select="${id}"]`);
  if (box) box.checked = on;
}

function showCount() {
  const count = selected.size;
  document.getElementById("bulk-count").textContent =
    count === 0 ? "none selected" : `${count} selected`;
  for (const button of document.querySelectorAll("#bulk-bar button[data-verb]")) {
    button.disabled = count === 0;
  }
  const all = document.getElementById("select-all");
  const shown = rowsShown();
  all.checked = shown.length > 0 && shown.every(([id]) => selected.has(id));
}

function ask(verb) {
  const ids = [...selected].sort((a, b) => a - b);
  const able = ids.filter((id) => (known.get(id)?.actions || []).includes(verb));
  const skipped = ids.length - able.length;
  const level = document.getElementById("bulk-priority").value;
  const what = verb === "priority" ? `Set the priority of` : `${verb[0].toUpperCase()}${verb.slice(1)}`;
  const note = skipped ? ` (${skipped} of those selected do not allow it and are left out)` : "";
  if (!able.length) {
    showMessage(`None of the selected batches can be ${VERBS[verb].done} now.`);
    return;
  }
  const to = verb === "priority" ? ` to ${level}` : "";
  if (!confirm(`${what} ${able.length} batch${able.length > 1 ? "es" : ""}${to}${note}?`)) return;
  run(() => act(verb, able, skipped, level));
}

async function act(verb, ids, skipped, level) {
  const failed = [];
  for (const id of ids) {
    try {
      if (verb === "remove") await api(`/batches/${id}`, { method: "DELETE" });
      else if (verb === "priority") {
        await api(`/batches/${id}/priority`, { method: "PUT", body: { priority: level } });
      } else await api(`/batches/${id}/${verb}`, { method: "POST" });
    } catch (error) {
      failed.push(`batch ${id}: ${error.message}`);
    }
  }
  const done = ids.length - failed.length;
  const parts = [`${done} ${VERBS[verb].done}`];
  if (skipped) parts.push(`${skipped} skipped (not allowed now)`);
  if (failed.length) parts.push(`${failed.length} refused: ${failed.join("; ")}`);
  showMessage(parts.join(", "));
  selected.clear();
  // A cancel's queued segments, a priority: no event tells of every change; read it whole.
  await reload();
}
