// The log viewer: an ended attempt's log read once; a running attempt's log followed as it
// grows (GET .../follow, server-sent `log` events, then `end`).
//
// Above the log it says whose log it is (which attempt of how many, the node, its outcome,
// exit code and times) and lets the user switch to another attempt of the segment; beside
// it: find in the log, jump to the first line that looks like an error (the API decides
// which, by the one rule of qfarm.domain.loglines, so page, API and CLI agree), and save the
// log as a file.

import { api, streamUrl } from "../api.js";
import { el, showMessage, stateLabel } from "../dom.js";
import { readText, saveFile } from "../download.js";
import { span, when } from "../format.js";
import { LogLines } from "./log-lines.js";
import { LogSearch } from "./log-search.js";

let follow = null; // the EventSource of the log being followed
// The attempt whose log is on the page: {batchId, segment, attempt, attempts}. A new object
// each time one is shown, so an answer for an attempt no longer shown is known and dropped.
let shown = null;
let lines = null; // the LogLines of #log, made on first use (the page is parsed by then)
let search = null;

function setUp() {
  if (lines) return;
  lines = new LogLines(document.getElementById("log"));
  search = new LogSearch(lines, {
    input: document.getElementById("log-search"),
    count: document.getElementById("log-search-count"),
    previous: document.getElementById("log-previous"),
    next: document.getElementById("log-next"),
  });
  document.getElementById("log-first-error").addEventListener("click", () => act(jumpToFirstError));
  document.getElementById("log-download").addEventListener("click", () => act(download));
  document.getElementById("log-attempt-select").addEventListener("change", (event) => {
    const number = Number(event.target.value);
    const chosen = shown && shown.attempts.find((a) => a.number === number);
    if (chosen) act(() => showLog(shown.batchId, shown.segment, chosen));
  });
}

// The controls' work, with an error of the API shown as the page shows every other.
function act(task) {
  Promise.resolve()
    .then(task)
    .catch((error) => showMessage(error.message));
}

export function shownAttempt() {
  return shown && { segmentId: shown.segment.id, number: shown.attempt.number };
}

export function stopFollowing() {
  if (follow) {
    follow.close();
    follow = null;
  }
}

// Forget the log on the page (another segment or batch was chosen).
export function clearLog() {
  stopFollowing();
  shown = null;
}

function basePath(at) {
  return `/batches/${at.batchId}/segments/${at.segment.id}/attempts/${at.attempt.number}`;
}

export async function showLog(batchId, segment, attempt) {
  setUp();
  stopFollowing();
  const at = { batchId, segment, attempt, attempts: [attempt] };
  shown = at;
  const log = document.getElementById("log");
  const title = document.getElementById("log-title");
  const heading = `Log of attempt ${attempt.number} on ${attempt.node}`;
  const base = basePath(at);
  title.textContent = heading;
  lines.clear();
  search.refresh();
  note("");
  drawAbout(at);
  act(() => readAttempts(at)); // the switcher's list, read beside the log
  if (attempt.ended_at) {
    const text = await readText(`${base}/log`);
    // Another attempt may have been chosen while this one was read: keep that one's log.
    if (shown === at) {
      lines.append(text);
      search.refresh();
    }
    return;
  }
  title.textContent += " (following)";
  const source = new EventSource(streamUrl(`${base}/follow`));
  follow = source;
  source.addEventListener("log", (event) => {
    const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    lines.append(JSON.parse(event.data));
    search.refresh();
    if (atBottom) log.scrollTop = log.scrollHeight;
  });
  source.addEventListener("end", () => {
    title.textContent = heading;
    stopFollowing();
    // Its outcome, exit code and end are known now.
    act(() => readAttempts(at));
  });
  source.onerror = () => {
    // The stream would start again from the top: stop, and say so.
    title.textContent = `${heading} (stopped following: connection lost)`;
    stopFollowing();
  };
}

// The segment's attempts, for the header and the attempt switcher.
async function readAttempts(at) {
  const attempts = await api(`/batches/${at.batchId}/segments/${at.segment.id}/attempts`);
  if (shown !== at) return;
  at.attempts = attempts;
  at.attempt = attempts.find((a) => a.number === at.attempt.number) || at.attempt;
  drawAbout(at);
}

// Whose log this is: "attempt 2 of 3, node node-1, failed, exit code 1, started …, ended …".
function drawAbout(at) {
  const { attempt, attempts } = at;
  const took = attempt.started_at && attempt.ended_at ? ` (${span(attempt.ended_at - attempt.started_at)})` : "";
  const of = Math.max(attempts.length, attempt.number);
  document.getElementById("log-attempt").replaceChildren(
    el("span", {}, "attempt ", el("b", { text: `${attempt.number} of ${of}` })),
    el("span", {}, "node ", el("b", { text: attempt.node })),
    el("span", {}, "outcome ", stateLabel(attempt.outcome || "running")),
    el("span", {}, "exit code ", el("b", { text: attempt.exit_code === null || attempt.exit_code === undefined ? "–" : String(attempt.exit_code) })),
    el("span", {}, "started ", el("b", { text: when(attempt.started_at) })),
    el("span", {}, "ended ", el("b", { text: attempt.ended_at ? when(attempt.ended_at) + took : "–" })),
  );
  const select = document.getElementById("log-attempt-select");
  const hadFocus = document.activeElement === select;
  select.replaceChildren(
    ...attempts.map((a) =>
      el("option", { value: String(a.number), text: `${a.number}: ${a.node}, ${a.outcome || "running"}` }),
    ),
  );
  select.value = String(attempt.number);
  select.disabled = attempts.length < 2;
  if (hadFocus && !select.disabled) select.focus();
}

function note(text) {
  document.getElementById("log-note").textContent = text;
}

// Scroll to the first line that looks like an error, and mark it. The API names the line
// (GET .../log/summary) over the same text the page shows, numbered the same way.
async function jumpToFirstError() {
  const at = shown;
  if (!at) return;
  const summary = await api(`${basePath(at)}/log/summary`);
  if (shown !== at) return;
  for (const marked of lines.pre.querySelectorAll(".error-line")) marked.classList.remove("error-line");
  const number = summary.first_error_line;
  if (number === null) {
    note(summary.whole ? "No line looks like an error." : "No line of the kept tail looks like an error.");
    return;
  }
  const line = lines.line(number);
  if (!line) {
    note(`The first error is line ${number}, not shown yet.`);
    return;
  }
  line.classList.add("error-line");
  line.scrollIntoView({ block: "center", inline: "nearest" });
  note(`First error: line ${number} of ${summary.lines}.`);
}

async function download() {
  const at = shown;
  if (!at) return;
  const fallback = `batch-${at.batchId}-segment-${at.segment.index}-attempt-${at.attempt.number}.log`;
  const name = await saveFile(`${basePath(at)}/log?download=1`, fallback);
  if (shown === at) note(`Saved ${name}.`);
}
