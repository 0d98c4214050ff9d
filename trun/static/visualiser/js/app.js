// The visualiser's entry point: tabs, the navbar (pause, history link), the
// periodic refresh, and wiring of the URL state to the views.

import { api } from "./api.js";
import { el, replace, toast } from "./dom.js";
import { StepDetail } from "./detail.js";
import { GraphTab } from "./graphtab.js";
import { ResourcesTab } from "./resources.js";
import { getState, onStateChange, setState, start } from "./state.js";
import { StepList } from "./steplist.js";
import { WorkersTab } from "./workers.js";

const REFRESH_MS = { steps: 10000, workers: 5000, resources: 5000 };
const TABS = ["steps", "graph", "workers", "resources"];

let hasHistory = false;
const views = {};
let refreshTimer = 0;

function currentTab(state) {
  return TABS.includes(state.tab) ? state.tab : "steps";
}

function markRendered(what, info) {
  // Used by the browser tests and the benchmark to know a view is on screen.
  document.body.dataset[what] = String((Number(document.body.dataset[what]) || 0) + 1);
  performance.mark(`trun:${what}`, { detail: info });
}

async function setUpNavbar() {
  const pauseButton = document.getElementById("pause-toggle");
  try {
    const [enabled, paused, history] = await Promise.all([api.isPauseEnabled(), api.isPaused(), api.hasHistory()]);
    hasHistory = Boolean(history);
    document.getElementById("history-link").hidden = !hasHistory;
    if (enabled && enabled.enabled) {
      pauseButton.hidden = false;
      const show = (isPaused) => {
        pauseButton.textContent = isPaused ? "Paused \u2014 resume" : "Pause scheduling";
        pauseButton.classList.toggle("paused", isPaused);
        pauseButton.setAttribute("aria-pressed", isPaused ? "true" : "false");
        document.getElementById("paused-banner").hidden = !isPaused;
      };
      show(paused.paused);
      pauseButton.addEventListener("click", async () => {
        const isPaused = pauseButton.classList.contains("paused");
        try {
          await (isPaused ? api.unpause() : api.pause());
          show(!isPaused);
        } catch (err) { toast(err.message, "error"); }
      });
    }
  } catch (err) {
    toast(`trund is not answering: ${err.message}`, "error");
  }
}

function render(state) {
  const tab = currentTab(state);
  for (const name of TABS) {
    document.getElementById(`tab-${name}`).hidden = name !== tab;
    const link = document.querySelector(`nav.tabs a[data-tab="${name}"]`);
    link.classList.toggle("active", name === tab);
    if (name === tab) link.setAttribute("aria-current", "page"); else link.removeAttribute("aria-current");
  }
  if (tab === "steps") {
    views.steps.update(state);
    if (state.stepId) views.detail.show(state.stepId); else views.detail.close();
  } else if (tab === "graph") {
    views.graph.update(state);
    if (!state.stepId) views.detail.close();
  } else {
    views.detail.close();
    views[tab].update(state);
  }
  scheduleRefresh(tab);
}

function scheduleRefresh(tab) {
  clearTimeout(refreshTimer);
  const every = REFRESH_MS[tab];
  if (!every) return;
  refreshTimer = setTimeout(() => {
    if (!document.hidden) {
      const state = getState();
      if (currentTab(state) === "steps") views.steps.update(state); else views[tab].update(state);
    }
    scheduleRefresh(tab);
  }, every);
}

function main() {
  const detailPanel = document.getElementById("detail");
  views.detail = new StepDetail(detailPanel, {
    hasHistory: () => hasHistory,
    onChanged: () => views.steps.refresh(),
    onClose: () => {
      if (getState().tab === "graph") views.detail.close();
      else setState({ stepId: "" });
    },
  });
  views.steps = new StepList(document.getElementById("tab-steps"), { onRendered: (r) => markRendered("listRendered", r.total) });
  views.graph = new GraphTab(document.getElementById("tab-graph"), {
    detail: views.detail, onRendered: (info) => markRendered("graphRendered", info),
  });
  views.workers = new WorkersTab(document.getElementById("tab-workers"));
  views.resources = new ResourcesTab(document.getElementById("tab-resources"));
  document.addEventListener("keydown", (e) => {
    if (e.key === "/" && document.activeElement.tagName !== "INPUT" && document.activeElement.tagName !== "TEXTAREA") {
      e.preventDefault();
      setState({ tab: "steps" });
      document.getElementById("step-search").focus();
    } else if (e.key === "Escape" && getState().stepId && getState().tab === "steps") {
      setState({ stepId: "" });
    }
  });
  onStateChange(render);
  setUpNavbar();
  start();
}

main();
