// The service nodes. The event stream names no nodes, and the API reads them only as a whole
// (GET /nodes): the table is read again when a segment moves (what a node runs, and how busy
// it is, changes with it), and not for changes of batches or jobs alone.

import { api } from "../api.js";
import { el, showMessage, stateLabel } from "../dom.js";
import { bytes } from "../format.js";

let run = (task) => task();

export function init(serialize) {
  run = serialize;
}

export async function load() {
  const nodes = await api("/nodes");
  document.querySelector("#nodes-table tbody").replaceChildren(...nodes.map(nodeRow));
  document.getElementById("nodes-empty").hidden = nodes.length > 0;
}

export async function apply(changes) {
  if (changes.some((c) => c.kind === "segment")) await load();
}

function nodeRow(node) {
  const services = Object.entries(node.services)
    .map(([name, count]) => `${name} ${node.busy[name] || 0}/${count}`)
    .join(", ");
  // Tags jobs may require, and counted resources (GPUs are "gpu") as held / on the node.
  const tags = (node.tags || []).join(", ");
  const resources = Object.entries(node.resources || {})
    .map(([name, count]) => `${name} ${node.busy[name] || 0}/${count}`)
    .join(", ");
  const carries = [tags, resources].filter(Boolean).join("; ");
  const running = node.running.map((r) => `batch ${r.batch_id} segment ${r.segment_id}`).join(", ");
  const tools = Object.entries(node.fingerprint)
    .filter(([name]) => name !== "python")
    .map(([name, version]) => `${name} ${version}`)
    .join(", ");
  const enabled = node.state !== "disabled";
  const verb = enabled ? "Drain" : "Enable";
  const action = el("button", {
    type: "button",
    text: verb,
    "data-node": node.name,
    "aria-label": `${verb} node ${node.name}`,
    disabled: node.state === "offline",
    onclick: () => setNode(node.name, !enabled),
  });
  const cpu = node.load.cpu_percent !== undefined ? ` (${Math.round(node.load.cpu_percent)}% busy)` : "";
  const memory = node.load.memory_used ? `${bytes(node.load.memory_used)} of ${bytes(node.memory)}` : bytes(node.memory);
  return el(
    "tr",
    { "data-node": node.name },
    el("td", { text: node.name }),
    el(
      "td",
      {},
      stateLabel(node.state),
      node.refused ? ` (${node.refused})` : node.hours ? ` (${node.hours})` : "",
    ),
    el("td", { text: services || "–" }),
    el("td", { className: "wrap", text: carries || "–" }),
    el("td", { className: "wrap", text: running || "idle" }),
    el("td", { text: `${node.cores || "–"}${cpu}` }),
    el("td", { text: memory }),
    el("td", { className: "wrap", text: tools }),
    el("td", {}, action),
  );
}

function setNode(name, enable) {
  const question = enable
    ? `Give node ${name} work again?`
    : `Drain node ${name}? Its running segments finish; it gets no new ones.`;
  if (!confirm(question)) return;
  run(async () => {
    try {
      await api(`/nodes/${encodeURIComponent(name)}/${enable ? "enable" : "disable"}`, { method: "POST" });
    } catch (error) {
      showMessage(error.message);
    }
    // No event tells of a node's new state: read the nodes again.
    await load();
  });
}
