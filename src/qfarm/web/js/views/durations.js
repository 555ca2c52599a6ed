// A batch's segment durations (GET /batches/{id}/durations): one bar per tried segment, by
// segment index, coloured by the node that ran it, one chart per job. A slow node reads as a
// colour whose bars stand taller (its mean is in the legend); a heavy frame (far over its
// job's median) is outlined and marked with ▲. Drawn by charts.js, so it has the same table,
// readout and keyboard steps as the Stats view's charts.
//
// The batch view calls drawDurations(box, batchId) when it shows a batch and again when its
// segments end; it fetches one request and draws whole. A job of more segments than a chart
// has room for bars is drawn in runs of neighbouring segments, one bar per run, standing
// for its slowest segment (its node's colour, its mark if heavy): a heavy frame or a slow
// node still stands out, and the chart and its table stay a few hundred elements however
// large the batch.

import { api } from "../api.js";
import { el } from "../dom.js";
import { span } from "../format.js";
import { barChart, colourOf } from "./charts.js";

const BARS_AT_MOST = 300;

// Segments in runs of neighbours, each run given as its slowest, labelled with its span.
function inRuns(segments) {
  if (segments.length <= BARS_AT_MOST) return segments.map((d) => ({ ...d, first: d.index, runOf: 1 }));
  const size = Math.ceil(segments.length / BARS_AT_MOST);
  const runs = [];
  for (let i = 0; i < segments.length; i += size) {
    const run = segments.slice(i, i + size);
    const slowest = run.reduce((a, b) => (b.seconds > a.seconds ? b : a));
    runs.push({ ...slowest, heavy: run.some((d) => d.heavy), first: run[0].index, last: run[run.length - 1].index, runOf: run.length });
  }
  return runs;
}

function seconds(value) {
  return value < 10 ? `${value.toFixed(1)}s` : span(value);
}

export async function drawDurations(box, batchId, jobId = null) {
  const query = jobId ? `?job=${jobId}` : "";
  const found = await api(`/batches/${batchId}/durations${query}`);
  const nodes = found.nodes.map((n) => n.node);
  if (!found.segments.length) {
    box.replaceChildren(el("p", { className: "empty", text: "No segment has run yet." }));
    return found;
  }
  const jobs = [...new Map(found.segments.map((d) => [d.job_id, d.job_name])).entries()];
  // Each job's chart as it stands, so a redraw keeps a keyboard user's place (see charts.js).
  const before = new Map([...box.querySelectorAll(".chart-box")].map((h) => [h.dataset.job, h.querySelector("svg.chart-plot")]));
  const focused = box.contains(document.activeElement) ? document.activeElement.closest(".chart-box")?.dataset.job : undefined;
  const charts = jobs.map(([jobIdOf, name]) => {
    const all = found.segments.filter((d) => d.job_id === jobIdOf);
    const shown = inRuns(all);
    const runs = shown.length < all.length;
    const holder = el("div", { className: "chart-box", "data-job": jobIdOf });
    barChart(holder, {
      name: "durations",
      replaces: before.get(String(jobIdOf)),
      title: `Segment durations${jobs.length > 1 ? ` of job ${name || jobIdOf}` : ""}`,
      summary:
        `${all.length} segments; ${all.filter((d) => d.heavy).length} heavy` +
        (runs ? `; each bar is the slowest of ${shown[0].runOf} neighbouring segments` : ""),
      categoryName: runs ? "Segments" : "Segment",
      categories: shown.map((d) => (d.runOf > 1 ? `${d.first}–${d.last}` : String(d.index))),
      rowLabels: shown.map((d) =>
        d.runOf > 1 ? `#${d.first}–${d.last}, slowest #${d.index} (${d.label}) on ${d.node}` : `#${d.index} (${d.label}) on ${d.node}`,
      ),
      notes: shown.map((d) =>
        [d.attempt > 1 ? `attempt ${d.attempt}` : "", d.outcome || "running", d.heavy ? "heavy" : ""].filter(Boolean).join(", "),
      ),
      series: ["seconds"],
      values: [shown.map((d) => d.seconds)],
      barColours: shown.map((d) => colourOf(d.node, nodes)),
      marks: shown.map((d) => d.heavy),
      everyBar: true,
      legendNames: found.nodes.map((n) => `${n.node}: ${n.segments} segments, mean ${seconds(n.mean_seconds)}`),
      legendColours: nodes.map((n) => colourOf(n, nodes)),
      format: seconds,
    });
    return holder;
  });
  box.replaceChildren(...charts);
  if (focused !== undefined) box.querySelector(`.chart-box[data-job="${focused}"] svg.chart-plot`)?.focus();
  return found;
}
