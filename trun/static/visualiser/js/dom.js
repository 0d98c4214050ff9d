// DOM helpers. Every string that reaches the page goes through textContent or
// setAttribute: step ids, parameters, messages and tracebacks come from users'
// code and must never be parsed as HTML. Nothing in the visualiser uses innerHTML.

const SVG_NS = "http://www.w3.org/2000/svg";

function append(node, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else if (child instanceof Node) node.appendChild(child);
    else node.appendChild(document.createTextNode(String(child)));
  }
  return node;
}

function applyAttrs(node, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.setAttribute("class", value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key === "text") node.textContent = String(value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  return node;
}

/** el("div", {class: "x"}, "text", childNode, [more]) -- children are text unless they are Nodes. */
export function el(tag, attrs, ...children) {
  return append(applyAttrs(document.createElement(tag), attrs), children);
}

/** Same as el() in the SVG namespace. */
export function svg(tag, attrs, ...children) {
  return append(applyAttrs(document.createElementNS(SVG_NS, tag), attrs), children);
}

/** Replace all children of node. */
export function replace(node, ...children) {
  node.replaceChildren();
  return append(node, children);
}

/** An <a> only for http(s) URLs: a tracking URL like "javascript:..." shows as plain text. */
export function safeLink(url, label) {
  let parsed = null;
  try { parsed = new URL(String(url), location.href); } catch (_) { parsed = null; }
  if (parsed && (parsed.protocol === "http:" || parsed.protocol === "https:")) {
    return el("a", { href: parsed.href, target: "_blank", rel: "noopener noreferrer" }, label ?? String(url));
  }
  return el("span", { class: "mono" }, String(url));
}

export function formatTime(seconds) {
  if (seconds === null || seconds === undefined || seconds === "" || Number.isNaN(Number(seconds))) return "";
  const d = new Date(Number(seconds) * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(Number(seconds))) return "";
  let s = Math.max(0, Math.round(Number(seconds)));
  const h = Math.floor(s / 3600); s -= h * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  if (h) return `${h}h ${m}m`;
  if (m) return `${m}m ${s}s`;
  return `${s}s`;
}

export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

/** A small non-blocking message at the bottom of the page. */
export function toast(message, kind = "info") {
  const host = document.getElementById("toasts");
  if (!host) return;
  const t = el("div", { class: `toast toast-${kind}`, role: "status" }, message);
  host.appendChild(t);
  setTimeout(() => t.remove(), kind === "error" ? 8000 : 4000);
}
