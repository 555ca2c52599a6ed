// Small SVG charts of our own: stacked bars and lines (or areas) over a row of categories
// (time buckets, segments), with axes, tick labels, a legend, a title, and for screen
// readers and keyboards a data table and a readout. No third-party files: the farm's page
// works with no way out to a CDN.
//
// Each chart is drawn whole into its box (a few hundred shapes are cheap to build) inside a
// viewBox, so it scales to its box at any width. Keyboard: the plot is one tab stop; the
// arrow keys, Home and End move a cursor from category to category, and the readout under
// the plot (a live region) says what is there. The data table below, in a <details>, has
// every value. A chart drawn again over one a keyboard user is stepping through (new work
// ended) keeps their place: the cursor stays on its category and the plot keeps the focus.

import { el, svgEl } from "../dom.js";

const WIDTH = 640;
const HEIGHT = 220;
const MARGIN = { left: 44, right: 10, top: 10, bottom: 26 };
// Distinct under the common colour blindnesses (Okabe and Ito), then a few more.
export const PALETTE = ["#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#6a3d9a", "#8c8c00"];

let charts = 0; // ids for labels, unique on the page

export function colourOf(name, names) {
  const index = names.indexOf(name);
  return PALETTE[(index < 0 ? names.length : index) % PALETTE.length];
}

// A round top for the y axis and a step with at most five ticks: 1, 2 or 5 times a power of ten.
function niceScale(top) {
  if (!(top > 0)) return { max: 1, step: 0.25 };
  const raw = top / 5;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw);
  return { max: Math.ceil(top / step - 1e-9) * step, step };
}

// The frame every chart shares: the figure, title, legend, svg with its axes, readout and
// data table. Returns what the plot drawer needs.
function frame(box, spec, legendNames, colours) {
  const names = spec.series;
  charts += 1;
  const id = `chart-${charts}`;
  const { max, step } = niceScale(spec.yMax ?? Math.max(0, ...spec.values.flat()));
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const count = spec.categories.length;
  const band = plotW / Math.max(count, 1);
  const x = (i) => MARGIN.left + band * (i + 0.5);
  const y = (v) => MARGIN.top + plotH - (Math.min(v, max) / max) * plotH;
  const format = spec.format || ((v) => String(Math.round(v * 100) / 100));

  const svg = svgEl("svg", {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    class: "chart-plot",
    role: "img",
    tabindex: "0",
    "aria-labelledby": `${id}-title`,
    "aria-describedby": `${id}-readout`,
    "data-categories": count,
  });
  svg.append(svgEl("title", {}, `${spec.title}: ${spec.summary || ""}`));
  for (let v = 0; v <= max + 1e-9; v += step) {
    svg.append(svgEl("line", { x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: y(v), y2: y(v), class: "grid-line" }));
    svg.append(svgEl("text", { x: MARGIN.left - 4, y: y(v) + 4, "text-anchor": "end", class: "tick-label" }, format(v)));
  }
  // About six x labels, whatever the count.
  const every = Math.max(1, Math.ceil(count / 6));
  for (let i = 0; i < count; i += every) {
    svg.append(svgEl("text", { x: x(i), y: HEIGHT - 8, "text-anchor": "middle", class: "tick-label" }, spec.categories[i]));
  }
  svg.append(svgEl("line", { x1: MARGIN.left, x2: MARGIN.left, y1: MARGIN.top, y2: MARGIN.top + plotH, class: "axis" }));
  svg.append(svgEl("line", { x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: y(0), y2: y(0), class: "axis" }));
  const plot = svgEl("g", { class: "series" });
  const cursor = svgEl("rect", { class: "chart-cursor", x: 0, y: MARGIN.top, width: band, height: plotH, visibility: "hidden" });
  svg.append(cursor, plot);

  const legend = el(
    "ul",
    { className: "chart-legend", "aria-label": "Legend" },
    ...legendNames.map((name, i) =>
      el("li", {}, el("span", { className: "swatch", style: `background:${colours[i]}`, "aria-hidden": "true" }), spec.legend?.[i] ?? name),
    ),
  );
  const readout = el("p", { className: "chart-readout", id: `${id}-readout`, "aria-live": "polite", text: spec.hint || "Arrow keys: step through the chart." });
  const table = el(
    "table",
    { className: "chart-table" },
    el("caption", { text: spec.title }),
    el("thead", {}, el("tr", {}, el("th", { scope: "col", text: spec.categoryName || "" }), ...names.map((n) => el("th", { scope: "col", text: n })))),
    el(
      "tbody",
      {},
      ...spec.categories.map((label, i) =>
        el("tr", {}, el("th", { scope: "row", text: spec.rowLabels?.[i] ?? label }), ...spec.values.map((row) => el("td", { text: format(row[i] ?? 0) })))),
    ),
  );
  const details = el("details", { className: "chart-data" }, el("summary", { text: "Data table" }), el("div", { className: "scroll" }, table));

  let at = -1;
  const show = (i) => {
    at = Math.max(0, Math.min(count - 1, i));
    svg.dataset.at = at;
    cursor.setAttribute("x", x(at) - band / 2);
    cursor.setAttribute("visibility", "visible");
    const values = names.map((n, s) => `${n} ${format(spec.values[s][at] ?? 0)}`).join(", ");
    readout.textContent = `${spec.rowLabels?.[at] ?? spec.categories[at]}: ${values}${spec.notes?.[at] ? ` (${spec.notes[at]})` : ""}`;
  };
  svg.addEventListener("keydown", (event) => {
    const moves = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: count - 1 };
    if (!(event.key in moves) || !count) return;
    event.preventDefault();
    show(at < 0 && event.key.startsWith("Arrow") ? (event.key === "ArrowLeft" ? count - 1 : 0) : moves[event.key]);
  });
  svg.addEventListener("pointermove", (event) => {
    const bounds = svg.getBoundingClientRect();
    const inBox = ((event.clientX - bounds.left) / bounds.width) * WIDTH;
    if (count) show(Math.floor((inBox - MARGIN.left) / band));
  });

  const figure = el("figure", { className: "chart", "data-chart": spec.name || "" },
    el("figcaption", { id: `${id}-title`, text: spec.title }), legend, svg, readout, details); // prettier-ignore
  // The chart this one replaces: the one in the box, or (a box made afresh) the one named.
  const old = spec.replaces ?? box.querySelector("svg.chart-plot");
  const hadFocus = Boolean(old) && old === document.activeElement;
  const oldAt = Number(old?.dataset.at ?? -1);
  box.replaceChildren(figure);
  if (oldAt >= 0 && count) show(oldAt);
  if (hadFocus && svg.isConnected) svg.focus();
  return { plot, x, y, band, max };
}

// Stacked bars: `values[s][i]` is series s in category i. `barColours[i]`, where given, colours
// category i's bar (one series per chart: a segment's node), `marks[i]` outlines it, and
// `everyBar` draws a bar for a zero too (each category is one thing: a segment).
export function barChart(box, spec) {
  const names = spec.series;
  const colours = spec.colours || names.map((n) => colourOf(n, names));
  const { plot, x, y, band } = frame(box, spec, spec.legendNames || names, spec.legendColours || colours);
  const width = Math.max(1, band * 0.8);
  spec.categories.forEach((label, i) => {
    let base = 0;
    spec.values.forEach((row, s) => {
      const value = row[i] ?? 0;
      if (!(value > 0) && !spec.everyBar) return; // a bar per category where each is one thing
      const top = y(base + value);
      const rect = svgEl("rect", {
        x: x(i) - width / 2, y: top, width, height: Math.max(0.5, y(base) - top),
        fill: spec.barColours?.[i] || colours[s], class: spec.marks?.[i] ? "bar marked" : "bar",
        "data-category": i, "data-series": names[s],
      }); // prettier-ignore
      rect.append(svgEl("title", {}, `${spec.rowLabels?.[i] ?? label}: ${names[s]} ${(spec.format || String)(value)}`));
      plot.append(rect);
      base += value;
    });
    if (spec.marks?.[i]) plot.append(svgEl("text", { x: x(i), y: y(base) - 3, "text-anchor": "middle", class: "mark" }, "▲"));
  });
}

// Lines, one per series, over the categories; `area` fills under each (not stacked).
export function lineChart(box, spec) {
  const names = spec.series;
  const colours = spec.colours || names.map((n) => colourOf(n, names));
  const { plot, x, y } = frame(box, spec, names, colours);
  spec.values.forEach((row, s) => {
    if (!row.length) return;
    const points = row.map((v, i) => `${x(i).toFixed(1)},${y(v ?? 0).toFixed(1)}`);
    if (spec.area) {
      const floor = y(0).toFixed(1);
      const d = `M${x(0).toFixed(1)},${floor} L${points.join(" L")} L${x(row.length - 1).toFixed(1)},${floor} Z`;
      plot.append(svgEl("path", { d, fill: colours[s], class: "area" }));
    }
    const line = svgEl("polyline", { points: points.join(" "), stroke: colours[s], class: "line", "data-series": names[s], "data-points": row.length });
    line.append(svgEl("title", {}, names[s]));
    plot.append(line);
  });
}

// Bucket start times as clock labels: 14:05.
export function clockLabels(times) {
  return times.map((t) => new Date(t * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }));
}
