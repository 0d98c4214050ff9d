// One step in detail: parameters, status, workers, times, error traceback,
// status message and progress, tracking URL, and the actions an operator
// takes at 3 a.m. (re-enable, forgive failures, mark as done, send a message).

import { api } from "./api.js";
import { el, formatDuration, formatTime, replace, safeLink, toast } from "./dom.js";
import { hrefFor } from "./state.js";
import { statusBadge } from "./steplist.js";

const POLL_MS = 3000;

function row(label, ...value) {
  return el("tr", {}, el("th", { scope: "row" }, label), el("td", {}, ...value));
}

function progressBar(percentage) {
  const value = Math.max(0, Math.min(100, Number(percentage) || 0));
  return el("div", { class: "progress", role: "progressbar", "aria-valuenow": value, "aria-valuemin": 0,
    "aria-valuemax": 100 },
  el("div", { class: "progress-fill", style: `width: ${value}%` }), el("span", { class: "progress-text" }, `${value}%`));
}

/** Workers send the error as JSON text (as Luigi's do); older or other clients send it plain. */
export function decodeError(raw) {
  if (raw === null || raw === undefined || raw === "") return "";
  if (typeof raw !== "string") return JSON.stringify(raw, null, 2);
  try {
    const value = JSON.parse(raw);
    if (value === null) return "";
    return typeof value === "string" ? value : JSON.stringify(value, null, 2);
  } catch (_) {
    return raw;
  }
}

/** One step by exact id ("id:" search of step_list_page: a lookup, not a scan). */
async function lookUp(stepId) {
  const page = await api.stepListPage({ search: `id:${stepId}`, limit: 1 });
  return page.steps.length ? page.steps[0] : null;
}

export class StepDetail {
  constructor(panel, { hasHistory = () => false, onChanged = () => {}, onClose = () => {} } = {}) {
    this.panel = panel;
    this.hasHistory = hasHistory;
    this.onChanged = onChanged;
    this.onClose = onClose;
    this.generation = 0;
    this.timer = 0;
  }

  close() {
    this.generation++;
    clearTimeout(this.timer);
    this.stepId = null;
    this.panel.hidden = true;
    replace(this.panel);
  }

  /** Show stepId; reuse is true when it is already shown (a periodic refresh). */
  async show(stepId) {
    const generation = ++this.generation;
    clearTimeout(this.timer);
    const reuse = stepId === this.stepId;
    this.stepId = stepId;
    this.panel.hidden = false;
    if (!reuse) replace(this.panel, el("p", { class: "muted" }, "Loading\u2026"));
    let step;
    let error;
    try {
      [step, error] = await Promise.all([lookUp(stepId), api.fetchError(stepId)]);
    } catch (err) {
      if (generation === this.generation) replace(this.panel, this._header(stepId, null), el("p", { class: "error-text" }, err.message));
      return;
    }
    if (generation !== this.generation) return;
    this._render(stepId, step, error);
    if (step && (step.status === "RUNNING" || step.status === "BATCH_RUNNING")) {
      this.timer = setTimeout(() => { if (generation === this.generation) this.show(stepId); }, POLL_MS);
    }
  }

  _header(stepId, step) {
    return el("header", { class: "detail-header" },
      el("button", { type: "button", class: "close", "aria-label": "close", onclick: () => this.onClose() }, "\u00d7"),
      el("h2", { class: "detail-title" }, step ? step.display_name : stepId),
      step ? statusBadge(step.status) : null);
  }

  _render(stepId, step, error) {
    if (!step) {
      replace(this.panel, this._header(stepId, null),
        el("p", {}, "trund does not know this step (any more): steps are forgotten ",
          "[scheduler] remove_delay seconds after their last worker left."),
        el("p", { class: "mono selectable" }, stepId),
        this._links(stepId, false));
      return;
    }
    const params = Object.entries(step.params || {});
    const running = step.status === "RUNNING" || step.status === "BATCH_RUNNING";
    const facts = el("table", { class: "facts" }, el("tbody", {},
      row("Step id", el("span", { class: "mono selectable", "data-field": "step-id" }, stepId)),
      row("Family", step.name || ""),
      row("Status", step.status),
      step.worker_running ? row("Running on", el("span", { class: "mono" }, step.worker_running)) : null,
      running && step.time_running ? row("Running for", formatDuration(Date.now() / 1000 - step.time_running),
        ` (since ${formatTime(step.time_running)})`) : null,
      !running && step.time_running && ["DONE", "FAILED"].includes(step.status) && step.last_updated >= step.time_running
        ? row("Ran for", formatDuration(step.last_updated - step.time_running)) : null,
      row("Added", formatTime(step.start_time)),
      row("Last updated", formatTime(step.last_updated)),
      row("Priority", String(step.priority ?? 0)),
      step.workers && step.workers.length ? row("Workers able to run it", step.workers.join(", ")) : null,
      Object.keys(step.resources || {}).length ? row("Resources", JSON.stringify(step.resources)) : null,
      step.tracking_url ? row("Tracking URL", safeLink(step.tracking_url)) : null,
      step.status_message ? row("Status message", el("span", { class: "status-message" }, step.status_message)) : null,
      step.progress_percentage !== null && step.progress_percentage !== undefined
        ? row("Progress", progressBar(step.progress_percentage)) : null));
    const paramTable = el("table", { class: "params" },
      el("thead", {}, el("tr", {}, el("th", {}, "Parameter"), el("th", {}, "Value"))),
      el("tbody", {}, params.length ? params.map(([name, value]) => el("tr", {},
        el("td", { class: "mono" }, name),
        el("td", { class: "mono param-value" }, typeof value === "string" ? value : JSON.stringify(value))))
        : el("tr", {}, el("td", { colspan: 2, class: "muted" }, "no public parameters"))));
    const errorText = decodeError(error && error.error);
    replace(this.panel,
      this._header(stepId, step),
      this._actions(stepId, step),
      facts,
      el("h3", {}, "Parameters"), paramTable,
      errorText ? [el("h3", {}, "Error"), el("pre", { class: "traceback", "data-field": "error" }, errorText)] : null,
      step.status === "RUNNING" && step.accepts_messages ? this._messageForm(stepId, step) : null,
      this._links(stepId, true));
  }

  _links(stepId, known) {
    return el("nav", { class: "detail-links" },
      known ? el("a", { href: hrefFor({ tab: "graph", stepId }) }, "Dependency graph") : null,
      known ? el("a", { href: hrefFor({ tab: "graph", stepId, invert: "1" }) }, "What depends on it") : null,
      this.hasHistory() ? el("a", { href: `../../history/by_step_id/${encodeURIComponent(stepId)}` }, "History") : null);
  }

  _actions(stepId, step) {
    const buttons = [];
    const action = (label, fn, cls = "button") => el("button", { type: "button", class: cls, onclick: async (e) => {
      e.target.disabled = true;
      try {
        await fn();
        toast(`${label}: done`);
        this.onChanged();
        this.show(stepId);
      } catch (err) {
        toast(err.message, "error");
        e.target.disabled = false;
      }
    } }, label);
    if (step.status === "DISABLED" && step.re_enable_able) buttons.push(action("Re-enable", () => api.reEnable(stepId)));
    if (step.status === "FAILED") buttons.push(action("Forgive failures", () => api.forgive(stepId)));
    if (["RUNNING", "FAILED", "DISABLED"].includes(step.status)) {
      buttons.push(action("Mark as done", () => api.markAsDone(stepId), "button danger"));
    }
    return buttons.length ? el("div", { class: "actions" }, buttons) : null;
  }

  _messageForm(stepId, step) {
    const input = el("textarea", { rows: 2, "aria-label": "message to the step", placeholder: "Message to the running step" });
    const answer = el("div", { class: "message-answer", "aria-live": "polite" });
    const send = async () => {
      const content = input.value;
      if (!content.trim()) return;
      try {
        const { message_id: messageId } = await api.sendMessage(step.worker_running, stepId, content);
        if (!messageId) {
          replace(answer, "trund does not forward messages ([scheduler] send_messages = false).");
          return;
        }
        replace(answer, "Sent; waiting for an answer\u2026");
        const deadline = Date.now() + 20000;
        const poll = async () => {
          const { response } = await api.messageResponse(stepId, messageId);
          if (response !== null && response !== undefined) {
            replace(answer, "Answer: ", el("span", { class: "mono" }, String(response)));
          } else if (Date.now() < deadline) {
            setTimeout(poll, 1000);
          } else {
            replace(answer, "No answer (yet).");
          }
        };
        poll();
      } catch (err) {
        toast(err.message, "error");
      }
    };
    return el("section", { class: "message-form" }, el("h3", {}, "Send a message"), input,
      el("button", { type: "button", class: "button", onclick: send }, "Send"), answer);
  }
}
