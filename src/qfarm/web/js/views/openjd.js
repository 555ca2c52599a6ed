// The OpenJD form: a job template (a file chosen, or its text pasted) submitted as a batch,
// its job parameters asked for as fields. The controller reads the template
// (POST /openjd/outline, by openjd-model) and names its parameters, their types, defaults
// and allowed values, so this page never parses a template: it sends the file's text as it
// is, and the controller's loader validates it and every value (POST /openjd). A refusal is
// the API's one line, shown beside the form and on the parameter it names; nothing is queued.

import { api } from "../api.js";
import { el } from "../dom.js";

const form = () => document.getElementById("openjd-form");
const templateText = () => document.getElementById("openjd-text").value;

let environments = []; // the chosen environment templates' texts, in order
let parameters = []; // the outline's parameter definitions the fields were drawn from

export function init() {
  form().addEventListener("submit", submitTemplate);
  document.getElementById("openjd-file").addEventListener("change", chooseTemplate);
  document.getElementById("openjd-envs").addEventListener("change", chooseEnvironments);
  document.getElementById("openjd-read").addEventListener("click", readOutline);
}

// Nothing to read when the view is shown: the form keeps what was typed.
export async function load() {}

async function chooseTemplate(event) {
  const [file] = event.target.files;
  if (!file) return;
  document.getElementById("openjd-text").value = await file.text();
  await readOutline();
}

async function chooseEnvironments(event) {
  environments = await Promise.all([...event.target.files].map((file) => file.text()));
  if (templateText().trim()) await readOutline();
}

async function readOutline() {
  showError("");
  try {
    const outline = await api("/openjd/outline", {
      method: "POST",
      body: { template: templateText(), environments },
    });
    drawOutline(outline);
  } catch (failure) {
    drawOutline(null);
    showError(failure.message);
  }
}

function drawOutline(outline) {
  const kept = values(); // what was typed stays for parameters of the same name
  parameters = outline ? outline.parameters : [];
  const steps = outline ? outline.steps : [];
  document.getElementById("openjd-outline").textContent = outline
    ? `Job ${outline.name}: ${plural(steps.length, "step")} (${steps.join(", ")}), ` +
      `${plural(parameters.length, "parameter")}.`
    : "";
  const step = document.getElementById("openjd-step");
  step.replaceChildren(el("option", { value: "" }, "every step"), ...steps.map((s) => el("option", { value: s }, s)));
  document.getElementById("openjd-param-fields").replaceChildren(...parameters.map((p) => field(p, kept[p.name])));
  document.getElementById("openjd-params").hidden = parameters.length === 0;
}

function plural(count, word) {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}

// One parameter's field. Empty means "the template's default": the page never sends a
// default itself (a relative PATH default means the template's folder, which only the
// template's own loader knows).
function field(p, value = "") {
  const id = `openjd-param-${p.name}`;
  const hint = el("small", { id: `${id}-hint`, className: "param-hint" }, describe(p));
  const problem = el("small", { id: `${id}-error`, className: "error", hidden: true });
  const attrs = {
    id,
    name: p.name,
    "data-parameter": p.name,
    "aria-describedby": `${id}-hint ${id}-error`,
    required: p.required,
  };
  let input;
  const choices = p.allowed_values.length ? p.allowed_values : p.type === "BOOL" ? ["true", "false"] : null;
  if (choices) {
    const first = p.required ? "choose one" : `default: ${show(p.default)}`;
    input = el("select", attrs, el("option", { value: "" }, first), ...choices.map((c) => el("option", { value: String(c) }, String(c))));
  } else {
    const inputmode = p.type === "INT" ? "numeric" : p.type === "FLOAT" ? "decimal" : undefined;
    const placeholder = p.required ? "" : `default: ${show(p.default)}`;
    input = el("input", { ...attrs, type: "text", autocomplete: "off", inputmode, placeholder });
  }
  input.value = value;
  return el("div", { className: "param" }, el("label", { for: id }, p.label || p.name), input, hint, problem);
}

function describe(p) {
  const parts = [p.type + (p.object_type ? ` ${p.object_type.toLowerCase()}` : "")];
  if (p.min_value !== null && p.max_value !== null) parts.push(`${p.min_value} to ${p.max_value}`);
  else if (p.min_value !== null) parts.push(`at least ${p.min_value}`);
  else if (p.max_value !== null) parts.push(`at most ${p.max_value}`);
  if (p.min_length !== null || p.max_length !== null) parts.push(`${p.min_length ?? 0} to ${p.max_length ?? "any"} characters`);
  if (p.type.startsWith("LIST")) parts.push("a JSON list, e.g. [1, 2]");
  parts.push(p.required ? "required" : `default ${show(p.default)}`);
  if (p.origin !== "template") parts.push(`from ${p.origin}`);
  return parts.join(", ") + (p.description ? `. ${p.description}` : "");
}

function show(value) {
  return typeof value === "string" ? value : JSON.stringify(value);
}

// The values typed, by parameter name (empty fields left out: their defaults apply).
function values() {
  const typed = {};
  for (const input of document.querySelectorAll("#openjd-param-fields [data-parameter]")) {
    if (input.value.trim() !== "") typed[input.dataset.parameter] = input.value.trim();
  }
  return typed;
}

async function submitTemplate(event) {
  event.preventDefault();
  showError("");
  const elements = form().elements;
  const body = {
    template: templateText(),
    environments,
    parameters: values(),
    name: elements.name.value.trim(),
    priority: elements.priority.value,
    hold: elements.hold.checked,
  };
  if (elements.step.value) body.step = elements.step.value;
  const retries = elements.retries.value.trim();
  if (retries !== "") body.retries = Number(retries);
  try {
    const batch = await api("/openjd", { method: "POST", body });
    location.hash = `#/batch/${batch.id}`;
  } catch (failure) {
    showError(failure.message);
  }
}

// The API's message beside the form, and on each parameter field it names.
function showError(message) {
  const box = document.getElementById("openjd-error");
  box.textContent = message;
  box.hidden = !message;
  for (const p of parameters) {
    const input = document.getElementById(`openjd-param-${p.name}`);
    const problem = document.getElementById(`openjd-param-${p.name}-error`);
    if (!input || !problem) continue;
    const named = message !== "" && names(message, p.name);
    input.setAttribute("aria-invalid", named ? "true" : "false");
    problem.textContent = named ? message : "";
    problem.hidden = !named;
  }
  if (message) box.focus();
}

// Whether an error names a parameter: openjd-model writes "for parameter NAME" and
// "missing for required job parameters: NAME, OTHER".
function names(message, name) {
  const word = name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp(`parameter ${word}\\b|job parameters: [^;.]*\\b${word}\\b`).test(message);
}
