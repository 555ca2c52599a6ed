// Find in a log: every match of the search box highlighted, "n of m" beside it, and next /
// previous by button or by keyboard (Enter, Shift+Enter in the box). A followed log that
// grows keeps its matches current: the new lines are searched too, and the match the user
// is on stays the one they are on.

import { literalPattern } from "./log-lines.js";

export class LogSearch {
  // `lines` is the LogLines drawn in the log's <pre>; the rest are the page's controls.
  constructor(lines, { input, count, previous, next }) {
    this.lines = lines;
    this.input = input;
    this.count = count;
    this.marks = []; // the <mark> of each match, in the log's order
    this.current = -1; // index into marks of the match shown, -1 for none
    input.addEventListener("input", () => this.search());
    input.addEventListener("keydown", (event) => {
      if (event.key !== "Enter") return;
      event.preventDefault();
      this.step(event.shiftKey ? -1 : 1);
    });
    previous.addEventListener("click", () => this.step(-1));
    next.addEventListener("click", () => this.step(1));
  }

  // The box's text searched afresh: the first match becomes the one shown.
  search() {
    this.lines.highlight(literalPattern(this.input.value));
    this.collect();
    this.current = this.marks.length ? 0 : -1;
    this.show();
  }

  // The log grew (its new lines are drawn with the search's marks already): find the marks
  // anew, staying on the same match.
  refresh() {
    const wanted = this.current;
    this.collect();
    this.current = this.marks.length ? Math.min(Math.max(wanted, 0), this.marks.length - 1) : -1;
    this.show(false);
  }

  step(by) {
    if (!this.marks.length) return;
    this.current = (this.current + by + this.marks.length) % this.marks.length;
    this.show();
  }

  collect() {
    this.marks = [...this.lines.pre.querySelectorAll("mark.match")];
  }

  // Say where the user is, and bring that match into view (unless `scroll` is false: a
  // followed log that grows must not pull the view away from where the user reads).
  show(scroll = true) {
    for (const mark of this.lines.pre.querySelectorAll("mark.current")) mark.classList.remove("current");
    const mark = this.marks[this.current];
    if (!this.input.value) this.count.textContent = "";
    else if (!mark) this.count.textContent = "no matches";
    else this.count.textContent = `${this.current + 1} of ${this.marks.length}`;
    if (!mark) return;
    mark.classList.add("current");
    if (scroll) mark.scrollIntoView({ block: "center", inline: "nearest" });
  }
}
