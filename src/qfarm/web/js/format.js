// Numbers and times as people read them, the same way the CLI writes them.

export function when(epoch) {
  if (!epoch) return "–";
  const date = new Date(epoch * 1000);
  return date.toLocaleString([], { dateStyle: "short", timeStyle: "medium" });
}

export function span(seconds) {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) return "–";
  seconds = Math.max(0, Math.round(seconds));
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  return h ? `${h}h ${m}m` : m ? `${m}m ${s}s` : `${s}s`;
}

export function bytes(n) {
  if (!n) return "–";
  const gib = n / 2 ** 30;
  return gib >= 1 ? `${gib.toFixed(1)} GiB` : `${Math.round(n / 2 ** 20)} MiB`;
}

// How far a batch is: by work (frames, seconds) where the API counts it, else by segments.
export function fraction(segments) {
  if (segments.work_total > 0) return segments.work_done / segments.work_total;
  return segments.total ? (segments.done + segments.failed + segments.canceled) / segments.total : 0;
}

// A priority reads as its name where it is one of the named levels (as in the CLI).
const PRIORITY_NAMES = { 75: "high", 50: "medium", 25: "low" };

export function priorityLabel(value) {
  return PRIORITY_NAMES[value] || String(value);
}

export function priorityLevel(value) {
  return value >= 75 ? "high" : value <= 25 ? "low" : "medium";
}
