// "Last rendered": the pictures nodes make of what segments wrote (a render's newest frame,
// a transcode chunk's poster frame, a command's image outputs), in the batch view (each
// job's newest in the jobs table, and a strip of each job's recent ones) and on the batch
// list (each batch's newest, and the farm's newest of all).
//
// Listings come from GET /batches/{id}/thumbnails and GET /thumbnails/latest; each
// picture's bytes are read with fetch, which sends the client token as every request of
// the page does (an <img src> would send none), and shown through an object URL. A kept
// picture never changes under its id, so its URL is made once and kept (a bounded number).
// A click, or Enter on the focused picture, opens the display-size frame in a <dialog>;
// Escape closes it.

import { API, token } from "../api.js";
import { el } from "../dom.js";

// Object URLs kept, the least recently used dropped beyond this many: more than a page
// shows at once (a batch view shows at most 24 per job), so none shown is ever dropped.
const KEPT_URLS = 600;
const urls = new Map(); // "id/size" -> Promise of an object URL, least recently used first

const batch = { id: null, thumbs: [], latest: new Map(), reading: null };
const farm = { byBatch: new Map(), reading: null };

// The object URL of a picture's bytes; null when it cannot be read now (gone with its
// batch, or the controller out of reach: asked again next time, not remembered).
function pictureUrl(thumb, full = false) {
  const key = `${thumb.id}/${full ? "full" : "small"}`;
  const kept = urls.get(key);
  if (kept) {
    urls.delete(key); // to the end: used now
    urls.set(key, kept);
    return kept;
  }
  const path = full ? thumb.full_url : thumb.url;
  const headers = token() ? { Authorization: `Bearer ${token()}` } : {};
  const made = fetch(path.startsWith(API) ? path : API + path, { headers })
    .then((answer) => (answer.ok ? answer.blob() : null))
    .then((blob) => (blob ? URL.createObjectURL(blob) : null))
    .catch(() => null);
  urls.set(key, made);
  made.then((url) => {
    if (url === null && urls.get(key) === made) urls.delete(key);
  });
  while (urls.size > KEPT_URLS) {
    const [oldest, url] = urls.entries().next().value;
    urls.delete(oldest);
    url.then((gone) => gone && URL.revokeObjectURL(gone));
  }
  return made;
}

// What the picture's alt text and caption say: batch, job and frame.
function describe(thumb) {
  const what = thumb.kind === "poster" ? `poster frame of ${thumb.label}` : thumb.label;
  return `Batch ${thumb.batch_id} ${thumb.batch_name || ""}, job ${thumb.job_name}: ${what}`.replace(/\s+/g, " ");
}

// A picture that opens its full frame on a click or on Enter (it is a button, so the
// keyboard reaches it with Tab).
function pictureButton(thumb, className = "thumb") {
  const img = el("img", { alt: describe(thumb), width: String(thumb.width), height: String(thumb.height), decoding: "async" });
  pictureUrl(thumb).then((url) => {
    if (url) img.src = url;
  });
  return el(
    "button",
    { type: "button", className, title: describe(thumb), "data-thumbnail": String(thumb.id), onclick: (e) => {
      e.stopPropagation(); // a batch list row opens its batch on a click
      openFull(thumb, e.currentTarget);
    } },
    img,
  );
}

async function openFull(thumb, opener) {
  const dialog = document.getElementById("thumb-dialog");
  wireDialog(dialog);
  const img = document.getElementById("thumb-full");
  img.alt = describe(thumb);
  img.removeAttribute("src");
  img.width = thumb.full_width;
  img.height = thumb.full_height;
  document.getElementById("thumb-caption").textContent =
    `${describe(thumb)} (${thumb.source}, segment ${thumb.segment_label}, ${thumb.full_width}×${thumb.full_height})`;
  // Back to the picture that opened it, unless the keyboard has moved on meanwhile: the
  // close event comes a moment after the close itself (the browser has already put the
  // focus back by then, and the user may have gone on to another picture).
  dialog.onclose = () => {
    const now = document.activeElement;
    if (opener?.isConnected && (!now || now === document.body)) opener.focus();
  };
  if (!dialog.open) dialog.showModal();
  const url = await pictureUrl(thumb, true);
  if (url && img.alt === describe(thumb)) img.src = url;
}

// The dialog's close button and backdrop, wired on its first opening.
function wireDialog(dialog) {
  if (dialog.dataset.wired) return;
  dialog.dataset.wired = "yes";
  document.getElementById("thumb-close").addEventListener("click", () => dialog.close());
  // A click on the backdrop (outside the picture's box) closes it too.
  dialog.addEventListener("click", (event) => {
    if (event.target === dialog) dialog.close();
  });
}

// ------------------------------------------------------------------ the batch view

// Called by renderJobs after it drew the jobs table: fills the "last frame" cells from the
// pictures read last. The batch view reads them again (refreshThumbnails) with its other
// per-segment figures, when it is shown and as segments end.
export function showJobThumbnails(batchId) {
  if (batchId !== batch.id) {
    batch.id = batchId;
    batch.thumbs = [];
    batch.latest = new Map();
  }
  fillJobCells();
}

// Read the batch's pictures again and show them: the jobs table's cells and the strips.
// Safe to call on every segment change: reads never overlap (one more follows a read
// under way, if asked meanwhile).
export function refreshThumbnails(batchId) {
  if (batch.reading) {
    batch.again = batchId;
    return batch.reading;
  }
  batch.reading = (async () => {
    try {
      const answer = await fetchJson(`/batches/${batchId}/thumbnails`);
      if (answer && batchId === batch.id) {
        batch.thumbs = answer.thumbnails;
        batch.latest = new Map(Object.entries(answer.latest_by_job).map(([job, id]) => [job, id]));
        fillJobCells();
        drawStrips();
      }
    } catch (_) {
      // Pictures are an extra: the next change of the batch reads them again.
    } finally {
      batch.reading = null;
      const again = batch.again;
      batch.again = null;
      if (again) refreshThumbnails(again);
    }
  })();
  return batch.reading;
}

function fillJobCells() {
  const byId = new Map(batch.thumbs.map((t) => [t.id, t]));
  for (const cell of document.querySelectorAll("#jobs-table td[data-thumb-job]")) {
    const thumb = byId.get(batch.latest.get(cell.dataset.thumbJob));
    const shown = cell.firstElementChild?.dataset.thumbnail;
    if (!thumb) {
      if (shown) cell.replaceChildren();
    } else if (shown !== String(thumb.id)) {
      cell.replaceChildren(pictureButton(thumb, "thumb small"));
    }
  }
}

function drawStrips() {
  const box = document.getElementById("batch-thumbs");
  if (!box) return;
  const jobs = new Map();
  for (const thumb of batch.thumbs) {
    if (!jobs.has(thumb.job_id)) jobs.set(thumb.job_id, []);
    jobs.get(thumb.job_id).push(thumb);
  }
  box.hidden = jobs.size === 0;
  const strips = [...jobs.values()].map((thumbs) => {
    const kept = box.querySelector(`[data-strip-job="${thumbs[0].job_id}"]`);
    if (kept && kept.dataset.ids === thumbs.map((t) => t.id).join(",")) return kept;
    return el(
      "div",
      { className: "thumb-strip", "data-strip-job": String(thumbs[0].job_id), "data-ids": thumbs.map((t) => t.id).join(",") },
      el("h4", { text: `${thumbs[0].job_name}: newest first` }),
      el("div", { className: "thumb-row", role: "list" }, ...thumbs.map((t) => el("span", { role: "listitem" }, pictureButton(t), el("small", { text: t.label })))),
    );
  });
  box.querySelector(".thumb-strips").replaceChildren(...strips);
}

// ------------------------------------------------------------------ the batch list

// A batch list row's "last rendered" cell, filled from the farm's latest pictures.
export function batchCell(batchId) {
  const cell = el("td", { className: "wide-only thumb-cell", "data-thumb-batch": String(batchId) });
  const thumb = farm.byBatch.get(batchId);
  if (thumb) cell.append(pictureButton(thumb, "thumb small"));
  return cell;
}

// Read the farm's latest pictures again: each batch's newest, and the newest of all.
export function refreshLatest() {
  if (farm.reading) {
    farm.again = true;
    return farm.reading;
  }
  farm.reading = (async () => {
    try {
      const answer = await fetchJson("/thumbnails/latest");
      if (!answer) return;
      farm.byBatch = new Map(answer.thumbnails.map((t) => [t.batch_id, t]));
      for (const cell of document.querySelectorAll("#batches-table td[data-thumb-batch]")) {
        const thumb = farm.byBatch.get(Number(cell.dataset.thumbBatch));
        if (cell.firstElementChild?.dataset.thumbnail === String(thumb?.id)) continue;
        cell.replaceChildren(...(thumb ? [pictureButton(thumb, "thumb small")] : []));
      }
      drawNewest(answer.thumbnails[0]);
    } catch (_) {
      // Pictures are an extra: the next change reads them again.
    } finally {
      farm.reading = null;
      if (farm.again) {
        farm.again = false;
        refreshLatest();
      }
    }
  })();
  return farm.reading;
}

function drawNewest(thumb) {
  const panel = document.getElementById("latest-frame");
  if (!panel) return;
  panel.hidden = !thumb;
  if (!thumb) return;
  const body = panel.querySelector(".latest-body");
  if (body.firstElementChild?.dataset.thumbnail === String(thumb.id)) return;
  body.replaceChildren(
    pictureButton(thumb, "thumb latest"),
    el("p", {}, el("a", { href: `#/batch/${thumb.batch_id}`, text: `Batch ${thumb.batch_id}` }), ` ${thumb.batch_name || ""} · ${thumb.job_name} · ${thumb.label}`),
  );
}

// A listing's JSON, or null when the API refused it (a batch removed meanwhile): pictures
// are an extra, and their absence is never an error of the page.
async function fetchJson(path) {
  const headers = token() ? { Authorization: `Bearer ${token()}` } : {};
  const answer = await fetch(API + path, { headers });
  return answer.ok ? answer.json() : null;
}
