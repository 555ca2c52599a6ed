// Failures at a glance: the failed and lost attempts of every batch over a window, grouped
// by error (exit code and the log's last line), by node or by job (GET /failures), so that
// a bad night's hundred red cells read as the two or three causes they are. Each group
// opens to its attempts, each with a link to its log in the batch view; from a group,
// "Retry all of these" resubmits its batches that allow it, and a node group's "Disable
// this node" drains that node. Both are the batch and node routes the other views use.
//
// The view is read whole (it is one request) when it is shown and when a segment fails or
// is requeued, or a batch changes state; the groups that were open stay open, and the
// control that had the focus keeps it.

import { api } from "../api.js";
import { el, showMessage, stateLabel } from "../dom.js";
import { when } from "../format.js";

const GROUPINGS = { error: "By error", node: "By node", job: "By job" };

const view = {
  by: "error",
  open: new Set(), // keys of the groups shown open
  nodes: new Map(), // node name -> its state, for the disable buttons
};

let run = (task) => task();

export function init(serialize) {
  run = serialize;
  const tabs = document.getElementById("failures-by");
  tabs.replaceChildren(
    ...Object.entries(GROUPINGS).map(([by, label]) =>
      el("button", {
        type: "button",
        "data-by": by,
        "aria-pressed": String(by === view.by),
        text: label,
        onclick: () => {
          view.by = by;
          view.open.clear();
          run(load);
        },
      }),
    ),
  );
  document.getElementById("failures-window").addEventListener("change", () => run(load));
}

export async function load() {
  const seconds = Number(document.getElementById("failures-window").value);
  const since = Date.now() / 1000 - seconds;
  const [found, nodes] = await Promise.all([
    api(`/failures?by=${view.by}&since=${since}`),
    api("/nodes"),
  ]);
  view.nodes = new Map(nodes.map((n) => [n.name, n.state]));
  render(found);
}

export async function apply(changes) {
  const matters = changes.some(
    (c) => c.kind === "batch" || (c.kind === "segment" && (c.state === "failed" || c.state === "queued")),
  );
  if (matters) await load();
}

// ------------------------------------------------------------------ drawing

function render(found) {
  for (const button of document.querySelectorAll("#failures-by button")) {
    button.setAttribute("aria-pressed", String(button.dataset.by === found.by));
  }
  const focused = document.activeElement?.dataset?.focus;
  const attempts = found.total === 1 ? "1 failed attempt" : `${found.total} failed attempts`;
  const more = found.truncated ? " (the newest only: more failed in this window)" : "";
  const groups = found.groups.length === 1 ? "1 group" : `${found.groups.length} groups`;
  document.getElementById("failures-summary").textContent =
    `${attempts} since ${when(found.since)}, in ${groups}${more}.`;
  document.getElementById("failures-list").replaceChildren(...found.groups.map(groupItem));
  document.getElementById("failures-empty").hidden = found.groups.length > 0;
  if (focused) document.querySelector(`#failures-list [data-focus="${CSS.escape(focused)}"]`)?.focus();
}

function groupItem(group) {
  const open = view.open.has(group.key);
  const panelId = `failure-${groupIndex(group.key)}`;
  const toggle = el(
    "button",
    {
      type: "button",
      className: "group-toggle",
      "aria-expanded": String(open),
      "aria-controls": panelId,
      "data-focus": `${group.key}|toggle`,
      onclick: () => {
        if (view.open.has(group.key)) view.open.delete(group.key);
        else view.open.add(group.key);
        const now = view.open.has(group.key);
        toggle.setAttribute("aria-expanded", String(now));
        document.getElementById(panelId).hidden = !now;
      },
    },
    el("span", { className: "count", text: String(group.count) }),
    el("span", { className: "group-title", text: group.title }),
  );
  const jobs = group.jobs.map((j) => `${j.name} (batch ${j.batch_id})`).join(", ");
  const facts = el(
    "p",
    { className: "group-facts" },
    el("span", {}, "nodes ", el("b", { text: group.nodes.join(", ") })),
    el("span", {}, "jobs ", el("b", { text: jobs })),
    el("span", {}, "newest ", el("b", { text: when(group.latest) })),
  );
  return el(
    "article",
    { className: "failure-group", "data-group": group.key },
    el("div", { className: "group-head" }, toggle, actions(group)),
    facts,
    el("div", { id: panelId, hidden: !open }, attemptsTable(group)),
  );
}

// Element ids for the panels: keys hold any character a log line does.
const indexes = new Map();
function groupIndex(key) {
  if (!indexes.has(key)) indexes.set(key, indexes.size + 1);
  return indexes.get(key);
}

function actions(group) {
  const buttons = [];
  const retryable = group.retryable;
  buttons.push(
    el("button", {
      type: "button",
      "data-focus": `${group.key}|retry`,
      "data-action": "retry",
      text: "Retry all of these",
      disabled: retryable.length === 0,
      title: retryable.length ? `resubmit batch ${retryable.join(", ")}` : "no batch of these can be resubmitted now",
      onclick: () => retryAll(group),
    }),
  );
  if (group.node) {
    const state = view.nodes.get(group.node);
    buttons.push(
      el("button", {
        type: "button",
        className: "danger",
        "data-focus": `${group.key}|disable`,
        "data-action": "disable",
        text: state === "disabled" ? "Node disabled" : "Disable this node",
        disabled: state === undefined || state === "disabled",
        onclick: () => disableNode(group.node),
      }),
    );
  }
  return el("span", { className: "group-actions", role: "group", "aria-label": `Actions for ${group.title}` }, ...buttons);
}

function attemptsTable(group) {
  const rows = group.attempts.map((a) =>
    el(
      "tr",
      { "data-attempt": `${a.segment_id}/${a.number}` },
      el("td", { text: `${a.batch_id} ${a.batch_name}`.trim() }),
      el("td", { text: `${a.job_name} / ${a.segment_label}` }),
      el("td", { text: String(a.number) }),
      el("td", { text: a.node }),
      el("td", {}, stateLabel(a.outcome)),
      el("td", { text: a.exit_code === null ? "–" : String(a.exit_code) }),
      el("td", { text: when(a.ended_at) }),
      el("td", { className: "wrap", text: a.last_line }),
      el(
        "td",
        {},
        el("a", {
          href: `#/batch/${a.batch_id}/segment/${a.segment_id}/attempt/${a.number}`,
          text: "Log",
          "aria-label": `Log of attempt ${a.number} of segment ${a.segment_label}, batch ${a.batch_id}`,
        }),
      ),
    ),
  );
  const head = ["Batch", "Job / segment", "Attempt", "Node", "Outcome", "Exit", "Ended", "Last line", "Log"];
  return el(
    "div",
    { className: "scroll" },
    el(
      "table",
      { className: "failure-attempts" },
      el("thead", {}, el("tr", {}, ...head.map((h) => el("th", { scope: "col", text: h })))),
      el("tbody", {}, ...rows),
    ),
  );
}

// ------------------------------------------------------------------ actions

function retryAll(group) {
  const ids = group.retryable;
  const which = ids.length === 1 ? `batch ${ids[0]}` : `batches ${ids.join(", ")}`;
  if (!confirm(`Resubmit ${which}? Their failed and canceled segments run again.`)) return;
  run(async () => {
    const refused = [];
    for (const id of ids) {
      try {
        await api(`/batches/${id}/resubmit`, { method: "POST" });
      } catch (error) {
        refused.push(`batch ${id}: ${error.message}`);
      }
    }
    showMessage(refused.length ? `Not resubmitted: ${refused.join("; ")}` : `Resubmitted ${which}.`);
    await load();
  });
}

function disableNode(name) {
  if (!confirm(`Disable node ${name}? Its running segments finish; it gets no new ones.`)) return;
  run(async () => {
    try {
      await api(`/nodes/${encodeURIComponent(name)}/disable`, { method: "POST" });
      showMessage(`Node ${name} disabled: enable it again from Nodes.`);
    } catch (error) {
      showMessage(error.message);
    }
    // No event tells of a node's new state: read again.
    await load();
  });
}
