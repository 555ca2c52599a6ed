// Building the page. Every value from the API goes into the page as text (textContent,
// attributes), never as HTML: names, commands and errors are whatever users typed.

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "className") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function svgEl(tag, attrs, text) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

export function progressBar(value, label) {
  const percent = Math.round(value * 100);
  return el("progress", { max: "100", value: String(percent), "aria-label": label, title: `${percent}%` });
}

export function stateLabel(value) {
  return el("span", { className: `state ${value}`, text: value });
}

export function showMessage(text) {
  const box = document.getElementById("message");
  box.textContent = text;
  box.hidden = !text;
}

export function setConnection(text, cls) {
  const status = document.getElementById("connection");
  status.textContent = text;
  status.className = `connection ${cls}`;
}
