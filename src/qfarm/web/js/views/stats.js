// The farm over time (GET /stats): segments done per bucket and instances busy per service,
// and each node's load, over the last hour (or the window chosen), drawn by charts.js.
//
// The series are worked out by the controller from the attempts at each read, so the view
// reads them whole. Change events only say that something moved: the view reads again on a
// segment's change, at most once every few seconds however many arrive (a busy farm sends
// many a second), the last round of changes always followed by a read.

import { api } from "../api.js";
import { el } from "../dom.js";
import { barChart, clockLabels, lineChart } from "./charts.js";

const THROTTLE_MS = 5000;

const view = { readAt: 0, timer: null };

let run = (task) => task();

export function init(serialize) {
  run = serialize;
  document.getElementById("stats-window").addEventListener("change", () => run(load));
}

export async function load() {
  view.readAt = Date.now();
  clearTimeout(view.timer);
  view.timer = null;
  const [window, step] = document.getElementById("stats-window").value.split(":");
  render(await api(`/stats?window=${window}&step=${step}`));
}

export async function apply(changes) {
  if (!changes.some((c) => c.kind === "segment")) return;
  const wait = view.readAt + THROTTLE_MS - Date.now();
  if (wait <= 0) return load();
  if (view.timer) return;
  view.timer = setTimeout(() => {
    view.timer = null;
    run(() => (document.getElementById("view-stats").hidden ? undefined : load()));
  }, wait);
}

function per(step) {
  return step === 60 ? "per minute" : step === 3600 ? "per hour" : `per ${step >= 60 ? `${step / 60} min` : `${step} s`}`;
}

function render(found) {
  const services = found.services.map((s) => s.service);
  const categories = clockLabels(found.times);
  const rowLabels = found.times.map((t) => new Date(t * 1000).toLocaleTimeString());
  const total = found.services.reduce((sum, s) => sum + s.total_done, 0);
  const minutes = Math.max((found.as_of - found.start) / 60, 1 / 60);
  document.getElementById("stats-summary").textContent =
    `${total} segment${total === 1 ? "" : "s"} done since ${new Date(found.start * 1000).toLocaleTimeString()}, ` +
    `on ${found.nodes.filter((n) => n.state === "online").length} online nodes.`;
  document.querySelector("#stats-services tbody").replaceChildren(
    ...found.services.map((s) =>
      el(
        "tr",
        { "data-service": s.service },
        el("th", { scope: "row", text: s.service }),
        el("td", { className: "done", text: String(s.total_done) }),
        el("td", { text: (s.total_done / minutes).toFixed(2) }),
        el("td", { text: s.mean_busy.toFixed(2) }),
        el("td", { text: String(s.peak_busy) }),
        el("td", { text: String(s.instances) }),
      ),
    ),
  );
  document.getElementById("stats-empty").hidden = services.length > 0;
  barChart(document.getElementById("stats-done"), {
    name: "done",
    title: `Segments done ${per(found.step)}, per service`,
    summary: `${total} in the window`,
    categoryName: "From",
    categories,
    rowLabels,
    series: services,
    values: found.services.map((s) => s.done),
    format: (v) => String(Math.round(v * 100) / 100),
  });
  const instances = Object.values(found.instances).reduce((a, b) => a + b, 0);
  lineChart(document.getElementById("stats-busy"), {
    name: "busy",
    title: "Instances busy, per service",
    summary: `${instances} instances on the farm now`,
    categoryName: "From",
    categories,
    rowLabels,
    series: services,
    values: found.services.map((s) => s.busy),
    yMax: Math.max(instances, ...found.services.flatMap((s) => s.busy)),
    area: true,
  });
  const known = found.nodes.filter((n) => n.load);
  lineChart(document.getElementById("stats-nodes"), {
    name: "nodes",
    title: "Load per node (busy instances over its instances)",
    summary: `${known.length} nodes`,
    categoryName: "From",
    categories,
    rowLabels,
    series: known.map((n) => n.node),
    values: known.map((n) => n.load.map((v) => v * 100)),
    yMax: 100,
    format: (v) => `${Math.round(v)}%`,
  });
}
