// Workers tab: one card per worker with its running steps; +1/-1 processes, disable.

import { api } from "./api.js";
import { el, formatTime, replace, toast } from "./dom.js";
import { hrefFor } from "./state.js";

function progress(value) {
  if (value === null || value === undefined) return null;
  const v = Math.max(0, Math.min(100, Number(value) || 0));
  return el("div", { class: "progress small" }, el("div", { class: "progress-fill", style: `width: ${v}%` }),
    el("span", { class: "progress-text" }, `${v}%`));
}

export class WorkersTab {
  constructor(root) {
    this.root = root;
    this.list = el("div", { class: "cards" });
    replace(root, el("h2", {}, "Workers"), this.list);
  }

  async update() {
    let workers;
    try {
      workers = await api.workers();
    } catch (err) {
      replace(this.list, el("p", { class: "error-text" }, err.message));
      return;
    }
    if (!workers.length) {
      replace(this.list, el("p", { class: "muted" }, "No worker is connected."));
      return;
    }
    replace(this.list, workers.map((w) => this._card(w)));
  }

  _card(w) {
    const processes = Number.isInteger(w.workers) ? w.workers : 1;
    const act = (label, fn, cls = "button") => el("button", { type: "button", class: cls, onclick: async () => {
      try { await fn(); toast(`${label}: sent to ${w.name}`); this.update(); } catch (err) { toast(err.message, "error"); }
    } }, label);
    const running = Object.entries(w.running || {});
    return el("article", { class: `card worker ${w.state === "disabled" ? "disabled" : ""}`, "data-worker": w.name },
      el("header", {}, el("h3", {}, `${w.host || "unknown host"}`, w.pid ? ` (pid ${w.pid})` : ""),
        el("span", { class: `badge ${w.state === "disabled" ? "s-DISABLED" : "s-RUNNING"}` }, w.state || "active")),
      el("dl", {},
        el("dt", {}, "Worker id"), el("dd", { class: "mono" }, w.name),
        w.username ? [el("dt", {}, "User"), el("dd", {}, w.username)] : null,
        el("dt", {}, "Started"), el("dd", {}, formatTime(w.started)),
        el("dt", {}, "Last active"), el("dd", {}, formatTime(w.last_active)),
        el("dt", {}, "Processes"), el("dd", {}, String(processes)),
        w.first_step_display_name ? [el("dt", {}, "First step"), el("dd", {}, w.first_step_display_name)] : null,
        el("dt", {}, "Steps"), el("dd", {}, `${w.num_running ?? 0} running, ${w.num_pending ?? 0} pending, `
          + `${w.num_uniques ?? 0} only it can run`)),
      running.length ? el("ul", { class: "running" }, running.map(([id, step]) => el("li", {},
        el("a", { href: hrefFor({ tab: "steps", stepId: id }) }, step.display_name),
        step.status_message ? el("div", { class: "status-message" }, step.status_message) : null,
        progress(step.progress_percentage)))) : null,
      el("div", { class: "actions" },
        act("+1 process", () => api.setWorkerProcesses(w.name, processes + 1)),
        act("\u22121 process", () => api.setWorkerProcesses(w.name, Math.max(0, processes - 1))),
        w.state !== "disabled" ? act("Disable", async () => {
          if (confirm(`Disable worker ${w.name}? It gets no more work; running steps finish.`)) await api.disableWorker(w.name);
        }, "button danger") : null));
  }
}
