// The log viewer: an ended attempt's log read once; a running attempt's log followed as it
// grows (GET .../follow, server-sent `log` events, then `end`).

import { api, streamUrl } from "../api.js";

let follow = null; // the EventSource of the log being followed
let shown = null; // {segmentId, number} of the attempt whose log is on the page

export function shownAttempt() {
  return shown;
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

export async function showLog(batchId, segment, attempt) {
  stopFollowing();
  shown = { segmentId: segment.id, number: attempt.number };
  const log = document.getElementById("log");
  const title = document.getElementById("log-title");
  const heading = `Log of attempt ${attempt.number} on ${attempt.node}`;
  const base = `/batches/${batchId}/segments/${segment.id}/attempts/${attempt.number}`;
  title.textContent = heading;
  log.textContent = "";
  if (attempt.ended_at) {
    const text = await api(`${base}/log`);
    // Another attempt may have been chosen while this one was read: keep that one's log.
    if (shown && shown.segmentId === segment.id && shown.number === attempt.number) log.textContent = text;
    return;
  }
  title.textContent += " (following)";
  const source = new EventSource(streamUrl(`${base}/follow`));
  follow = source;
  source.addEventListener("log", (event) => {
    const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    log.append(JSON.parse(event.data));
    if (atBottom) log.scrollTop = log.scrollHeight;
  });
  source.addEventListener("end", () => {
    title.textContent = heading;
    stopFollowing();
  });
  source.onerror = () => {
    // The stream would start again from the top: stop, and say so.
    title.textContent = `${heading} (stopped following: connection lost)`;
    stopFollowing();
  };
}
