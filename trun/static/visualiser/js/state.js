// The page's state lives in the URL fragment (#tab=steps&status=FAILED&search=x),
// so any view -- a filtered list, a graph, a step -- can be pasted in a chat.
// Names follow Luigi's visualiser, renamed: tab, stepId, statuses, family,
// search, invert, hideDone; plus page for the server-side paging.

const listeners = new Set();

export function getState() {
  const params = new URLSearchParams(location.hash.replace(/^#/, ""));
  const state = {};
  for (const [key, value] of params) state[key] = value;
  if (!state.tab) state.tab = "steps";
  return state;
}

function encode(state) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(state)) {
    if (value === null || value === undefined || value === "" || value === false) continue;
    params.set(key, value === true ? "1" : String(value));
  }
  return "#" + params.toString();
}

/** Merge patch into the state; replace=true does not add a browser history entry. */
export function setState(patch, { replace = false } = {}) {
  const next = { ...getState(), ...patch };
  const hash = encode(next);
  if (hash === location.hash) return;
  if (replace) history.replaceState(null, "", hash);
  else history.pushState(null, "", hash);
  notify();
}

export function hrefFor(state) {
  return encode(state);
}

export function onStateChange(fn) {
  listeners.add(fn);
}

/** Run the listeners for the current URL (at start-up). */
export function start() {
  lastHash = null;
  notify();
}

let lastHash = null;

function notify() {
  // Back/forward fires both hashchange and popstate: run the listeners once.
  if (location.hash === lastHash) return;
  lastHash = location.hash;
  const state = getState();
  for (const fn of listeners) fn(state);
}

window.addEventListener("hashchange", notify);
window.addEventListener("popstate", notify);
