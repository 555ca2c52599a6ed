// A log drawn line by line into its <pre>: one <span class="line" data-line="N"> per line,
// numbered from 1 and split on "\n" only, as the API numbers them (qfarm.domain.loglines),
// so the line the API names as the first error is the span of that number.
//
// Text only ever goes in as text nodes; a search's matches are <mark> elements made here
// around pieces of that text (never HTML built from it: a log holds whatever a program
// printed). The <pre>'s textContent stays exactly the log's text.
//
// A followed log grows in chunks that may end mid-line: the last line stays "open" until its
// "\n" comes, and is drawn again with what the next chunk adds.

export class LogLines {
  constructor(pre) {
    this.pre = pre;
    this.lines = []; // each line's text, without its "\n"
    this.spans = []; // the span of each line
    this.closed = true; // whether the last line has its "\n"
    this.pattern = null; // the search's RegExp (flags "gi"), or null
  }

  clear() {
    this.lines = [];
    this.spans = [];
    this.closed = true;
    this.pre.replaceChildren();
  }

  get count() {
    return this.lines.length;
  }

  // Add `text` at the end of the log.
  append(text) {
    if (!text) return;
    const pieces = text.split("\n");
    const endsWithNewline = pieces[pieces.length - 1] === "";
    if (endsWithNewline) pieces.pop();
    let from = this.lines.length;
    if (from > 0 && !this.closed) {
      from -= 1;
      this.lines[from] += pieces.shift() ?? "";
    }
    this.lines.push(...pieces);
    this.closed = endsWithNewline;
    const added = document.createDocumentFragment();
    for (let i = from; i < this.lines.length; i++) {
      if (!this.spans[i]) {
        this.spans[i] = document.createElement("span");
        this.spans[i].className = "line";
        this.spans[i].dataset.line = String(i + 1);
        added.append(this.spans[i]);
      }
      this.draw(i);
    }
    this.pre.append(added);
  }

  // Highlight what `pattern` matches (null: nothing), drawing again only the lines whose
  // marks change.
  highlight(pattern) {
    const before = this.pattern;
    this.pattern = pattern;
    this.lines.forEach((line, i) => {
      if (matches(before, line) || matches(pattern, line)) this.draw(i);
    });
  }

  // The span of line `number` (from 1), or null when the log has no such line (yet).
  line(number) {
    return this.spans[number - 1] || null;
  }

  draw(i) {
    const line = this.lines[i];
    const parts = [];
    let at = 0;
    if (this.pattern && line) {
      this.pattern.lastIndex = 0;
      for (const found of line.matchAll(this.pattern)) {
        if (!found[0]) break; // an empty match would never move on
        if (found.index > at) parts.push(document.createTextNode(line.slice(at, found.index)));
        const mark = document.createElement("mark");
        mark.className = "match";
        mark.textContent = found[0];
        parts.push(mark);
        at = found.index + found[0].length;
      }
    }
    const last = i === this.lines.length - 1;
    const rest = line.slice(at) + (last && !this.closed ? "" : "\n");
    if (rest) parts.push(document.createTextNode(rest));
    this.spans[i].replaceChildren(...parts);
  }
}

function matches(pattern, line) {
  if (!pattern || !line) return false;
  pattern.lastIndex = 0;
  return pattern.test(line);
}

// What the user typed, as a pattern that finds it literally, whatever case.
export function literalPattern(query) {
  if (!query) return null;
  return new RegExp(query.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"), "gi");
}
