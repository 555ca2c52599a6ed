// A batch's timeline: one row per node, one bar per attempt, on a time scale from the first
// start. Drawn whole each time (an SVG of a few hundred bars is cheap to build), from the
// attempts the batch view keeps, so drawing it fetches nothing. Beyond a few hundred
// attempts, bars narrower than a pixel would only pile up: each node's row is then drawn
// as runs of pixels, each in the colour of most of the attempts under it, so the SVG holds
// at most a few thousand rectangles however long the batch.

import { el, svgEl } from "../dom.js";
import { span, when } from "../format.js";

// Tick steps for the time scale, in seconds: the first that gives at most six.
const TICK_STEPS = [0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400];
const COLOURS = { done: "--done", failed: "--failed", canceled: "--canceled", lost: "--queued" };
const BARS_AT_MOST = 600; // one bar per attempt up to this many; runs of pixels beyond

// `attempts`: every attempt of the batch; `indexOf`: segment id -> the segment's index.
export function drawTimeline(attempts, indexOf) {
  const box = document.getElementById("timeline");
  box.replaceChildren();
  const started = attempts.filter((a) => a.started_at || a.dispatched_at);
  if (!started.length) {
    box.append(el("p", { className: "empty", text: "Nothing has run yet." }));
    return;
  }
  const now = Date.now() / 1000;
  const nodes = [...new Set(started.map((a) => a.node))].sort();
  const t0 = started.reduce((low, a) => Math.min(low, a.started_at || a.dispatched_at), Infinity);
  const t1 = started.reduce((high, a) => Math.max(high, a.ended_at || now), -Infinity);
  const width = Math.max(box.clientWidth || 600, 320);
  const left = 110;
  const row = 22;
  const rowsHeight = nodes.length * row;
  const height = rowsHeight + 40;
  const scale = (width - left - 10) / Math.max(t1 - t0, 0.001);
  const svg = svgEl("svg", { width, height, role: "img", "aria-label": "attempts per node over time" });
  const style = getComputedStyle(document.documentElement);
  // The time scale: a line and a label every `step` seconds from the first start.
  const step = TICK_STEPS.find((s) => (t1 - t0) / s <= 6) || TICK_STEPS[TICK_STEPS.length - 1];
  for (let n = 0; n * step <= t1 - t0 + 1e-9; n += 1) {
    const t = n * step;
    const x = left + t * scale;
    svg.append(svgEl("line", { x1: x, x2: x, y1: 0, y2: rowsHeight + 4, stroke: "#d8dde6", class: "tick" }));
    svg.append(svgEl("text", { x, y: rowsHeight + 18, "text-anchor": "middle", class: "tick-label" }, step < 1 ? `+${t.toFixed(1)}s` : `+${span(t)}`));
  }
  nodes.forEach((node, i) => svg.append(svgEl("text", { x: 4, y: i * row + 15 }, node)));
  if (started.length > BARS_AT_MOST) {
    drawRuns(svg, started, nodes, { left, row, t0, scale, now, style });
    svg.append(svgEl("text", { x: left, y: height - 4, class: "tick-label" }, `${span(t1 - t0)} from ${when(t0)}, ${started.length} attempts`));
    box.append(svg);
    return;
  }
  for (const attempt of started) {
    const begin = attempt.started_at || attempt.dispatched_at;
    const end = attempt.ended_at || now;
    const x = left + (begin - t0) * scale;
    const y = nodes.indexOf(attempt.node) * row + 4;
    const barWidth = Math.max(2, (end - begin) * scale);
    const fill = style.getPropertyValue(COLOURS[attempt.outcome] || "--running");
    const rect = svgEl("rect", { x, y, width: barWidth, height: row - 8, fill });
    const index = indexOf.get(attempt.segment_id) ?? attempt.segment_id;
    rect.append(svgEl("title", {}, `segment ${index} attempt ${attempt.number}: ${attempt.outcome || "running"}, ${span(end - begin)}`));
    svg.append(rect);
    // Each bar says which segment it is, where there is room for the number.
    const label = String(index);
    if (barWidth >= 8 * label.length + 6) {
      svg.append(svgEl("text", { x: x + 3, y: y + row - 11, class: "bar-label" }, label));
    }
  }
  svg.append(svgEl("text", { x: left, y: height - 4, class: "tick-label" }, `${span(t1 - t0)} from ${when(t0)}`));
  box.append(svg);
}

// Each node's row as runs of whole pixels: a pixel takes the colour of the outcome that
// covers most of it, and neighbouring pixels of one colour are one rectangle.
function drawRuns(svg, attempts, nodes, { left, row, t0, scale, now, style }) {
  const rowOf = new Map(nodes.map((node, i) => [node, i]));
  const cover = nodes.map(() => new Map()); // row -> pixel -> {colour: seconds}
  for (const attempt of attempts) {
    const begin = attempt.started_at || attempt.dispatched_at;
    const end = attempt.ended_at || now;
    const colour = COLOURS[attempt.outcome] || "--running";
    const pixels = cover[rowOf.get(attempt.node)];
    const from = Math.floor((begin - t0) * scale);
    const to = Math.max(from, Math.ceil((end - t0) * scale) - 1);
    for (let x = from; x <= to; x += 1) {
      const overlap = Math.min(end, t0 + (x + 1) / scale) - Math.max(begin, t0 + x / scale);
      const shares = pixels.get(x) || {};
      shares[colour] = (shares[colour] || 0) + Math.max(overlap, 1e-9);
      pixels.set(x, shares);
    }
  }
  cover.forEach((pixels, i) => {
    const xs = [...pixels.keys()].sort((a, b) => a - b);
    let run = null;
    const flush = () => {
      if (!run) return;
      const rect = svgEl("rect", { x: left + run.from, y: i * row + 4, width: run.to - run.from + 1, height: row - 8, fill: style.getPropertyValue(run.colour), class: "run" });
      svg.append(rect);
    };
    for (const x of xs) {
      const shares = pixels.get(x);
      const colour = Object.keys(shares).reduce((a, b) => (shares[a] >= shares[b] ? a : b));
      if (run && run.colour === colour && run.to === x - 1) run.to = x;
      else {
        flush();
        run = { from: x, to: x, colour };
      }
    }
    flush();
  });
}
