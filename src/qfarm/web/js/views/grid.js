// The segment grid of the batch view: one button per segment, coloured by state, drawn only
// for the rows in sight. A batch of 10,000 segments puts a few hundred buttons in the page,
// not 10,000: the box scrolls over a spacer as tall as every row, and the rows in sight
// (and a few beyond) are drawn at their place. A state change of a segment out of sight
// costs nothing but the record; one in sight changes its button.
//
// The keyboard: the grid is one stop of the Tab order (the cell last moved to), the arrow
// keys, Home, End, Page Up and Page Down move in it, scrolling as they go, and Enter or
// Space chooses the cell (it is a button).
//
// While picking (to act on several segments at once), choosing a cell ticks or unticks it
// instead (a toggle button: aria-pressed), and the ticks outlive filters and scrolling.

import { el } from "../dom.js";

const GAP_PX = 3; // the .grid gap in style.css
const OVERSCAN_ROWS = 3; // drawn beyond the box's edges, so a quick scroll shows no gap

export class SegmentGrid {
  // `box`: the scrolling element; `onChoose(id)`: a cell was clicked or chosen by key;
  // `describe(segment)`: the cell's label (title and accessible name).
  constructor(box, { onChoose, describe }) {
    this.box = box;
    this.onChoose = onChoose;
    this.describe = describe;
    this.items = []; // the segments shown (those the filters let through), in grid order
    this.position = new Map(); // segment id -> its place in items
    this.cells = new Map(); // segment id -> its button, for the cells drawn now
    this.range = [0, 0]; // the items drawn now: [first, end)
    this.current = null; // the segment whose cell is the grid's Tab stop
    this.selected = null;
    this.picking = false;
    this.ticked = new Set(); // segment ids ticked while picking
    this.pitch = 0; // a cell and its gap, in px (read from the page once it is laid out)
    this.columns = 1;
    this.frame = 0;
    this.rows = el("div", { className: "grid-rows" });
    this.spacer = el("div", { className: "grid-spacer" }, this.rows);
    box.replaceChildren(this.spacer);
    box.addEventListener("scroll", () => this.schedule());
    box.addEventListener("keydown", (event) => this.key(event));
    // A cell reached by Tab or a click is where the arrow keys go on from.
    box.addEventListener("focusin", (event) => {
      const id = Number(event.target.dataset?.segment);
      if (id) this.current = id;
    });
    new ResizeObserver(() => this.schedule()).observe(box);
  }

  // A new list of segments to show (a new batch, or the filters changed).
  show(segments) {
    const hadFocus = this.box.contains(document.activeElement);
    this.items = segments;
    this.position = new Map(segments.map((s, i) => [s.id, i]));
    if (!this.position.has(this.current)) this.current = segments.length ? segments[0].id : null;
    this.range = [0, 0]; // every cell drawn again
    for (const cell of this.cells.values()) cell.remove();
    this.cells.clear();
    this.draw();
    // The keyboard stays in the grid (a filtered grid is drawn again on every change).
    if (hadFocus) this.cells.get(this.current)?.focus();
  }

  // A segment shown changed (its state or node): its cell, if drawn, says so.
  update(segment) {
    const cell = this.cells.get(segment.id);
    if (cell) this.paint(cell, segment);
  }

  select(id) {
    const before = this.cells.get(this.selected);
    this.selected = id;
    if (before) before.classList.remove("selected");
    const cell = this.cells.get(id);
    if (cell) cell.classList.add("selected");
    if (this.position.has(id)) this.moveTo(id, false);
  }

  // Picking on or off: every drawn cell says whether it is a toggle.
  setPicking(on) {
    this.picking = on;
    this.repaint();
  }

  // Tick or untick segments (true: ticked), their drawn cells repainted.
  tick(ids, on) {
    for (const id of ids) {
      if (on) this.ticked.add(id);
      else this.ticked.delete(id);
    }
    this.repaint();
  }

  repaint() {
    for (const [id, cell] of this.cells) {
      const segment = this.items[this.position.get(id)];
      if (segment) this.paint(cell, segment);
    }
  }

  // ---------------------------------------------------------------- drawing

  schedule() {
    if (!this.frame) {
      this.frame = requestAnimationFrame(() => {
        this.frame = 0;
        this.draw();
      });
    }
  }

  measure() {
    if (!this.pitch) {
      const probe = el("button", { type: "button", className: "cell" }, "0");
      this.rows.append(probe);
      const size = probe.getBoundingClientRect().width;
      probe.remove();
      if (size) this.pitch = size + GAP_PX;
    }
    const width = this.spacer.clientWidth; // the box less its padding
    if (this.pitch && width) this.columns = Math.max(1, Math.floor((width + GAP_PX) / this.pitch));
    return Boolean(this.pitch && width);
  }

  draw() {
    if (!this.measure()) return; // not laid out (its view is hidden): drawn when shown
    const rowCount = Math.ceil(this.items.length / this.columns);
    this.spacer.style.height = `${Math.max(0, rowCount * this.pitch - GAP_PX)}px`;
    const top = Math.floor(this.box.scrollTop / this.pitch) - OVERSCAN_ROWS;
    const bottom = Math.ceil((this.box.scrollTop + this.box.clientHeight) / this.pitch) + OVERSCAN_ROWS;
    const first = Math.max(0, top) * this.columns;
    const end = Math.min(this.items.length, Math.max(0, bottom) * this.columns);
    const hadFocus = this.box.contains(document.activeElement);
    if (first !== this.range[0] || end !== this.range[1]) {
      const kept = new Map();
      const cells = [];
      for (let i = first; i < end; i += 1) {
        const segment = this.items[i];
        let cell = this.cells.get(segment.id);
        if (!cell) {
          cell = el("button", { type: "button", "data-segment": String(segment.id) }, String(segment.index));
          cell.addEventListener("click", () => this.choose(segment.id));
          this.paint(cell, segment);
        }
        kept.set(segment.id, cell);
        cells.push(cell);
      }
      for (const [id, cell] of this.cells) if (!kept.has(id)) cell.remove();
      this.cells = kept;
      this.range = [first, end];
      this.rows.style.top = `${(first / this.columns) * this.pitch}px`;
      // Cells already in place stay where they are (a focused one keeps the focus).
      let before = null;
      for (let i = cells.length - 1; i >= 0; i -= 1) {
        if (cells[i].parentNode !== this.rows || cells[i].nextSibling !== before) this.rows.insertBefore(cells[i], before);
        before = cells[i];
      }
    }
    // The Tab stop: the current cell, or the first drawn when it scrolled out of sight.
    const stop = this.cells.has(this.current) ? this.current : this.cells.keys().next().value;
    for (const [id, cell] of this.cells) cell.tabIndex = id === stop ? 0 : -1;
    if (hadFocus && !this.box.contains(document.activeElement)) {
      // The focused cell left the rows drawn (the grid was resized, say): scroll back to
      // it rather than drop the keyboard out of the grid.
      if (this.cells.has(this.current)) this.cells.get(this.current).focus();
      else if (this.position.has(this.current)) this.moveTo(this.current, true);
    }
  }

  paint(cell, segment) {
    const label = this.describe(segment);
    const ticked = this.ticked.has(segment.id);
    cell.className =
      `cell ${segment.state}` + (segment.id === this.selected ? " selected" : "") + (ticked ? " ticked" : "");
    cell.dataset.state = segment.state;
    cell.title = label;
    cell.setAttribute("aria-label", label);
    if (this.picking) cell.setAttribute("aria-pressed", String(ticked));
    else cell.removeAttribute("aria-pressed");
  }

  // ---------------------------------------------------------------- the keyboard

  choose(id) {
    this.moveTo(id, false);
    this.onChoose(id);
  }

  key(event) {
    if (this.current === null || !this.items.length) return;
    const at = this.position.get(this.current) ?? 0;
    const page = Math.max(1, Math.floor(this.box.clientHeight / (this.pitch || 1))) * this.columns;
    const to = {
      ArrowLeft: at - 1,
      ArrowRight: at + 1,
      ArrowUp: at - this.columns,
      ArrowDown: at + this.columns,
      Home: 0,
      End: this.items.length - 1,
      PageUp: at - page,
      PageDown: at + page,
    }[event.key];
    if (to === undefined) return;
    event.preventDefault();
    this.moveTo(this.items[Math.min(this.items.length - 1, Math.max(0, to))].id, true);
  }

  // Make `id` the Tab stop, scrolled into sight; with `focus`, give it the focus.
  moveTo(id, focus) {
    this.current = id;
    const at = this.position.get(id);
    if (at === undefined || !this.pitch) return;
    const y = Math.floor(at / this.columns) * this.pitch;
    if (y < this.box.scrollTop) this.box.scrollTop = y;
    else if (y + this.pitch > this.box.scrollTop + this.box.clientHeight) {
      this.box.scrollTop = y + this.pitch - this.box.clientHeight;
    }
    this.draw();
    if (focus) this.cells.get(id)?.focus();
  }
}
