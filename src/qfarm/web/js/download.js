// Files the API answers (a log) read as they are, and saved on the user's machine.
//
// A plain <a href> would send no token: a cluster with tokens answers it with a 401. So the
// file is read with fetch, which sends the token as a header as every other request of the
// page does (rather than putting the token in a URL, where it would stay in the browser's
// history), and handed to the browser to save through an object URL, under the name the
// API's Content-Disposition gives.

import { API, ApiError, token } from "./api.js";

// How long the object URL of a saved file is kept: the browser has long begun to save it.
const KEEP_URL_MS = 60_000;

// The answer to GET `path`, or the API's error. Unlike api(), the body is left as it is: a
// log whose text happens to be JSON ("42") must not come back as a number.
async function read(path) {
  const headers = token() ? { Authorization: `Bearer ${token()}` } : {};
  const response = await fetch(API + path, { headers });
  if (!response.ok) {
    let message = `HTTP ${response.status}`;
    try {
      message = (await response.json()).error || message;
    } catch (_) {
      // not the API's JSON error
    }
    throw new ApiError(response.status, message);
  }
  return response;
}

// The text of a file the API answers (decoded as UTF-8, as the API sends it).
export async function readText(path) {
  return (await read(path)).text();
}

// Save the file the API answers at `path`, under the name its Content-Disposition gives
// (else `fallbackName`); the name it was saved under comes back.
export async function saveFile(path, fallbackName) {
  const response = await read(path);
  const name = attachmentName(response.headers.get("Content-Disposition")) || fallbackName;
  const url = URL.createObjectURL(await response.blob());
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), KEEP_URL_MS);
  return name;
}

// The file name of `attachment; filename="NAME"`, or "" without one.
function attachmentName(disposition) {
  const found = /filename="([^"]+)"/.exec(disposition || "");
  return found ? found[1] : "";
}
