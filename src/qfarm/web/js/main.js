// qfarm Batch Monitor: batches, jobs, segments and nodes of one controller, kept current by
// its change stream. ES modules straight from the controller's /static: no build step and no
// third-party files, so the page works on a farm cut off from the internet.
//
// One view is on the page at a time. It is read whole when it is shown and whenever the
// change stream (re)connects; in between, each round of change events goes to the view,
// which reads again only what the events name. Every update of the page, including the
// user's actions, runs through one queue, one after another: an answer that was asked for
// first can never overwrite a newer one.

import { ApiError, onNewToken } from "./api.js";
import { setConnection, showMessage } from "./dom.js";
import { Live } from "./live.js";
import * as batchView from "./views/batch.js";
import * as batchList from "./views/batches.js";
import * as failuresView from "./views/failures.js";
import * as form from "./views/form.js";
import * as nodesView from "./views/nodes.js";

const VIEWS = { batches: batchList, batch: batchView, nodes: nodesView, submit: form, failures: failuresView };

const page = {
  view: null,
  batchId: null,
  shown: 0, // counts the views shown: a queued update for a view since left is dropped
  stale: false, // an update failed: the next round of changes reads the view whole instead
  flash: "", // a message for the next view (why the page left the last one)
};

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

function loadView() {
  page.stale = false;
  const view = VIEWS[page.view];
  return page.view === "batch" ? view.load(page.batchId) : view.load();
}

function onChanges(changes) {
  const shown = page.shown;
  run(async () => {
    if (shown !== page.shown) return; // the view was left; the one shown now reads itself whole
    if (page.stale) return loadView();
    const view = VIEWS[page.view];
    if (!view.apply) return;
    if ((await view.apply(changes)) === "removed") {
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
  } else if (!["batches", "nodes", "submit", "failures"].includes(view)) {
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
form.init();
onNewToken(() => live.connect());
window.addEventListener("hashchange", route);
route();
live.connect();
