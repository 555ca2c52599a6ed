// A batch's segment durations (GET /batches/{id}/durations): one bar per tried segment, by
// segment index, coloured by the node that ran it, one chart per job. A slow node reads as a
// colour whose bars stand taller (its mean is in the legend); a heavy frame (far over its
// job's median) is outlined and marked with ▲. Drawn by charts.js, so it has the same table,
// readout and keyboard steps as the Stats view's charts.
//
// The batch view calls drawDurations(box, batchId) when it shows a batch and again when its
// segments end; it fetches one request and draws whole.

import { api } from "../api.js";
import { el } from "../dom.js";
import { span } from "../format.js";
import { barChart, colourOf } from "./charts.js";

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
  const charts = jobs.map(([jobIdOf, name]) => {
    const shown = found.segments.filter((d) => d.job_id === jobIdOf);
    const holder = el("div", { className: "chart-box", "data-job": jobIdOf });
    barChart(holder, {
      name: "durations",
      title: `Segment durations${jobs.length > 1 ? ` of job ${name || jobIdOf}` : ""}`,
      summary: `${shown.length} segments; ${shown.filter((d) => d.heavy).length} heavy`,
      categoryName: "Segment",
      categories: shown.map((d) => String(d.index)),
      rowLabels: shown.map((d) => `#${d.index} (${d.label}) on ${d.node}`),
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
  return found;
}
