// qfarm Batch Monitor: batches, jobs, segments and nodes of one controller, kept current by
// its change stream. ES modules straight from the controller's /static: no build step and no
// third-party files, so the page works on a farm cut off from the internet.
//
// One view is on the page at a time. It is read whole when it is shown and whenever the
// change stream (re)connects; in between, each round of change events goes to the view,
// which reads again only what the events name. Every update of the page, including the
// user's actions, runs through one queue, one after another: an answer that was asked for
// first can never overwrite a newer one. What an event says of itself (a segment's state)
// a view may show at once (its paint), ahead of the queue, unless a whole read of the view
// is under way.
//
// The page tells how quickly it shows things through the browser's User Timing: a mark
// "qfarm:view-shown" when a view has been read and drawn, and a measure
// "qfarm:changes-shown" from the arrival of each round of changes to the frame that shows
// them (what docs/benchmarks.md reports for a batch of 10,000 segments).

import { ApiError, onNewToken } from "./api.js";
import { setConnection, showMessage } from "./dom.js";
import { Live } from "./live.js";
import * as batchView from "./views/batch.js";
import * as batchList from "./views/batches.js";
import * as failuresView from "./views/failures.js";
import * as form from "./views/form.js";
import * as nodesView from "./views/nodes.js";
import * as openjdForm from "./views/openjd.js";
import * as statsView from "./views/stats.js";

const VIEWS = { batches: batchList, batch: batchView, nodes: nodesView, submit: form, openjd: openjdForm, failures: failuresView, stats: statsView };

const page = {
  view: null,
  batchId: null,
  shown: 0, // counts the views shown: a queued update for a view since left is dropped
  stale: false, // an update failed: the next round of changes reads the view whole instead
  flash: "", // a message for the next view (why the page left the last one)
  loading: false, // a whole read of the view is under way
};

// Measures kept for whoever reads them (devtools, the benchmark), dropped in bulk beyond
// this many, so a page left open for days does not grow.
const MEASURES_KEPT = 1000;
let measures = 0;

// After the next frame is drawn: a frame callback runs before the paint, a task queued from
// it runs after.
function afterFrame(then) {
  requestAnimationFrame(() => setTimeout(then, 0));
}

function shownAt(arrived, count) {
  afterFrame(() => {
    if (++measures > MEASURES_KEPT) {
      performance.clearMeasures("qfarm:changes-shown");
      measures = 1;
    }
    performance.measure("qfarm:changes-shown", { start: arrived, end: performance.now(), detail: { changes: count } });
  });
}

let queue = Promise.resolve();

function run(task) {
  queue = queue.then(task).catch(report);
  return queue;
}

function report(error) {
  // What the page shows may now lag behind what the events said: read it whole next time.
  page.stale = true;
  if (error instanceof ApiError) showMessage(error.message);
  else {
    console.error(error);
    setConnection("reconnecting to the controller…", "reconnecting");
  }
}

async function loadView() {
  page.stale = false;
  page.loading = true;
  const name = page.view;
  try {
    const view = VIEWS[name];
    await (name === "batch" ? view.load(page.batchId) : view.load());
  } finally {
    page.loading = false;
  }
  afterFrame(() => performance.mark("qfarm:view-shown", { detail: { view: name } }));
}

function onChanges(changes, arrived) {
  const shown = page.shown;
  const view = VIEWS[page.view];
  const painted = Boolean(view.paint && !page.loading && !page.stale && view.paint(changes));
  if (painted) shownAt(arrived, changes.length);
  run(async () => {
    if (shown !== page.shown) return; // the view was left; the one shown now reads itself whole
    // A batch removed leaves its view, even one whose last read failed (it may have failed
    // because the batch was being removed).
    const removed = view.removedIn && view.removedIn(changes);
    if (page.stale && !removed) return loadView();
    if (!view.apply) return;
    const outcome = removed ? "removed" : await view.apply(changes, painted);
    if (!painted) shownAt(arrived, changes.length);
    if (outcome === "removed") {
      page.flash = `Batch ${page.batchId} was removed.`;
      location.hash = "#/batches";
    }
  });
}

// ------------------------------------------------------------------ routing

function route() {
  const parts = (location.hash || "#/batches").slice(2).split("/");
  let view = parts[0] || "batches";
  if (view === "batch" && parts[1]) {
    page.batchId = Number(parts[1]);
  } else if (!["batches", "nodes", "submit", "openjd", "failures", "stats"].includes(view)) {
    view = "batches";
  }
  if (page.view === "batch" && view !== "batch") batchView.leave();
  page.view = view;
  page.shown += 1;
  for (const section of document.querySelectorAll("main > section")) {
    section.hidden = section.id !== `view-${view}`;
  }
  for (const link of document.querySelectorAll("nav a")) {
    const current = link.dataset.view === view || (view === "batch" && link.dataset.view === "batches");
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  showMessage(page.flash);
  page.flash = "";
  run(loadView);
}

// ------------------------------------------------------------------ start

const live = new Live({
  // Whatever changed while the stream was down is lost: read the view whole.
  onOpen: () => run(loadView),
  onChanges,
});

batchView.init(run);
batchList.init(run);
nodesView.init(run);
failuresView.init(run);
statsView.init(run);
form.init();
openjdForm.init();
onNewToken(() => live.connect());
window.addEventListener("hashchange", route);
route();
live.connect();
