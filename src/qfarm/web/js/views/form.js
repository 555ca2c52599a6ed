// The submit form: one job of a type (command, transcode, render), as the CLI would send it.

import { api } from "../api.js";
import { el, showMessage } from "../dom.js";

let presetsLoaded = false;

export function init() {
  document.getElementById("submit-form").addEventListener("submit", submitForm);
  document.getElementById("job-type").addEventListener("change", showJobFields);
  showJobFields();
}

// The presets, once: they are built into the controller and do not change while it runs.
export async function load() {
  if (presetsLoaded) return;
  try {
    const presets = await api("/presets");
    document.getElementById("preset-select").replaceChildren(
      ...presets.map((p) => el("option", { value: p.name, disabled: !p.available }, `${p.name}: ${p.description}`)),
    );
    presetsLoaded = true;
  } catch (error) {
    showMessage(error.message);
  }
}

// Split a command line into arguments as a POSIX shell would for quotes and backslashes
// (no expansion): the API takes the command as a list, like the CLI sends it.
export function splitCommand(text) {
  const args = [];
  let current = "";
  let started = false;
  let quote = null;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quote === "'") {
      if (ch === "'") quote = null;
      else current += ch;
    } else if (quote === '"') {
      if (ch === '"') quote = null;
      else if (ch === "\\" && i + 1 < text.length && '"\\$`'.includes(text[i + 1])) current += text[++i];
      else current += ch;
    } else if (ch === "'" || ch === '"') {
      quote = ch;
      started = true;
    } else if (ch === "\\" && i + 1 < text.length) {
      current += text[++i];
      started = true;
    } else if (/\s/.test(ch)) {
      if (started) args.push(current);
      current = "";
      started = false;
    } else {
      current += ch;
      started = true;
    }
  }
  if (quote) throw new Error("the command has an unclosed quote");
  if (started) args.push(current);
  return args;
}

function jobFromForm(form) {
  const value = (name) => form.elements[name].value.trim();
  const number = (name) => (value(name) === "" ? undefined : Number(value(name)));
  const type = value("type");
  const spec = {};
  const put = (key, v) => {
    if (v !== undefined && v !== "") spec[key] = v;
  };
  if (type === "command") {
    spec.command = splitCommand(value("command"));
    put("frames", value("frames"));
    put("segment_size", number("segment_size"));
    put("output", value("output"));
    put("cwd", value("cwd"));
  } else if (type === "transcode") {
    put("input", value("input"));
    put("preset", value("preset"));
    put("output_dir", value("output_dir"));
    put("segment_seconds", number("segment_seconds"));
  } else {
    put("scene", value("scene"));
    put("frames", value("render_frames"));
    put("segment_size", number("render_segment_size"));
    put("output", value("render_output"));
    put("width", number("width"));
    put("height", number("height"));
  }
  return { type, spec, retries: number("retries") ?? 2 };
}

async function submitForm(event) {
  event.preventDefault();
  const form = event.target;
  const error = document.getElementById("submit-error");
  error.hidden = true;
  try {
    const job = jobFromForm(form);
    const batch = await api("/batches", {
      method: "POST",
      body: { name: form.elements.name.value.trim(), priority: form.elements.priority.value, jobs: [job] },
    });
    location.hash = `#/batch/${batch.id}`;
  } catch (failure) {
    // The API's message, as the CLI would print it.
    error.textContent = failure.message;
    error.hidden = false;
    error.focus?.();
  }
}

function showJobFields() {
  const type = document.getElementById("job-type").value;
  for (const fieldset of document.querySelectorAll("fieldset[data-for]")) {
    fieldset.hidden = fieldset.dataset.for !== type;
  }
}
